"""The MIST estimator API: loading, batching, quantiles, intervals, threads and bad input."""
import threading
import warnings

import numpy as np
import pytest
import torch

from mistmodel import MIST, backends
from mistmodel.batching import collate
from mistmodel.checkpoint import CheckpointError
from mistmodel.estimators.base import Estimator
from mistmodel.caller_warnings import UncalibratedLevelWarning
from mistmodel.mist import OutOfRangeWarning, SmallSampleWarning, default_checkpoint
from mistmodel.model import MISTNet, ModelConfig


def tiny(variant, ranges=None):
    torch.manual_seed(0)
    net = MISTNet(ModelConfig(variant=variant, width=8, summary_width=16, pair_width=8,
                              head_hidden=16))
    meta = {"data_ranges": ranges or {"n": [10, 500], "dim_x": [1, 8], "dim_y": [1, 8]}}
    return MIST(net, meta, checkpoint=None, device="cpu")


@pytest.fixture(scope="module")
def point():
    return tiny("mist")


@pytest.fixture(scope="module")
def qr():
    return tiny("mist_qr")


def gaussian(rng, n, rho, d=1):
    x = rng.standard_normal((n, d))
    return x, rho * x + np.sqrt(1 - rho ** 2) * rng.standard_normal((n, d))


def test_is_an_estimator(point, qr):
    assert isinstance(point, Estimator)
    assert point.name == "mist" and qr.name == "mist_qr"
    assert set(point.settings()) >= {"checkpoint", "variant"}


def test_estimate_batch_matches_single_estimates(point, qr):
    rng = np.random.default_rng(0)
    samples = [gaussian(rng, n, 0.5, d) for n, d in [(30, 1), (200, 3), (55, 2), (12, 1)]]
    single = np.array([point.estimate(x, y) for x, y in samples])
    np.testing.assert_allclose(point.estimate_batch(samples), single, rtol=1e-5, atol=1e-6)
    med = qr.estimate_batch(samples)
    np.testing.assert_allclose(med, [qr.quantiles(x, y, [0.5])[0] for x, y in samples],
                               rtol=1e-5, atol=1e-6)


def test_estimate_batch_accepts_sample_objects(point):
    class S:
        def __init__(self, x, y):
            self.x, self.y = x, y
    rng = np.random.default_rng(1)
    x, y = gaussian(rng, 40, 0.3)
    assert point.estimate_batch([S(x, y)])[0] == pytest.approx(point.estimate(x, y), rel=1e-6)


def test_quantiles_and_interval(qr):
    rng = np.random.default_rng(2)
    x, y = gaussian(rng, 100, 0.7, 2)
    q = qr.quantiles(x, y, np.linspace(0.01, 0.99, 99))
    assert np.all(np.diff(q) >= 0)
    lo, hi = qr.interval(x, y, level=0.9)
    lo8, hi8 = qr.interval(x, y, level=0.8)
    assert lo <= lo8 <= qr.estimate(x, y) <= hi8 <= hi
    rec = qr.estimate_with_interval(x, y, level=0.9)
    assert (rec.lower, rec.upper) == pytest.approx((lo, hi))
    with pytest.raises(ValueError, match="tau = 0,"):
        qr.quantiles(x, y, [0.0, 0.5])
    with pytest.raises(ValueError, match="level"):
        qr.interval(x, y, level=1.5)


def test_point_checkpoint_refuses_quantiles(point):
    rng = np.random.default_rng(3)
    x, y = gaussian(rng, 50, 0.5)
    with pytest.raises(RuntimeError, match="mist_qr"):
        point.quantiles(x, y, [0.5])
    with pytest.raises(RuntimeError, match="quantile"):
        point.interval(x, y)
    lo, hi = point.interval(x, y, n_boot=10)      # explicit bootstrap, as for the baselines
    assert lo <= hi


@pytest.mark.parametrize("bad,match", [
    ("nan", "NaN"), ("inf", "inf"), ("rows", "same number of rows"),
    ("one_d", "2-D"), ("text", "numeric"), ("n1", "at least 2 rows"),
])
def test_bad_input_raises_clearly(point, bad, match):
    rng = np.random.default_rng(4)
    x, y = gaussian(rng, 30, 0.5, 2)
    if bad == "nan":
        x[3, 1] = np.nan
    elif bad == "inf":
        y[5, 0] = np.inf
    elif bad == "rows":
        y = y[:-1]
    elif bad == "one_d":
        x = x[:, 0]
    elif bad == "text":
        x = np.array([["a", "b"]] * 30)
    elif bad == "n1":
        x, y = x[:1], y[:1]
    with pytest.raises(ValueError, match=match):
        point.estimate(x, y)
    with pytest.raises(ValueError, match=match):
        point.estimate_batch([gaussian(rng, 20, 0.1), (x, y)])


def test_small_n_warns_but_answers(point):
    rng = np.random.default_rng(5)
    x, y = gaussian(rng, 6, 0.5)
    with pytest.warns(SmallSampleWarning, match="n >= 10"):
        value = point.estimate(x, y)
    assert np.isfinite(value)


def test_estimates_above_the_training_mi_at_their_width_warn(point, qr):
    """The card's mi_ceiling: the largest training MI by the narrower side's width."""
    rng = np.random.default_rng(11)
    wide = gaussian(rng, 60, 0.5, 3)                      # narrower side: 3 columns
    narrow = (wide[0], wide[1][:, :1])                     # narrower side: 1 column
    constant = (np.ones((60, 2)), wide[1])                 # gets 0, never checked
    values = point.estimate_batch([constant, narrow, wide])
    ranges = point.meta["data_ranges"]

    def net(ceiling, variant=point):
        return MIST(variant.network, {"data_ranges": ranges, "mi_ceiling": ceiling},
                    device="cpu")

    assert values[1] < values[2]
    mid = float(values[1] + values[2]) / 2                # between the two samples' readings
    above = net({"1": mid, "2": mid, "3": mid})
    assert above.mi_ceiling == {1: mid, 2: mid, 3: mid}
    with pytest.warns(OutOfRangeWarning, match=r"^sample 2: MIST reads .* at most 3 columns "
                                               r"on the narrower side"):
        np.testing.assert_allclose(above.estimate_batch([constant, narrow, wide]), values,
                                   rtol=1e-5, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        above.estimate(*narrow)                           # below its width's ceiling
        net({"1": float(values[1]) + 1.0}).estimate(*wide)   # beyond the widest: its ceiling
        net({"2": 0.0, "3": 0.0}).estimate(*narrow)        # narrower than any trained: no check
        MIST(point.network, {"data_ranges": ranges}, device="cpu").estimate(*wide)
    with pytest.warns(OutOfRangeWarning, match=r"^MIST reads .* at most 1 columns.*may be "
                                               r"far higher"):
        net({"1": float(values[2]) - 1e-3}).estimate(*wide)
    # far beyond where the network saturates: the estimate says nothing of the MI
    with pytest.warns(OutOfRangeWarning, match=r"That is 5 times it.*says nothing of the MI"):
        net({"1": float(values[2]) / 5}).estimate(*wide)
    # MIST-QR: its median is what is checked, whatever else is asked
    median = float(qr.quantiles(*wide, [0.5])[0])
    with pytest.warns(OutOfRangeWarning, match="MIST reads"):
        net({"3": median - 1e-3}, qr).interval(*wide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", UncalibratedLevelWarning)   # no factors in its meta
        net({"3": median + 1e-3}, qr).interval(*wide)


def test_table_helpers_name_the_feature_or_pair_a_warning_is_about(point):
    import pandas as pd

    from mistmodel.matrix import mi_matrix
    from mistmodel.selection import mutual_info_scores
    rng = np.random.default_rng(13)
    frame = pd.DataFrame(rng.standard_normal((80, 3)), columns=["u", "v", "w"])
    values = point.estimate_batch([(frame[["u"]].to_numpy(), frame[["w"]].to_numpy()),
                                   (frame[["v"]].to_numpy(), frame[["w"]].to_numpy())])
    low = MIST(point.network, {"data_ranges": point.meta["data_ranges"],
                               "mi_ceiling": {"1": float(values.min()) - 1e-3}},
               device="cpu", cross_check=False)
    with pytest.warns(OutOfRangeWarning, match="^mutual_info_scores: feature 'u': MIST"):
        mutual_info_scores(frame[["u", "v"]], frame["w"], estimator=low)
    with pytest.warns(OutOfRangeWarning, match=r"^mi_matrix: variables '\w' and '\w': MIST"):
        mi_matrix(frame, low)
    with pytest.raises(ValueError, match="mi_ceiling"):
        MIST(point.network, {"mi_ceiling": {"1": 1.0, "3": 2.0}}, device="cpu")
    wide = pd.DataFrame(rng.standard_normal((80, 11)), columns=[f"c{j}" for j in range(11)])
    groups = {"big": [f"c{j}" for j in range(10)], "one": ["c10"]}
    with pytest.raises(ValueError, match=r"^mi_matrix: variables 'big' and 'one': sample "
                                         r"beyond .*dim_x = 10 > 8"):
        mi_matrix(wide, point, groups=groups)


def test_dims_beyond_training_are_refused_unless_asked(point):
    rng = np.random.default_rng(6)
    x, y = gaussian(rng, 40, 0.5, 12)
    with pytest.raises(ValueError, match=r"dim_x = 12 > 8.*out_of_range='warn'"):
        point.estimate(x, y)
    with pytest.raises(ValueError, match="dim_y = 12 > 8"):
        point.estimate_batch([gaussian(rng, 40, 0.5, 2), (x[:, :2], y)])
    lenient = MIST(point.network, point.meta, device="cpu", out_of_range="warn")
    with pytest.warns(OutOfRangeWarning, match="dim_x = 12 > 8"):
        value = lenient.estimate(x, y)
    assert np.isfinite(value)
    with pytest.raises(ValueError, match="out_of_range"):
        MIST(point.network, point.meta, device="cpu", out_of_range="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        point.estimate(*gaussian(rng, 40, 0.5, 8))   # inside the range: silent


def test_constant_side_gives_zero(point):
    rng = np.random.default_rng(7)
    x = np.ones((40, 2))
    y = rng.standard_normal((40, 1))
    assert point.estimate(x, y) == 0.0
    out = point.estimate_batch([(x, y), gaussian(rng, 40, 0.9)])
    assert out[0] == 0.0 and out[1] > 0


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no MIST checkpoint"):
        MIST.load(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a safetensors MIST checkpoint"):
        MIST.load(tmp_path / "junk.safetensors")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        MIST.load(device="cuda")


def test_unknown_backend_and_bad_threads_are_refused():
    with pytest.raises(ValueError, match="backend 'nope'"):
        MIST.load(backend="nope")
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            MIST.load(threads=bad)


def test_shipped_checkpoints_load_offline_and_make_sense():
    mist = MIST.load()
    qr = MIST.load(variant="mist_qr")
    assert mist.variant == "mist" and qr.variant == "mist_qr"
    assert default_checkpoint("mist").stat().st_size < 20e6
    rng = np.random.default_rng(8)
    indep = (rng.standard_normal((500, 2)), rng.standard_normal((500, 2)))
    strong = gaussian(rng, 500, 0.9, 2)      # true MI = 2 * 0.830 = 1.661 nats
    est = mist.estimate_batch([indep, strong])
    assert est[0] < 0.3
    assert 1.0 < est[1] < 2.4
    lo, hi = qr.interval(*strong, level=0.9)
    assert lo < 1.661 < hi


def test_shipped_checkpoints_are_near_zero_at_independence():
    # X independent of Y under two marginals, d = 1 and 4, n = 1,000: the checkpoints were
    # trained with independence and a log-scale loss (a checkpoint without it gives ~0.08)
    import mistgen
    import mistgen.families.checks  # noqa: F401  (registers the independence families)
    samples = [mistgen.sample(spec, 1000, d, d, seed=r)
               for spec in ("independent-normal-base", "independent-lognormal-base")
               for d in (1, 4) for r in range(4)]
    for variant in ("mist", "mist_qr"):
        est = MIST.load(variant=variant).estimate_batch(samples)
        assert abs(est.mean()) < 0.03 and est.max() < 0.06, (variant, est)


def test_shipped_checkpoints_warn_where_they_saturate():
    # 2 + 2 Gaussian pairs: MI 1.6 reads right, silently; MI 5.8 (twice the largest MI of
    # the training samples with 2 columns a side, 2.91) reads about 4.3, with a warning
    rng = np.random.default_rng(12)
    for variant in ("mist", "mist_qr"):
        mist = MIST.load(variant=variant, cross_check=False)
        assert sorted(mist.mi_ceiling) == list(range(1, 33)) and mist.mi_ceiling[2] < 3.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mist.estimate(*gaussian(rng, 1000, 0.9, 2))
        with pytest.warns(OutOfRangeWarning, match="at most 2 columns on the narrower side"):
            mist.estimate(*gaussian(rng, 1000, np.sqrt(1 - np.exp(-5.82)), 2))


def test_shipped_checkpoint_invariant_to_increasing_transforms():
    mist = MIST.load()
    rng = np.random.default_rng(9)
    x, y = gaussian(rng, 300, 0.6, 3)
    a = mist.estimate(x, y)
    b = mist.estimate(np.arcsinh(x), y * np.sqrt(np.abs(y)))
    assert a == pytest.approx(b, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("name", backends.BACKENDS)
def test_every_backend_gives_the_network_estimates(name):
    try:
        mist = MIST.load(backend=name)
    except ImportError as exc:
        pytest.skip(f"backend {name!r} is not installed here: {exc}")
    rng = np.random.default_rng(20)
    samples = [gaussian(rng, n, 0.6, d) for n, d in [(40, 1), (300, 4), (120, 2), (15, 3)]]
    got = mist.estimate_batch(samples)
    with torch.inference_mode():
        want = np.array([float(mist.network(*collate([s]).inputs())) for s in samples])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def other_thread_count() -> int:
    return 1 if torch.get_num_threads() > 1 else 2


def test_threads_apply_during_the_call_and_are_restored():
    rng = np.random.default_rng(21)
    samples = [(rng.standard_normal((n, 2)), rng.standard_normal((n, 3)))
               for n in (30, 45, 60, 80, 120, 150)]
    before = torch.get_num_threads()
    mist = MIST.load(device="cpu", max_cells=600, threads=other_thread_count())
    together = mist.estimate_batch(samples)                  # about one sample per chunk
    assert torch.get_num_threads() == before
    one_by_one = np.array([mist.estimate(x, y) for x, y in samples])
    assert torch.get_num_threads() == before
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-5)


class FailingNetwork(MISTNet):
    """A network whose forward pass raises, as one that runs out of memory would."""

    def forward(self, *args, **kwargs):
        raise RuntimeError("forward pass failed")


def test_threads_are_restored_when_the_call_raises(point):
    before = torch.get_num_threads()
    mist = MIST(FailingNetwork(point.network.config), point.meta, threads=other_thread_count())
    rng = np.random.default_rng(22)
    with pytest.raises(RuntimeError, match="forward pass failed"):
        mist.estimate(*gaussian(rng, 40, 0.5, 2))
    assert torch.get_num_threads() == before


def thread_count_in_a_fresh_thread(first_call=None) -> int:
    """torch's thread count seen by a new thread after ``first_call`` (its first torch
    call), or without one."""
    seen = []

    def body():
        if first_call is not None:
            first_call()
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    return seen[0]


@pytest.mark.parametrize("threads", [None, 1])
def test_a_thread_whose_first_torch_call_is_mist_keeps_its_thread_count(point, threads):
    mist = MIST(point.network, point.meta, threads=threads)
    rng = np.random.default_rng(23)
    x, y = gaussian(rng, 60, 0.5, 2)
    before = torch.get_num_threads()
    fresh = thread_count_in_a_fresh_thread()
    after_mist = thread_count_in_a_fresh_thread(lambda: mist.estimate_batch([(x, y)] * 3))
    assert after_mist == fresh
    assert torch.get_num_threads() == before


def test_quantiles_beyond_the_trained_tau_grid_are_refused(qr):
    rng = np.random.default_rng(24)
    x, y = gaussian(rng, 80, 0.6, 2)
    with pytest.raises(ValueError, match=r"tau in \[0.01, 0.99\]; got tau = 0.005"):
        qr.quantiles(x, y, [0.005, 0.5])
    with pytest.raises(ValueError, match="up to level 0.98"):
        qr.interval(x, y, level=0.99)
    with pytest.raises(ValueError, match="up to level 0.98"):
        qr.interval_batch([(x, y)], level=0.999999)
    lo, hi = qr.interval(x, y, level=0.98)                       # the widest it can give
    assert qr.last_info["level"] == 0.98 and lo <= hi


def test_interval_says_whether_it_is_calibrated():
    rng = np.random.default_rng(25)
    x, y = gaussian(rng, 80, 0.6, 2)
    net = tiny("mist_qr").network
    calibration = {"factors": {"0.9": 0.2}, "n_cuts": [20], "factors_by_n": {}}
    qr = MIST(net, {"interval_calibration": calibration})
    raw = qr.interval_batch([(x, y)], level=0.9, calibrated=False)[0]
    lo, hi = qr.interval(x, y, level=0.9)
    assert "calibrated" in qr.last_info["interval_method"]
    assert lo < raw[0] and hi > raw[1]                           # widened by the factor
    with pytest.warns(UncalibratedLevelWarning, match=r"level 0\.7 \(calibrated levels: 0\.9\)"):
        lo7, hi7 = qr.interval(x, y, level=0.7)
    assert qr.last_info["interval_method"].startswith("raw quantiles")
    np.testing.assert_allclose([lo7, hi7], qr.quantiles(x, y, [0.15, 0.85]))


def test_constant_side_gives_a_zero_interval_and_reports_the_columns():
    rng = np.random.default_rng(26)
    calibration = {"factors": {"0.9": -0.05}, "n_cuts": [20], "factors_by_n": {}}
    qr = MIST(tiny("mist_qr").network, {"interval_calibration": calibration})
    x = np.column_stack([np.full(50, 3.0), np.full(50, -1.0)])
    y = rng.standard_normal((50, 2))
    assert qr.interval(x, y, level=0.9) == (0.0, 0.0)
    rec = qr.estimate_with_interval(x, y, level=0.9)
    assert (rec.value, rec.lower, rec.upper) == (0.0, 0.0, 0.0)
    assert rec.dropped_x == [0, 1] and rec.dropped_y == [] and rec.contains_value


def test_dropped_constant_columns_are_reported(point):
    rng = np.random.default_rng(27)
    x, y = gaussian(rng, 60, 0.7, 2)
    with_constant = np.column_stack([y[:, 0], np.full(60, 5.0), y[:, 1]])
    value = point.estimate(x, with_constant)
    assert point.last_info["dropped_y"] == [1] and point.last_info["dropped_x"] == []
    assert value == pytest.approx(point.estimate(x, y), rel=1e-6)


def test_estimate_with_interval_contains_the_median_or_says_why(qr):
    rng = np.random.default_rng(28)
    for n, d in [(30, 1), (200, 3)]:
        rec = qr.estimate_with_interval(*gaussian(rng, n, 0.5, d), level=0.9)
        assert rec.contains_value or rec.interval_note
        assert rec.info["level"] == 0.9


def test_estimate_with_interval_is_one_pass_giving_estimate_and_interval(qr, monkeypatch):
    """The median and both ends come from one forward pass, equal to what ``estimate`` and
    ``interval`` give separately, with the same record of the call."""
    rng = np.random.default_rng(29)
    calls = []
    run = qr._run
    monkeypatch.setattr(qr, "_run", lambda *a: calls.append(1) or run(*a))
    for n, d in [(40, 1), (300, 4), (5000, 2)]:
        x, y = gaussian(rng, n, 0.6, d)
        value, (lo, hi) = qr.estimate(x, y), qr.interval(x, y, level=0.8)
        info = {**qr.last_info}
        calls.clear()
        rec = qr.estimate_with_interval(x, y, level=0.8)
        assert len(calls) == 1
        assert (rec.value, rec.lower, rec.upper) == (value, lo, hi)
        assert rec.info["row_groups"] == qr.row_groups(n)
        assert all(rec.info[k] == v for k, v in info.items())
    from mistmodel.mist import TiedDataWarning
    x = rng.integers(0, 3, (200, 1)).astype(float)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        qr.estimate_with_interval(x, rng.standard_normal((200, 1)))
    # once each, not once per pass (the tiny network has no conformal factors)
    assert [w.category for w in caught] == [TiedDataWarning, UncalibratedLevelWarning]


def test_discrete_columns_warn_and_point_to_ksg(point):
    from mistmodel.mist import TiedDataWarning
    rng = np.random.default_rng(11)
    x = rng.integers(0, 4, (200, 1)).astype(float)
    y = np.hstack([x, rng.standard_normal((200, 1))])
    with pytest.warns(TiedDataWarning, match=r"y column 0 repeats values in 98% .*KSG"):
        point.estimate(rng.standard_normal((200, 2)), y)
    with pytest.warns(TiedDataWarning, match=r"sample 1, x column 0"):
        point.estimate_batch([(rng.standard_normal((50, 1)), rng.standard_normal((50, 1))),
                              (x, y)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # continuous data, and rounding that keeps 95% distinct
        point.estimate(np.round(rng.standard_normal((200, 2)), 3), rng.standard_normal((200, 1)))


def test_warnings_name_the_line_that_called_mist(point, qr):
    """Whatever the call path, a warning names the caller's line, not one inside mistmodel:
    the default filter then shows it once per line of user code."""
    from mistmodel.mist import TiedDataWarning
    rng = np.random.default_rng(12)
    wide = gaussian(rng, 40, 0.5, 12)
    tied = (rng.integers(0, 3, (60, 1)).astype(float), rng.standard_normal((60, 1)))
    lenient = {m: MIST(m.network, m.meta, device="cpu", out_of_range="warn") for m in (point, qr)}
    calls = {
        "estimate": lambda: lenient[point].estimate(*wide),
        "estimate_batch": lambda: lenient[point].estimate_batch([wide]),
        "bootstrap interval": lambda: lenient[point].estimate_with_interval(*wide, n_boot=3),
        "tied estimate": lambda: point.estimate(*tied),
        "tied bootstrap": lambda: point.bootstrap_distribution(*tied, n_boot=3),
        "small n": lambda: point.estimate(*gaussian(rng, 6, 0.5)),
        "qr interval": lambda: lenient[qr].interval(*wide),
        "qr interval_batch": lambda: lenient[qr].interval_batch([wide]),
        "qr quantiles": lambda: lenient[qr].quantiles(*wide, [0.5]),
        "qr estimate_with_interval": lambda: lenient[qr].estimate_with_interval(*wide),
        "qr tied interval": lambda: qr.interval(*tied),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        kinds = {w.category for w in caught}
        assert kinds and kinds <= {OutOfRangeWarning, TiedDataWarning, SmallSampleWarning,
                                   UncalibratedLevelWarning}, name
        assert {w.filename for w in caught} == {__file__}, name


# -- samples larger than the network reads at once ----------------------------------------

def test_max_rows_defaults_to_the_trained_n(point):
    assert point.max_rows == 500
    assert point.row_groups(500) == 1 and point.row_groups(501) == 2
    assert point.row_groups(100_000) == 200
    assert tiny("mist", {"dim_x": [1, 8]}).max_rows is None      # no trained n: whole sample


def test_a_large_sample_is_the_mean_over_disjoint_row_groups(qr):
    rng = np.random.default_rng(3)
    x, y = gaussian(rng, 230, 0.6, 2)
    split = MIST(qr.network, qr.meta, device="cpu", max_rows=50)
    whole = MIST(qr.network, qr.meta, device="cpu", max_rows=None)
    pieces, owner = split._split_rows([(x, y)])
    assert len(pieces) == 5 and (owner == 0).all()
    rows = np.sort(np.concatenate([p[0] for p in pieces]), axis=0)
    np.testing.assert_array_equal(rows, np.sort(x, axis=0))          # a partition of the rows
    assert max(len(p[0]) for p in pieces) - min(len(p[0]) for p in pieces) <= 1
    taus = [0.05, 0.5, 0.95]
    np.testing.assert_allclose(split.quantiles(x, y, taus),
                               whole.quantiles_batch(pieces, taus).mean(0), rtol=1e-6)
    assert split.estimate(x, y) == pytest.approx(whole.estimate_batch(pieces).mean(), rel=1e-6)
    assert split.last_info["row_groups"] == 5
    # the partition is random (row order does not matter) and seeded (repeatable)
    assert split.estimate(x, y) == split.estimate(x, y)
    assert not np.array_equal(pieces[0][0], x[:46])


def test_row_groups_keep_batches_and_warnings_in_range(point):
    rng = np.random.default_rng(4)
    big, small = gaussian(rng, 1200, 0.5), gaussian(rng, 40, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # n = 1200 > 500 reads in range
        batch = point.estimate_batch([big, small])
        single = point.estimate(*big)
    assert batch[0] == pytest.approx(single, rel=1e-5)
    assert batch[1] == pytest.approx(point.estimate(*small), rel=1e-5)
    whole = MIST(point.network, point.meta, device="cpu", max_rows=None)
    with pytest.warns(OutOfRangeWarning, match="n = 1200 > 500"):
        whole.estimate(*big)


def test_a_trained_n_too_small_for_row_groups_is_refused(point):
    meta = dict(point.meta, data_ranges=dict(point.meta["data_ranges"], n=[2, 3]))
    with pytest.raises(ValueError, match="data_ranges give at most 3 rows"):
        MIST(point.network, meta, device="cpu")
    assert MIST(point.network, meta, device="cpu", max_rows=None).max_rows is None


@pytest.mark.parametrize("bad", [0, 5, 19, 2.5, True, "all"])
def test_bad_max_rows_is_refused(point, bad):
    with pytest.raises(ValueError, match="max_rows"):
        MIST(point.network, point.meta, device="cpu", max_rows=bad)


def test_messages_number_columns_as_given_after_constant_ones_are_dropped():
    from mistmodel.estimators import CCA, KSG
    from mistmodel.mist import TiedDataWarning
    rng = np.random.default_rng(21)
    n = 300
    x, y = rng.standard_normal((n, 1)), rng.standard_normal((n, 1))
    wide = np.c_[np.ones(n), rng.standard_normal(n), rng.standard_normal(n)]
    wide[0, 2] = 1e300
    for est in (KSG(), CCA()):
        with pytest.raises(ValueError, match="^z column 2 spans too wide a range"):
            est.estimate_conditional(x, y, wide)
    tied = np.c_[np.ones(n), x, rng.integers(0, 3, n)]
    with pytest.warns(TiedDataWarning, match="^x column 2 repeats values"):
        MIST.load().estimate(tied, y)
    with pytest.warns(TiedDataWarning, match="^sample 1, x column 2 repeats values"):
        MIST.load().estimate_batch([(x, y), (tied, y)])
    with pytest.warns(TiedDataWarning, match="^z column 2 repeats values"):
        MIST.load(variant="mist_cmi").estimate_conditional(x, y, tied)
    with pytest.warns(TiedDataWarning, match="^KSG: x column 2 has few distinct values"):
        KSG(discrete=False).estimate(tied, y)


def test_loading_leaves_torch_s_generator_and_bad_settings_are_named():
    torch.manual_seed(0)
    expected = torch.randn(3)
    torch.manual_seed(0)
    MIST.load()
    assert torch.equal(torch.randn(3), expected)
    for bad in ({"seed": -1}, {"seed": 2.7}, {"seed": True}, {"max_cells": 0}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=f"{name} must be an integer >= "):
            MIST.load(**bad)
    assert MIST.load(threads=np.int64(1), seed=np.int64(3)).threads == 1


def test_loading_draws_nothing_from_the_generator_other_threads_use(drawn_beside):
    """The network is built without initial weights: a thread drawing from torch's global
    generator while checkpoints load gets the sequence its seed gives (saving and
    restoring the generator around a load would hand it repeats)."""
    from mistmodel.mist import load_network
    from mistmodel.shipped import default_checkpoint

    drawn_beside(lambda: [load_network(default_checkpoint("mist_qr")) for _ in range(10)])


def test_a_float64_default_dtype_gives_the_same_estimates():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 2))
    y = x + rng.standard_normal((300, 2))
    expected = {b: MIST.load(backend=b, cross_check=False).estimate(x, y)
                for b in ("torch", "auto")}
    qr = MIST.load(variant="mist_qr", cross_check=False).interval(x, y)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for b, value in expected.items():
            assert MIST.load(backend=b, cross_check=False).estimate(x, y) == value
        assert MIST.load(variant="mist_qr", cross_check=False).interval(x, y) == qr
    finally:
        torch.set_default_dtype(previous)


def test_a_quantile_interval_reports_its_row_groups():
    qr = MIST.load(variant="mist_qr", cross_check=False)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4500, 1))
    qr.interval(x, x + rng.standard_normal((4500, 1)))
    assert qr.last_info["row_groups"] == 2


def test_a_higher_level_never_gives_a_narrower_interval():
    import mistgen
    qr = MIST.load(variant="mist_qr", cross_check=False)
    samples = [mistgen.sample("normal-dense", n, d, d, 1000 * n + d)
               for n in (10, 15, 50, 300) for d in (1, 4)]
    levels = (0.5, 0.8, 0.9, 0.95, 0.96, 0.98)
    intervals = [qr.interval_batch(samples, level=level) for level in levels]
    for inner, outer in zip(intervals, intervals[1:]):
        assert np.all(outer[:, 0] <= inner[:, 0] + 1e-12)
        assert np.all(outer[:, 1] >= inner[:, 1] - 1e-12)
    # each calibrated level's own interval is the lower bound of what it gives
    raw = qr.interval_batch(samples, level=0.96, calibrated=False)
    assert np.all(intervals[4][:, 0] <= raw[:, 0]) and np.all(intervals[4][:, 1] >= raw[:, 1])


def test_a_network_that_answers_nan_is_an_error_not_an_estimate():
    mist = MIST.load(cross_check=False)
    with torch.no_grad():
        next(mist.network.head.parameters()).fill_(float("nan"))
    rng = np.random.default_rng(0)
    with pytest.raises(FloatingPointError, match="answered NaN or an infinite value"):
        mist.estimate(rng.standard_normal((50, 1)), rng.standard_normal((50, 1)))


def test_a_batch_call_leaves_no_single_calls_record():
    qr = MIST.load(variant="mist_qr", cross_check=False)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((80, 1)), rng.standard_normal((80, 1))
    qr.interval(x[:50], y[:50])
    assert qr.last_info["n"] == 50
    qr.interval_batch([(x, y)], level=0.97, calibrated=False)
    assert qr.last_info == {}
    qr.interval(x, y)
    qr.quantiles_batch([(x, y)], [0.5])
    assert qr.last_info == {}
