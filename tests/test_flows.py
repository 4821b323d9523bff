"""Flows fitted to modality data: exact inverses, save/load, determinism, bad settings.

Round-trip tolerance: the flows run in float64; ``to_noise(to_data(z))`` must return ``z``
within 1e-9 absolute (observed ~1e-14), and ``to_data(to_noise(v))`` must return ``v``
within 1e-9 relative, both over the fitted range and far into the linear tails.
"""
import json

import numpy as np
import pytest
import torch

from mistgen.flows import (
    FlowError, FlowSettings, ModalityFlows, build_transform, fit_flow, fit_modality,
    fit_modality_from_config, load_flows, save_flows,
)
from mistgen.modality import example_modality

QUICK = {"max_steps": 120, "eval_every": 20, "patience": 100}
TOL = 1e-9


@pytest.fixture(scope="module")
def modality():
    return example_modality()


@pytest.fixture(scope="module")
def flows(modality, tmp_path_factory):
    path = tmp_path_factory.mktemp("flows") / "bc.pt"
    return fit_modality(modality, QUICK, path=path), path


def test_inverse_recovers_input(flows, modality):
    f, _ = flows
    rng = np.random.default_rng(1)
    for side, data in ((f.x, modality.x), (f.y, modality.y)):
        z = np.concatenate([rng.standard_normal((4000, 2)), 15 * rng.standard_normal((200, 2))])
        np.testing.assert_allclose(side.to_noise(side.to_data(z)), z, rtol=0, atol=TOL)
        back = side.to_data(side.to_noise(data))
        assert np.max(np.abs(back - data) / np.maximum(1, np.abs(data))) < TOL
        # the map is not the identity: the fit moved the data
        assert np.abs(side.to_noise(data) - (data - side.mean) / side.std).max() > 0.1


def test_fit_beats_a_gaussian(flows, modality):
    f, _ = flows
    for side, data in ((f.x, modality.x), (f.y, modality.y)):
        mu, cov = data.mean(0), np.cov(data.T, bias=True)
        _, logdet = np.linalg.slogdet(cov)
        d = data - mu
        gauss = -0.5 * (np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d) + logdet
                        + 2 * np.log(2 * np.pi))
        assert side.log_prob(data).mean() > gauss.mean() + 0.05
        assert side.history["steps"] <= QUICK["max_steps"]
        assert np.isfinite(side.history["val_nll"])


def test_samples_look_like_the_data(flows, modality):
    from scipy.stats import ks_2samp

    f, _ = flows
    for side, data in ((f.x, modality.x), (f.y, modality.y)):
        s = side.sample(5000, seed=3)
        for j in range(2):
            fitted = ks_2samp(s[:, j], data[:, j]).statistic
            gaussian = ks_2samp(data[:, j].mean() + data[:, j].std() *
                                np.random.default_rng(j).standard_normal(5000),
                                data[:, j]).statistic
            assert fitted < 0.1
            if j == 1:  # the skewed columns (mean area, mean compactness)
                assert fitted < gaussian


def test_save_load_round_trip(flows, tmp_path):
    f, path = flows
    g = load_flows(path)
    assert g.name == "breast_cancer" and (g.dim_x, g.dim_y) == (2, 2)
    z = np.random.default_rng(2).standard_normal((300, 2))
    np.testing.assert_array_equal(g.x.to_data(z), f.x.to_data(z))
    np.testing.assert_array_equal(g.y.to_noise(z), f.y.to_noise(z))
    assert g.x.settings == f.x.settings == FlowSettings.from_mapping(QUICK)
    assert g.y.settings.seed == g.x.settings.seed + 1
    assert g.x.names == ["mean texture", "mean area"]
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["x"]["settings"]["max_steps"] == 120 and side["modality"]["rows"] == 569
    again = save_flows(g, tmp_path / "copy.pt")
    np.testing.assert_array_equal(load_flows(again).y.to_data(z), f.y.to_data(z))
    assert ModalityFlows.from_bytes(f.to_bytes()).x.to_data(z).tobytes() == f.x.to_data(z).tobytes()


def test_fit_is_deterministic_and_one_dim_works():
    rng = np.random.default_rng(0)
    data = rng.lognormal(size=(300, 1))
    a = fit_flow(data, {"max_steps": 60, "num_layers": 2})
    b = fit_flow(data, {"max_steps": 60, "num_layers": 2})
    z = np.linspace(-4, 4, 101)[:, None]
    np.testing.assert_array_equal(a.to_data(z), b.to_data(z))
    assert np.all(np.diff(a.to_data(z)[:, 0]) > 0)  # 1-D: a monotone map
    np.testing.assert_allclose(a.to_noise(a.to_data(z)), z, atol=TOL, rtol=0)
    c = fit_flow(data, {"max_steps": 60, "num_layers": 2, "seed": 5})
    assert not np.array_equal(a.to_data(z), c.to_data(z))
    assert torch.get_num_threads() >= 1


def test_transform_is_fast_both_ways():
    from nflows.transforms.autoregressive import AutoregressiveTransform

    t = build_transform(3, FlowSettings())
    assert not any(isinstance(m, AutoregressiveTransform) for m in t.modules())
    names = {type(m).__name__ for m in t.modules()}
    assert "PiecewiseRationalQuadraticCouplingTransform" in names
    assert "PiecewiseRationalQuadraticCDF" in names


@pytest.mark.parametrize("bad, match", [
    ({"num_layer": 3}, "unknown flow setting"), ({"num_layers": 0}, "> 0"),
    ({"num_bins": 1}, "num_bins"), ({"learning_rate": "fast"}, "number"),
    ({"max_steps": 10.5}, "integer"), ({"validation_fraction": 0.9}, "validation_fraction"),
    ({"seed": True}, "integer"),
])
def test_bad_settings(bad, match):
    with pytest.raises(FlowError, match=match):
        FlowSettings.from_mapping(bad)


def test_bad_fit_data_and_files(tmp_path):
    with pytest.raises(FlowError, match="NaN or inf"):
        fit_flow(np.full((50, 2), np.nan))
    with pytest.raises(FlowError, match="constant"):
        fit_flow(np.ones((50, 2)))
    with pytest.raises(FlowError, match="rows >= 10"):
        fit_flow(np.ones((5, 2)))
    with pytest.raises(FlowError, match="does not exist"):
        load_flows(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(FlowError, match="not a readable flow file"):
        load_flows(tmp_path / "junk.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(FlowError, match="format"):
        load_flows(tmp_path / "other.pt")
    from mistgen.flows import FLOWS_FORMAT
    torch.save({"format": FLOWS_FORMAT}, tmp_path / "half.pt")       # the right format, no flows
    with pytest.raises(FlowError, match="half.pt is not a complete flow file"):
        load_flows(tmp_path / "half.pt")


def test_loading_and_fitting_leave_the_callers_torch_state(flows, modality, tmp_path):
    _, path = flows
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    load_flows(path)
    assert torch.equal(torch.rand(3), expected)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)      # a caller's choice: the fit still runs
    try:
        torch.manual_seed(0)
        fitted = fit_flow(modality.x, {"max_steps": 20, "eval_every": 10})
        assert torch.equal(torch.rand(3, dtype=torch.float32), expected)
    finally:
        torch.set_default_dtype(before)
    back = fitted.to_noise(fitted.to_data(np.zeros((5, modality.x.shape[1]))))
    assert np.abs(back).max() < 1e-9


def test_fit_from_config(tmp_path):
    rng = np.random.default_rng(4)
    np.save(tmp_path / "d.npy", np.hstack([rng.gamma(2, size=(150, 1)), rng.normal(size=(150, 1))]))
    entry = {"path": "d.npy", "x_columns": [0], "y_columns": [1],
             "flow": {"max_steps": 40, "num_layers": 1}}
    f = fit_modality_from_config("toy", entry, tmp_path / "flows" / "toy.pt", base_dir=tmp_path)
    g = load_flows(tmp_path / "flows" / "toy.pt")
    assert g.name == "toy" and g.x.settings.max_steps == 40 and g.x.settings.num_layers == 1
    assert (f.dim_x, f.dim_y) == (1, 1)


def test_the_same_fit_gives_the_same_bytes_and_a_users_json_is_kept(modality, tmp_path):
    a = fit_modality(modality, QUICK, path=tmp_path / "a.pt")
    fit_modality(modality, QUICK, path=tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    (tmp_path / "mine.json").write_text('{"my": "notes"}')
    with pytest.raises(FlowError, match="mine.json exists and is not a flows description"):
        a.save(tmp_path / "mine.pt")
    assert (tmp_path / "mine.json").read_text() == '{"my": "notes"}'
    assert not (tmp_path / "mine.pt").exists()
    a.save(tmp_path / "a.pt")                         # its own sidecar: replaced
    with pytest.raises(FlowError, match="saved as a .pt file"):
        a.save(tmp_path / "c.json")


def test_a_fit_shows_its_progress_when_asked(modality, capsys):
    fit_modality(modality, {"max_steps": 40, "eval_every": 20}, progress=True)
    err = capsys.readouterr().err
    assert "breast_cancer: X flow" in err and "breast_cancer: Y flow" in err
    assert "val_nll=" in err and "stale=" in err
    fit_modality(modality, {"max_steps": 20, "eval_every": 20})
    assert capsys.readouterr().err == ""
