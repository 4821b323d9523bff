"""MIST's conditional network: the conditional families' exact I(X;Y|Z), the network's third
column tag, its training recipe and the estimator API."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mistgen.conditional import (CONDITIONAL_SPECS, conditional_mi, conditional_sample,
                                 dispersion)
from mistgen.errors import ShapeError, SpecError
from mistgen.families.student import student_mi_correction
from mistmodel import MIST
from mistmodel.batching import collate
from mistmodel.conditional_training import (ConditionalTrainConfig, draw_step,
                                            train_conditional, widen_unconditional)
from mistmodel.estimators import CCA, KSG
from mistmodel.mist import default_checkpoint
from mistmodel.model import MISTNet, ModelConfig

SMALL = dict(width=8, heads=2, blocks=1, inducing=4, summary_width=16, pair_width=8,
             head_hidden=16)


# -- families -----------------------------------------------------------------------------

@pytest.mark.parametrize("dims", [(1, 1, 1), (3, 2, 4)])
def test_structures_have_their_zeros(dims) -> None:
    rng = np.random.default_rng(0)
    chain, _ = dispersion("chain", rng, dims)
    cmi, mi = conditional_mi(chain, dims)
    assert cmi == 0.0 or abs(cmi) < 1e-12
    assert mi > 0
    collider, _ = dispersion("collider", rng, dims)
    cmi, mi = conditional_mi(collider, dims)
    assert abs(mi) < 1e-12 < cmi


def test_student_conditional_mi_is_the_chain_rule_of_student_mi() -> None:
    """I(X;Y|Z) = I(X;YZ) - I(X;Z), each a Student-t MI (Gaussian part + correction)."""
    rng = np.random.default_rng(1)
    dims = (2, 3, 2)
    s, _ = dispersion("factor", rng, dims)
    nu = 4.0
    g_cmi, _ = conditional_mi(s, dims)
    t_cmi, t_mi = conditional_mi(s, dims, nu)
    expected = g_cmi + student_mi_correction(nu, 2, 5) - student_mi_correction(nu, 2, 2)
    assert t_cmi == pytest.approx(expected, abs=1e-12)
    # a Student-t chain is dependent given Z: the shared scale couples X and Y
    chain, _ = dispersion("chain", rng, dims)
    assert conditional_mi(chain, dims, nu)[0] > 1e-3


@pytest.mark.parametrize("spec", ["normal-confounded", "normal-factor", "normal-collider"])
def test_gaussian_truth_matches_the_partial_correlation_form_at_large_n(spec) -> None:
    s = conditional_sample(spec, 40_000, 2, 2, 2, seed=[3, 1])
    assert CCA().estimate_conditional(s.x, s.y, s.z) == pytest.approx(s.cmi, abs=0.01)


@pytest.mark.parametrize("spec", ["student-chain", "student-confounded"])
def test_student_truth_matches_knn_at_d1(spec) -> None:
    values, truths = [], []
    for r in range(3):
        s = conditional_sample(spec, 10_000, 1, 1, 1, seed=[4, r])
        values.append(KSG(k=5).estimate_conditional(s.x, s.y, s.z))
        truths.append(s.cmi)
    assert np.mean(values) == pytest.approx(np.mean(truths), abs=0.02)


def test_samples_are_a_pure_function_of_their_address() -> None:
    a = conditional_sample("student-factor", 50, 2, 3, 1, seed=[7, 2, 5])
    b = conditional_sample("student-factor", 50, 2, 3, 1, seed=[7, 2, 5])
    c = conditional_sample("student-factor", 50, 2, 3, 1, seed=[7, 2, 6])
    assert a.x.tobytes() == b.x.tobytes() and a.z.tobytes() == b.z.tobytes()
    assert a.cmi == b.cmi and not np.array_equal(a.x, c.x)
    assert (a.x.shape, a.y.shape, a.z.shape) == ((50, 2), (50, 3), (50, 1))


def test_transformed_groups_keep_the_truth_and_change_the_data() -> None:
    from mistgen.conditional import transform_groups
    s = conditional_sample("normal-factor", 100, 1, 3, 2, seed=5)
    t = transform_groups(s, "halfcube-spiral")
    assert t.params["transforms"] == "halfcube-spiral"
    assert not np.allclose(t.y, s.y) and not np.allclose(t.z, s.z)
    # each group's map is invertible (so the truth, which is kept, still holds)
    from mistgen.registry import TRANSFORMS as T
    for before, after, side in ((s.y, t.y, "y"), (s.z, t.z, "y")):
        back = T.get("halfcube").inverse(T.get("spiral").inverse(after, side), side)
        np.testing.assert_allclose(back, before, atol=1e-9)
    # spiral needs two columns: the one-column X gets the halfcube only
    from mistgen.registry import TRANSFORMS
    np.testing.assert_array_equal(t.x, TRANSFORMS.get("halfcube").forward(s.x, "x"))
    assert transform_groups(s, "base").x is s.x
    with pytest.raises(SpecError, match="unknown transform 'swirl'"):
        transform_groups(s, "swirl")


def test_bad_requests_are_named() -> None:
    with pytest.raises(SpecError, match="unknown conditional spec 'normal-dense'"):
        conditional_sample("normal-dense", 10, 1, 1, 1, seed=0)
    with pytest.raises(ShapeError, match="dim_z must be an integer >= 1"):
        conditional_sample("normal-chain", 10, 1, 1, 0, seed=0)


# -- the network ----------------------------------------------------------------------------

def small_net(seed: int = 0) -> MISTNet:
    torch.manual_seed(seed)
    return MISTNet(ModelConfig(conditional=True, **SMALL)).eval()


def test_conditional_config_is_a_point_estimator() -> None:
    with pytest.raises(ValueError, match="conditional network is a point estimator"):
        ModelConfig(variant="mist_qr", conditional=True)


def test_conditional_net_is_invariant_to_z_column_order_and_padding() -> None:
    net = small_net()
    s = conditional_sample("normal-factor", 40, 2, 2, 3, seed=1)
    other = conditional_sample("normal-factor", 60, 3, 3, 4, seed=2)
    with torch.no_grad():
        alone = net(*collate([(s.x, s.y, s.z)]).inputs())
        permuted = net(*collate([(s.x, s.y, s.z[:, ::-1])]).inputs())
        padded = net(*collate([(s.x, s.y, s.z), (other.x, other.y, other.z)]).inputs())
    assert torch.allclose(alone, permuted, atol=1e-5)
    assert torch.allclose(alone, padded[:1], atol=1e-5)


def test_z_columns_are_read_as_z() -> None:
    """The same columns tagged Y or Z give different answers: the tag is seen."""
    net = small_net()
    s = conditional_sample("normal-confounded", 40, 2, 2, 2, seed=3)
    batch = collate([(s.x, s.y, s.z)])
    as_y = batch.col_type.clone()
    as_y[as_y == 2] = 1
    with torch.no_grad():
        z = net(*batch.inputs())
        y = net(batch.values, batch.row_mask, batch.col_mask, as_y)
    assert not torch.allclose(z, y)


@pytest.mark.parametrize("corrected", [False, True])
def test_widening_keeps_the_unconditional_weights(corrected) -> None:
    torch.manual_seed(0)
    base = MISTNet(ModelConfig(**SMALL))
    net = MISTNet(ModelConfig(conditional=True, corrected_stat=corrected, **SMALL))
    state = base.state_dict()
    widen_unconditional(net, state)
    own = net.state_dict()
    assert torch.equal(own["embed.tag.weight"][:2], state["embed.tag.weight"])
    assert torch.equal(own["col_bias.0.pair"][:, :2, :2], state["col_bias.0.pair"])
    m = state["pairs.net.0.weight"].shape[1] - 4
    assert torch.equal(own["pairs.net.0.weight"][:, [m, m + 1, m + 3, m + 4]],
                       state["pairs.net.0.weight"][:, m:])
    assert torch.equal(own["row_pool.seed"], state["row_pool.seed"])
    s_, w = SMALL["summary_width"], SMALL["pair_width"]
    head, old_head = own["head.net.0.weight"], state["head.net.0.weight"]
    assert torch.equal(head[:, :5 * s_], old_head[:, :5 * s_])
    assert not head[:, 5 * s_:7 * s_].any()                       # the Z pools start at 0
    base_ = 7 * s_ + 2 * w
    assert torch.equal(head[:, base_ + 4:base_ + 8], old_head[:, 5 * s_ + 2 * w + 3:])


def test_corrected_statistic_is_the_partial_correlation_form_on_gaussians() -> None:
    """The Wishart-corrected Gaussian-copula I(X;Y|Z) is about as accurate as CCA's
    bias-corrected partial form on Gaussian samples, far better than the shrunk one."""
    torch.manual_seed(0)
    net = MISTNet(ModelConfig(conditional=True, corrected_stat=True, **SMALL))
    errors = {"corrected": [], "shrunk": [], "cca": []}
    for r in range(6):
        s = conditional_sample("normal-factor", 400, 8, 8, 8, seed=[11, r])
        _, feats = net.statistics(*collate([(s.x, s.y, s.z)]).inputs())
        errors["corrected"].append(abs(float(feats[0, -2]) * 10 - s.cmi))
        errors["shrunk"].append(abs(float(feats[0, 4]) * 10 - s.cmi))
        errors["cca"].append(abs(CCA().estimate_conditional(s.x, s.y, s.z) - s.cmi))
    mean = {k: np.mean(v) for k, v in errors.items()}
    assert mean["corrected"] < 1.5 * mean["cca"] + 0.01
    assert mean["corrected"] < 0.5 * mean["shrunk"]


def test_corrected_statistic_of_an_unconditional_network_is_unbiased_on_gaussians() -> None:
    """The same options on an I(X;Y) network: Z-free blocks, the Wishart bias with dz = 0."""
    import mistgen
    torch.manual_seed(0)
    net = MISTNet(ModelConfig(corrected_stat=True, anchor=True, **SMALL))
    corrected, shrunk = [], []
    for r in range(8):
        s = mistgen.sample("normal-dense", 300, 8, 8, seed=r)
        _, feats = net.statistics(*collate([(s.x, s.y)]).inputs())
        corrected.append(float(feats[0, -2]) * 10 - s.mi)
        shrunk.append(float(feats[0, 3]) * 10 - s.mi)
    assert abs(np.mean(corrected)) < 0.5 * np.mean(shrunk)
    assert net.stats.n_features == 9


def test_an_anchored_head_that_outputs_zero_returns_its_statistic() -> None:
    torch.manual_seed(0)
    net = MISTNet(ModelConfig(conditional=True, corrected_stat=True, anchor=True, **SMALL))
    with torch.no_grad():
        net.head.net[-1].weight.zero_()
        net.head.net[-1].bias.zero_()
    s = conditional_sample("normal-confounded", 300, 2, 2, 2, seed=4)
    batch = collate([(s.x, s.y, s.z)])
    corr, feats = net.statistics(*batch.inputs())
    with torch.no_grad():
        out = net(*batch.inputs())
    expected = max(float(feats[0, -2]) * 10, 1e-3)
    assert float(out[0]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="anchor needs the point head"):
        ModelConfig(variant="mist_qr", anchor=True)


# -- training -------------------------------------------------------------------------------

def test_training_draws_are_pure_and_within_the_cell_budget(tmp_path) -> None:
    cfg = ConditionalTrainConfig(out=str(tmp_path), init="unused", n_range=(20, 400),
                                 dim_range=(1, 5), batch_size=8, max_cells=20_000)
    a, b = draw_step(cfg, [0, 0, 3]), draw_step(cfg, [0, 0, 3])
    assert [s.x.tobytes() for s in a] == [s.x.tobytes() for s in b]
    n = a[0].n
    widest = max(s.x.shape[1] + s.y.shape[1] + s.z.shape[1] for s in a)
    assert len(a) == 1 or len(a) * n * widest <= cfg.max_cells
    with pytest.raises(ValueError, match="unknown: \\['normal-dense'\\]"):
        ConditionalTrainConfig(out="x", init="y", specs=["normal-dense"])


def test_a_short_run_writes_a_loadable_conditional_checkpoint(tmp_path) -> None:
    from mistmodel.checkpoint import save_checkpoint
    torch.manual_seed(0)
    base = MISTNet(ModelConfig(**SMALL))
    init = save_checkpoint(tmp_path / "base.safetensors", base.state_dict(),
                           {"variant": "mist", "model_config": base.config.to_dict()})
    threads = torch.get_num_threads()
    cfg = ConditionalTrainConfig(out=str(tmp_path / "run"), init=str(init), steps=4,
                                 n_range=(20, 60), dim_range=(1, 3), val_count=8,
                                 eval_every=2, progress=False, threads=1)
    path = train_conditional(cfg)
    assert torch.get_num_threads() == threads
    mist = MIST.load(path, backend="torch")
    assert mist.is_conditional and mist.name == "mist_cmi"
    assert mist.data_ranges["dim_z"] == [1, 3]
    stage = mist.meta["stages"][-1]["conditional_train_config"]
    assert stage["steps"] == 4 and stage["n_range"] == [20, 60]
    s = conditional_sample("normal-chain", 30, 1, 2, 2, seed=0)
    assert np.isfinite(mist.estimate_conditional(s.x, s.y, s.z))
    with pytest.raises(ValueError, match="dim_z = 4 > 3"):
        mist.estimate_conditional(s.x, s.y, np.hstack([s.z, s.z + 1.0]))


# -- the estimator API (shipped checkpoint) -----------------------------------------------

@pytest.fixture(scope="module")
def mist_cmi() -> MIST:
    return MIST.load(variant="mist_cmi")


def test_point_checkpoints_refuse_conditional_mi_and_name_the_right_one() -> None:
    x = np.random.default_rng(0).standard_normal((50, 1))
    with pytest.raises(NotImplementedError, match="MIST.load\\(variant='mist_cmi'\\)"):
        MIST.load().estimate_conditional(x, x ** 3, x + 1)
    assert not MIST.load().estimates_conditional


def test_the_conditional_checkpoint_refuses_plain_mi(mist_cmi) -> None:
    x = np.random.default_rng(0).standard_normal((50, 2))
    assert mist_cmi.estimates_conditional
    with pytest.raises(RuntimeError, match="conditional \\(mist_cmi\\) checkpoint"):
        mist_cmi.estimate(x[:, :1], x[:, 1:])
    with pytest.raises(RuntimeError, match="conditional \\(mist_cmi\\) checkpoint"):
        mist_cmi.estimate_batch([(x[:, :1], x[:, 1:])])
    with pytest.raises(ValueError, match="every z column is constant"):
        mist_cmi.estimate_conditional_batch([(x[:, :1], x[:, 1:], np.ones((50, 1)))])
    assert repr(mist_cmi).startswith("MIST(name='mist_cmi', ") and mist_cmi.name == "mist_cmi"


def test_the_conditional_checkpoint_refuses_what_it_cannot_answer(mist_cmi) -> None:
    s = conditional_sample("normal-confounded", 200, 2, 2, 2, seed=1)
    flat = np.ones((200, 1))
    with pytest.raises(RuntimeError, match="mist_cmi"):
        mist_cmi.estimate(flat, s.y)                   # a constant side does not slip by
    with pytest.raises(RuntimeError, match="MIST.interval estimates I\\(X; Y\\)"):
        mist_cmi.interval(s.x, s.y, n_boot=10)
    with pytest.raises(RuntimeError, match="mist_cmi"):
        mist_cmi.estimate_with_interval(s.x, s.y)
    with pytest.raises(ValueError, match="every z column is constant"):
        mist_cmi.estimate_conditional(flat, s.y, flat)
    with pytest.raises(ValueError, match="sample 0: expected an \\(x, y, z\\) triple"):
        mist_cmi.estimate_conditional_batch([(s.x, s.y)])
    import mistgen
    with pytest.raises(ValueError, match="without .x, .y and .z"):
        mist_cmi.estimate_conditional_batch([mistgen.sample("normal-dense", 50, 1, 1, seed=0)])


def test_samples_below_the_trained_n_warn(mist_cmi) -> None:
    from mistmodel.mist import OutOfRangeWarning, SmallSampleWarning
    s = conditional_sample("normal-confounded", 30, 2, 2, 2, seed=1)
    with pytest.warns(OutOfRangeWarning, match="n >= 50 rows; got n = 30"):
        mist_cmi.estimate_conditional(s.x, s.y, s.z)
    with pytest.warns(SmallSampleWarning, match="n >= 50 rows; got n = 8"):
        mist_cmi.estimate_conditional(s.x[:8], s.y[:8], s.z[:8])


def test_batch_and_single_agree_and_constant_sides_give_zero(mist_cmi) -> None:
    samples = [conditional_sample(spec, n, 2, 1, 3, seed=i)
               for i, (spec, n) in enumerate([("normal-collider", 80), ("student-chain", 200)])]
    batch = mist_cmi.estimate_conditional_batch(samples)
    single = [mist_cmi.estimate_conditional(s.x, s.y, s.z) for s in samples]
    np.testing.assert_allclose(batch, single, atol=1e-5)
    s = samples[0]
    flat = np.ones_like(s.x)
    assert mist_cmi.estimate_conditional(flat, s.y, s.z) == 0.0
    assert mist_cmi.estimate_conditional_batch([(flat, s.y, s.z), s])[0] == 0.0


def test_backends_agree_on_conditional_samples() -> None:
    samples = [conditional_sample("normal-factor", n, 3, 2, 4, seed=n) for n in (60, 150)]
    torch_est = MIST.load(variant="mist_cmi", backend="torch").estimate_conditional_batch(samples)
    auto = MIST.load(variant="mist_cmi")
    assert type(auto._run).__name__ == "TorchBackend"     # the SIMD kernels are X/Y only
    with pytest.warns(UserWarning, match="X/Y network only"):
        MIST.load(variant="mist_cmi", backend="simd")
    pytest.importorskip("onnxruntime")
    onnx = MIST.load(variant="mist_cmi", backend="onnx").estimate_conditional_batch(samples)
    np.testing.assert_allclose(onnx, torch_est, atol=3e-5)


def test_shipped_checkpoint_beats_knn_on_held_out_samples(mist_cmi) -> None:
    """Colliders (a trained structure, new seeds) and the held-out factor family at 4
    columns per group, n = 300: the nearest-neighbour estimator is biased low there, MIST
    must do better."""
    samples = [conditional_sample(spec, 300, 4, 4, 4, seed=[99, r])
               for spec in ("normal-collider", "student-factor") for r in range(4)]
    truth = np.array([s.cmi for s in samples])
    mist = np.abs(mist_cmi.estimate_conditional_batch(samples) - truth).mean()
    ksg = np.abs(np.array([KSG().estimate_conditional(s.x, s.y, s.z) for s in samples])
                 - truth).mean()
    assert mist < ksg


def test_shipped_checkpoint_is_near_zero_on_gaussian_chains(mist_cmi) -> None:
    samples = [conditional_sample("normal-chain", 1000, d, d, d, seed=[98, d, r])
               for d in (1, 4) for r in range(3)]
    assert all(abs(s.cmi) < 1e-12 for s in samples)
    assert np.abs(mist_cmi.estimate_conditional_batch(samples)).max() < 0.03


def test_default_checkpoint_names_the_variants() -> None:
    assert default_checkpoint("mist_cmi").name == "mist_cmi.safetensors"
    with pytest.raises(ValueError, match="'mist', 'mist_qr', 'mist_cmi'"):
        default_checkpoint("cmi")
    assert CONDITIONAL_SPECS[0] == "normal-chain"


def test_bad_training_configs_are_refused_by_name(tmp_path) -> None:
    for bad, message in (({"n_range": (20.5, 60.2)}, "n_range must be two whole numbers"),
                         ({"n_range": (10, 3, 4)}, "n_range must be two whole numbers"),
                         ({"n_range": "ab"}, "n_range must be two whole numbers"),
                         ({"dim_range": (1.5, 2.5)}, "dim_range must be two whole numbers"),
                         ({"seed": -1}, "seed must be a whole number"),
                         ({"seed": 1.5}, "seed must be a whole number"),
                         ({"seed": 2 ** 70}, "seed must be a whole number"),
                         ({"anchor": "no"}, "anchor must be true or false"),
                         ({"progress": "no"}, "progress must be true or false"),
                         ({"n_range": (200_000, 200_000), "dim_range": (16, 16),
                           "max_cells": 1000}, "holds 9,600,000 cells, above max_cells")):
        with pytest.raises(ValueError, match=message):
            ConditionalTrainConfig(out=str(tmp_path / "o"), init="i", **bad)
    assert not (tmp_path / "o").exists()


def test_training_writes_over_no_earlier_run_and_stops_when_it_diverges(tmp_path) -> None:
    from mistmodel.checkpoint import save_checkpoint
    torch.manual_seed(0)
    base = MISTNet(ModelConfig(**SMALL))
    init = save_checkpoint(tmp_path / "base.safetensors", base.state_dict(),
                           {"variant": "mist", "model_config": base.config.to_dict()})
    settings = dict(init=str(init), steps=2, n_range=(20, 60), dim_range=(1, 3), val_count=8,
                    eval_every=2, progress=False, threads=1)
    first = train_conditional(ConditionalTrainConfig(out=str(tmp_path / "run"), **settings))
    before = first.read_bytes()
    with pytest.raises(FileExistsError, match="already holds checkpoint.safetensors and "
                                              "metrics.json of an earlier run"):
        train_conditional(ConditionalTrainConfig(out=str(tmp_path / "run"),
                                                 **{**settings, "seed": 7}))
    assert first.read_bytes() == before
    with pytest.raises(FloatingPointError, match="loss (became )?nan at step"):
        train_conditional(ConditionalTrainConfig(out=str(tmp_path / "nan"),
                                                 **{**settings, "lr": 1e30}))
    assert not (tmp_path / "nan" / "checkpoint.safetensors").exists()


def test_no_more_rows_than_columns_plus_two_is_warned_of() -> None:
    from mistmodel.caller_warnings import SmallSampleWarning

    net = MIST.load(variant="mist_cmi")
    wide = conditional_sample("normal-collider", n=50, dim_x=16, dim_y=16, dim_z=16, seed=0)
    with pytest.warns(SmallSampleWarning, match="n = 50 rows for 48 columns"):
        net.estimate_conditional(wide.x, wide.y, wide.z)
    import warnings
    one_more = conditional_sample("normal-collider", n=51, dim_x=16, dim_y=16, dim_z=16, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallSampleWarning)
        net.estimate_conditional(one_more.x, one_more.y, one_more.z)
