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
    ({"factors": {"0.90": 0.2}}, "'factors' has a key '0.90' not written as '0.9'.*never be used"),
    ({**GOOD_CALIBRATION, "factors_by_n": {"0.90": [0.3, None, 0.1]}},
     "'factors_by_n' has a key '0.90' not written as '0.9'"),
    ({**GOOD_CALIBRATION, "factors": {"0.9": 0.2, " 0.5": 0.1}}, "key ' 0.5' not written"),
    ({**GOOD_CALIBRATION, "factors_by_n": {"0.8": [0.3, None, 0.1]}},
     "'factors_by_n' has level '0.8', which 'factors' lacks"),
    ({**GOOD_CALIBRATION, "factors_by_cell": {"0.8": [[0.3, None], [None, None], [0.1, 0.2]]}},
     "'factors_by_cell' has level '0.8', which 'factors' lacks"),
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
    # in a card's text NaN and Infinity are refused as JSON before the calibration is read
    *[(json.dumps({"format": FORMAT, "variant": "mist", "model_config": CONFIG.to_dict(),
                   "interval_calibration": bad}),
       "holds (NaN|Infinity), which strict JSON"
       if any(c in json.dumps(bad) for c in ("NaN", "Infinity")) else message)
      for bad, message in BAD_CALIBRATIONS],
    ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
    pytest.param('{"format": "%s", "variant": "mist", "model_config": %s, "step": %s}'
                 % (FORMAT, json.dumps(CONFIG.to_dict()), "7" * 5000),
                 r"bad\.safetensors: its MIST card cannot be read: Exceeds the limit \(4300 "
                 r"digits\)", id="a 5000-digit integer"),
    pytest.param('{"format": "%s", "variant": "mist", "model_config": %s, "interval_calibration": '
                 '{"factors": {"0.9": 0.2, "0.9": 0.0}}}' % (FORMAT, json.dumps(CONFIG.to_dict())),
                 "cannot be read: it repeats the key '0.9' in one object", id="a repeated key"),
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


def test_a_card_that_cannot_be_read_is_named_by_read_card_too(tmp_path, state):
    from mistmodel.checkpoint import read_card

    path = raw_checkpoint(tmp_path / "digits.safetensors", state, json.dumps(
        {**card(), "format": FORMAT})[:-1] + ', "step": ' + "7" * 5000 + "}")
    with pytest.raises(CheckpointError, match=r"digits\.safetensors: its MIST card cannot be "
                                              r"read: Exceeds the limit"):
        read_card(path)


def with_tensor(state, name, tensor):
    return {**{k: v.clone() for k, v in state.items()}, name: tensor}


@pytest.mark.parametrize("name,tensor,message", [
    ("embed.tag.weight", torch.zeros(2, 8, dtype=torch.int64),
     r"tensor embed\.tag\.weight has dtype int64, the network needs real floating-point"),
    ("head.net.0.bias", torch.zeros(16, dtype=torch.bool), "head.net.0.bias has dtype bool"),
    ("head.net.0.bias", torch.zeros(16, dtype=torch.complex64),
     "head.net.0.bias has dtype complex64"),
    ("head.net.0.bias", torch.complex(torch.zeros(16), torch.full((16,), float("nan"))),
     r"tensor 'head\.net\.0\.bias' holds NaN or infinite values"),
    ("head.net.0.bias", torch.full((16,), 1e300, dtype=torch.float64),
     r"tensor 'head\.net\.0\.bias' holds NaN or infinite values in float32"),
])
def test_tensors_of_another_kind_of_number_are_refused_by_name(tmp_path, state, name, tensor,
                                                               message):
    path = save_checkpoint(tmp_path / "kind.safetensors", with_tensor(state, name, tensor),
                           card())
    with pytest.raises(CheckpointError, match=r"kind\.safetensors: .*" + message):
        MIST.load(path)


def test_other_real_floating_dtypes_are_read_in_float32(tmp_path, state):
    half = {k: v.to(torch.float16) for k, v in state.items()}
    mist = MIST.load(save_checkpoint(tmp_path / "half.safetensors", half, card()))
    assert next(mist.network.parameters()).dtype == torch.float32


def test_publish_names_a_tensor_of_the_wrong_kind_instead_of_crashing(tmp_path, state, capsys):
    from mistmodel.publish import main

    path = save_checkpoint(tmp_path / "int.safetensors", with_tensor(
        state, "embed.tag.weight", torch.zeros(2, 8, dtype=torch.int64)), card())
    assert main([str(path), "--variant", "mist", "--dest", str(tmp_path / "pkg")]) == 2
    assert "int.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "pkg" / "mist.safetensors").exists()


@pytest.fixture
def no_network_built(monkeypatch):
    """Fail the test if a network is built (the card must be refused first)."""
    def refuse(config):
        raise AssertionError(f"a network was built for {config}")
    monkeypatch.setattr("mistmodel.mist.MISTNet", refuse)


@pytest.mark.parametrize("sizes,message", [
    ({"blocks": 3000}, r"blocks 3000 need column attention tensors \(col_att\.<block>\.\*\) "
                       "of 3000 blocks, the file holds those of 1"),
    ({"width": 2 ** 40, "summary_width": 2 ** 40},
     r"embed\.tag\.weight has shape \(2, 8\), its width 1099511627776 needs "
     r"\(2, 1099511627776\)"),
    ({"heads": 4}, r"col_bias\.0\.lin has shape \(2,\), its heads 4 needs \(4,\)"),
    ({"inducing": 10 ** 9}, r"row_att\.0\.inducing has shape \(8, 8\), its inducing"),
    ({"ffn_mult": 10 ** 6}, r"col_set\.ffn\.net\.0\.weight has shape \(32, 16\)"),
    ({"pair_width": 10 ** 6}, r"pairs\.net\.0\.weight"),
    ({"head_hidden": 10 ** 6}, r"head\.net\.0\.weight"),
    ({"conditional": True}, r"conditional true \(3 column tags\) needs \(3, 8\)"),
    ({"variant": "mist_qr", "quantile_knots": 10 ** 9},
     r"head\.net\.4\.weight has shape \(1, 16\), its quantile_knots 1000000000"),
])
def test_the_cards_sizes_are_checked_against_the_tensors_before_building(
        tmp_path, state, no_network_built, sizes, message):
    config = {**CONFIG.to_dict(), **sizes}
    path = raw_checkpoint(tmp_path / "big.safetensors", state, json.dumps(
        {"format": FORMAT, "variant": config["variant"], "model_config": config}))
    with pytest.raises(CheckpointError, match=r"big\.safetensors: the tensors do not match the "
                                              r"card's model_config: .*" + message):
        MIST.load(path)


def test_a_missing_tensor_that_shows_a_size_is_refused_before_building(tmp_path, state,
                                                                       no_network_built):
    missing = {k: v for k, v in state.items() if k != "final_norm.weight"}
    with pytest.raises(CheckpointError, match=r"missing tensor final_norm\.weight, which shows "
                                              "its summary_width 16"):
        MIST.load(save_checkpoint(tmp_path / "m.safetensors", missing, card()))


def test_a_network_that_cannot_be_built_is_a_checkpoint_error(tmp_path, state, monkeypatch):
    path = save_checkpoint(tmp_path / "ok.safetensors", state, card())

    def overflow(config):
        raise RuntimeError("Storage size calculation overflowed")
    monkeypatch.setattr("mistmodel.mist.MISTNet", overflow)
    with pytest.raises(CheckpointError, match=r"ok\.safetensors: the network its card's "
                                              "model_config describes cannot be built: Storage"):
        MIST.load(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_card_holding_nan_or_infinity_is_refused_by_its_key_path(tmp_path, state, value):
    bad = card(validation={"loss": 0.1, "mse_by_n": [0.2, value]})
    with pytest.raises(CheckpointError, match=r"nan\.safetensors: card\['validation'\]"
                                              r"\['mse_by_n'\]\[1\] is -?(nan|inf), which JSON "
                                              "cannot hold"):
        save_checkpoint(tmp_path / "nan.safetensors", state, bad)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_card_written_with_a_non_standard_constant_is_refused_on_reading(tmp_path, state,
                                                                         constant):
    from mistmodel.checkpoint import read_card

    text = json.dumps(card())[:-1] + f', "validation": {{"loss": {constant}}}}}'
    path = tmp_path / "odd.safetensors"
    save_file(state, str(path), metadata={"mist_card": text})
    for read in (read_card, MIST.load):
        with pytest.raises(CheckpointError, match=f"holds {constant}, which strict JSON"):
            read(path)


def test_a_saved_card_is_strict_json(tmp_path, state):
    from safetensors import safe_open

    path = save_checkpoint(tmp_path / "ok.safetensors", state,
                           card(validation={"loss": 0.1, "mse_by_n": [0.2, None]}))
    with safe_open(str(path), framework="pt") as f:
        text = f.metadata()["mist_card"]

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")
    assert json.loads(text, parse_constant=refuse)["validation"]["mse_by_n"] == [0.2, None]


def test_publish_replaces_weights_and_card_together(tmp_path, state, monkeypatch):
    from pathlib import Path

    from mistmodel.publish import publish

    dest = tmp_path / "pkg"
    first = save_checkpoint(tmp_path / "first.safetensors", state, card(step=1))
    weights, record = publish(first, "mist", dest)
    published = weights.read_bytes(), record.read_text()
    assert json.loads(published[1])["step"] == 1
    second = save_checkpoint(tmp_path / "second.safetensors", with_tensor(
        state, "head.net.0.bias", state["head.net.0.bias"] + 1.0), card(step=2))

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        publish(second, "mist", dest)
    assert (weights.read_bytes(), record.read_text()) == published
    assert sorted(p.name for p in dest.iterdir()) == ["mist.json", "mist.safetensors"]
    monkeypatch.undo()
    publish(second, "mist", dest)
    assert json.loads(record.read_text())["step"] == 2
    assert MIST.load(weights).meta["step"] == 2


def test_two_threads_saving_one_path_leave_a_whole_checkpoint(tmp_path, state):
    import threading

    from mistmodel.checkpoint import load_checkpoint

    path = tmp_path / "c.safetensors"
    states = [{k: v + j for k, v in state.items()} for j in range(2)]
    errors = []

    def save(j):
        try:
            for _ in range(10):
                save_checkpoint(path, states[j], card(k=j))
        except Exception as exc:          # a shared temporary file fails one writer
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(j,)) for j in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loaded, saved_card = load_checkpoint(path)
    assert all(torch.equal(loaded[k], states[saved_card["k"]][k]) for k in loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]
