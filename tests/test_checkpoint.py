"""Loading MIST checkpoints: only safetensors with a valid card and the tensors its config
needs; anything else is refused with a message naming the problem, and runs nothing."""
import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mistmodel import MIST
from mistmodel.checkpoint import FORMAT, CheckpointError, save_checkpoint
from mistmodel.model import MISTNet, ModelConfig

CONFIG = ModelConfig(width=8, summary_width=16, pair_width=8, head_hidden=16)


class CreatesAFile:
    """Unpickling this object creates ``path``: the stand-in for code run by a pickle."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def state():
    torch.manual_seed(0)
    return MISTNet(CONFIG).state_dict()


def card(**changes):
    return {"variant": CONFIG.variant, "model_config": CONFIG.to_dict(), **changes}


def test_a_saved_checkpoint_loads_and_estimates(tmp_path, state):
    path = save_checkpoint(tmp_path / "ok.safetensors", state,
                           card(data_ranges={"n": [10, 500], "dim_x": [1, 8], "dim_y": [1, 8]}))
    mist = MIST.load(path)
    assert mist.data_ranges["n"] == [10, 500]
    rng = np.random.default_rng(0)
    assert np.isfinite(mist.estimate(rng.standard_normal((50, 2)), rng.standard_normal((50, 1))))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path, state, suffix, writer):
    marker = tmp_path / "marker"
    payload = {"model_state": dict(state), "model_config": CONFIG.to_dict(),
               "extra": CreatesAFile(marker)}
    path = tmp_path / f"evil{suffix}"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="pickle-based torch file.*can run code"):
        MIST.load(path)
    assert not marker.exists()


def test_safetensors_without_a_card_is_refused(tmp_path, state):
    path = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(CheckpointError, match="without a MIST card"):
        MIST.load(path)


def raw_checkpoint(path, state, card_text):
    save_file({k: v.contiguous() for k, v in state.items()}, str(path),
              metadata={"mist_card": card_text})
    return path


GOOD_CALIBRATION = {"factors": {"0.9": 0.2}, "n_cuts": [20, 50], "mi_cuts": [0.05],
                    "factors_by_n": {"0.9": [0.3, None, 0.1]},
                    "factors_by_cell": {"0.9": [[0.3, None], [None, None], [0.1, 0.2]]}}
BAD_CALIBRATIONS = [
    ([1, 2], "must be a JSON object"),
    ({"factors": {}}, "needs 'factors'"),
    ({**GOOD_CALIBRATION, "factors": {"0.9": float("nan")}}, r"factors\['0.9'\] must be a finite"),
    ({**GOOD_CALIBRATION, "factors": {"0.9": float("inf")}}, r"factors\['0.9'\] must be a finite"),
    ({**GOOD_CALIBRATION, "factors": {"0.9": "wide"}}, r"factors\['0.9'\] must be a finite"),
    ({**GOOD_CALIBRATION, "factors": {"0.9": -5.0}}, r">= -0.5"),
    ({**GOOD_CALIBRATION, "factors": {"abc": 0.1}}, "key 'abc' that is not a level"),
    ({**GOOD_CALIBRATION, "factors": {"1.5": 0.1}}, "key '1.5' that is not a level"),
    ({k: v for k, v in GOOD_CALIBRATION.items() if k != "n_cuts"}, "'n_cuts' must be"),
    ({k: v for k, v in GOOD_CALIBRATION.items() if k != "mi_cuts"}, "'mi_cuts' must be"),
    ({**GOOD_CALIBRATION, "n_cuts": [50, 20]}, "'n_cuts' must be"),
    ({**GOOD_CALIBRATION, "factors_by_n": {"0.9": [0.3]}}, r"factors_by_n\['0.9'\] must list 3"),
    ({**GOOD_CALIBRATION, "factors_by_cell": {"0.9": [[0.3, None]]}},
     r"factors_by_cell\['0.9'\] must hold 3 rows"),
]


@pytest.mark.parametrize("card_text,message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"format": FORMAT, "variant": "mist"}), "lacks model_config"),
    (json.dumps({"format": "mist-checkpoint/1", "variant": "mist", "model_config": {}}),
     "format 'mist-checkpoint/1'"),
    (json.dumps({"format": FORMAT, "variant": "mist", "model_config": {"widht": 8}}),
     r"invalid model_config.*widht"),
    (json.dumps({"format": FORMAT, "variant": "mist_qr", "model_config": CONFIG.to_dict()}),
     "card says variant 'mist_qr' but its model_config says 'mist'"),
    (json.dumps({"format": FORMAT, "variant": "mist",
                 "model_config": {**CONFIG.to_dict(), "width": "abc"}}),
     r"invalid model_config.*'width' must be an integer; got 'abc'"),
    (json.dumps({"format": FORMAT, "variant": "mist",
                 "model_config": {**CONFIG.to_dict(), "copula": 1}}),
     r"'copula' must be true or false; got 1"),
    (json.dumps({"format": FORMAT, "variant": "mist", "model_config": CONFIG.to_dict(),
                 "data_ranges": {"dim_x": [1, "a"]}}),
     r"data_ranges\['dim_x'\] must be \[low, high\] finite numbers with low <= high; got "
     r"\[1, 'a'\]"),
    *[(json.dumps({"format": FORMAT, "variant": "mist", "model_config": CONFIG.to_dict(),
                   "data_ranges": {"n": bad}}), message)
      for bad, message in (([10, 10 ** 400], "finite numbers"), ([0, 1], "whole numbers >= 2"),
                           ([-5, -1], "whole numbers >= 2"), ([10, 150.9], "whole numbers"))],
    *[(json.dumps({"format": FORMAT, "variant": "mist",
                   "model_config": {**CONFIG.to_dict(), **bad}}), message)
      for bad, message in (({"tau_min": 0.6, "tau_max": 0.4}, "0 < tau_min < 0.5 < tau_max"),
                           ({"tau_min": 0.0}, "0 < tau_min"), ({"quantile_knots": 1}, ">= 2"),
                           ({"width": 0}, "width must be >= 1"))],
    (json.dumps({"format": FORMAT, "variant": "mist", "model_config": CONFIG.to_dict(),
                 "data_ranges": {"n": [500, 10]}}), r"data_ranges\['n'\]"),
    *[(json.dumps({"format": FORMAT, "variant": "mist", "model_config": CONFIG.to_dict(),
                   "mi_ceiling": bad}), "mi_ceiling must map consecutive widths")
      for bad in ({}, [1.0, 2.0], {"1": 1.0, "3": 2.0}, {"1": 2.0, "2": 1.0},
                  {"0": 1.0}, {"01": 1.0}, {"1": "a"}, {"1": True}, {"1": None},
                  {"\u00b2": 1.0}, {"1": 10 ** 400}, {"1": -1.0})],
    *[(json.dumps({"format": FORMAT, "variant": "mist", "model_config": CONFIG.to_dict(),
                   "interval_calibration": bad}), message)
      for bad, message in BAD_CALIBRATIONS],
    ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
])
def test_a_bad_card_is_refused_with_its_problem(tmp_path, state, card_text, message):
    path = raw_checkpoint(tmp_path / "bad.safetensors", state, card_text)
    with pytest.raises(CheckpointError, match=message):
        MIST.load(path)


def test_mi_ceiling_is_read_whatever_order_json_keeps(tmp_path, state):
    ceiling = {str(m): float(m) for m in range(2, 13)}     # sorted as text: "10" < "2"
    path = raw_checkpoint(tmp_path / "c.safetensors", state, json.dumps(
        {**card(), "format": FORMAT, "mi_ceiling": ceiling}, sort_keys=True))
    assert MIST.load(path).mi_ceiling == {m: float(m) for m in range(2, 13)}


def test_missing_unexpected_and_misshapen_tensors_are_named(tmp_path, state):
    missing = {k: v for k, v in state.items() if k != "head.net.0.bias"}
    with pytest.raises(CheckpointError, match=r"missing tensors head\.net\.0\.bias"):
        MIST.load(save_checkpoint(tmp_path / "missing.safetensors", missing, card()))
    extra = {**state, "spare.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"unexpected tensors spare\.weight"):
        MIST.load(save_checkpoint(tmp_path / "extra.safetensors", extra, card()))
    wide = {**state, "embed.tag.weight": torch.zeros(2, 9)}
    with pytest.raises(CheckpointError, match=r"embed\.tag\.weight has shape \(2, 9\).*\(2, 8\)"):
        MIST.load(save_checkpoint(tmp_path / "wide.safetensors", wide, card()))


def test_non_finite_weights_are_refused(tmp_path, state):
    broken = {k: v.clone() for k, v in state.items()}
    broken["head.net.0.bias"][0] = float("nan")
    with pytest.raises(CheckpointError, match=r"tensor 'head\.net\.0\.bias' holds NaN or "
                                              "infinite values; the network would answer NaN"):
        MIST.load(save_checkpoint(tmp_path / "nan.safetensors", broken, card()))


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("just some text")
    with pytest.raises(CheckpointError, match="not a safetensors MIST checkpoint"):
        MIST.load(path)


def test_a_good_calibration_is_read_and_meta_is_checked_like_a_card(state):
    from mistmodel.calibration import calibration_problem

    assert calibration_problem(GOOD_CALIBRATION) is None
    net = MISTNet(CONFIG)
    for bad, message in BAD_CALIBRATIONS[:4]:
        with pytest.raises(ValueError, match=r"meta\['interval_calibration'\]"):
            MIST(net, meta={"interval_calibration": bad})
