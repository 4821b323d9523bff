"""The study config's checks at parse time (schema and check_config, without Snakemake),
and the study layer's atomic outputs."""
import copy
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from common.checks import ConfigError, check_config  # noqa: E402
from common.outputs import atomic_output  # noqa: E402
from common.schema import check_schema  # noqa: E402

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
SEED_MAX = 2**63 - 1


@pytest.fixture
def config():
    return copy.deepcopy(yaml.safe_load((ROOT / "config.yaml").read_text()))


def checked(config):
    """What the Snakefile does with a config: its warnings, or ConfigError."""
    check_schema(config, SCHEMA)
    validate(config, SCHEMA)
    return check_config(config, str(ROOT))


def refusal(config) -> str:
    with pytest.raises(ConfigError) as err:
        checked(config)
    return str(err.value)


def test_an_interval_level_beyond_the_quantile_grid_is_refused(config):
    config["interval_level"] = 0.98          # tau 0.01 .. 0.99: the shipped grid's ends
    checked(copy.deepcopy(config))
    config["interval_level"] = 0.99
    message = refusal(config)
    assert "interval_level: 0.99 needs MIST-QR's quantiles at tau = 0.005 and 0.995" in message
    assert "MIST-QR-shipped (the shipped mist_qr checkpoint; runs.main)" in message
    assert "MIST-QR (model 'mist_qr'; runs.main)" in message
    assert "its intervals go up to level 0.98" in message


def test_a_study_model_s_own_quantile_grid_bounds_the_level(config):
    config["models"]["mist_qr"].pop("calibrate", None)   # raw quantiles: its own grid bounds
    config["models"]["mist_qr"]["settings"] = {"model": {"tau_min": 0.1, "tau_max": 0.9}}
    message = refusal(config)                # at the default level 0.9
    assert "interval_level: 0.9 needs" in message
    assert "MIST-QR (model 'mist_qr'; runs.main) was trained on tau in [0.1, 0.9]" in message
    assert "MIST-QR-shipped" not in message
    config["runs"]["main"]["estimators"].remove("MIST-QR")
    checked(config)                          # the model in no run: no interval asked of it


def test_a_calibrated_model_needs_the_taus_of_every_calibrated_level(config):
    config["models"]["mist_qr"]["calibrate"] = ["val"]
    config["models"]["mist_qr"]["settings"] = {"model": {"tau_min": 0.04, "tau_max": 0.96}}
    config["interval_level"] = 0.9
    message = refusal(config)
    assert "calibrate: factors are fitted at levels up to 0.95" in message
    assert "trained on tau in [0.04, 0.96]" in message
    config["models"]["mist_qr"]["settings"]["model"].update(tau_min=0.02, tau_max=0.98)
    checked(config)


def test_a_level_without_conformal_factors_is_warned(config):
    assert checked(copy.deepcopy(config)) == []                  # 0.9 is calibrated
    config["interval_level"] = 0.85
    config["models"]["mist_qr"]["calibrate"] = ["val"]
    warnings = checked(config)
    assert len(warnings) == 2, warnings
    assert all(w.startswith("interval_level: MIST-QR") for w in warnings)
    assert "at levels 0.5, 0.8, 0.9, 0.95 only: at 0.85 its intervals are not calibrated" \
        in warnings[0]
    assert {w.split(" (")[0] for w in warnings} == {"interval_level: MIST-QR",
                                                    "interval_level: MIST-QR-shipped"}


@pytest.mark.parametrize("key", ["seed", "init", "threads", "variant", "train", "val", "out",
                                 "epochs_per_call", "resume", "max_steps"])
def test_a_model_entry_s_settings_may_not_set_what_the_entry_or_rule_sets(config, key):
    config["models"]["mist_qr"]["settings"] = {key: 1}
    message = refusal(config)
    assert f"models.mist_qr: settings may not set {key}:" in message


@pytest.mark.parametrize("where", [
    ("seed",), ("splits", "train", "seed"), ("models", "mist", "seed"),
    ("conditional_splits", "cmi_small", "seed"), ("modality_study", "finetune", "seed")])
def test_every_seed_is_at_most_2_63_minus_1(config, where):
    *parents, key = where
    entry = config
    for p in parents:
        entry = entry[p]
    entry[key] = SEED_MAX
    check_schema(config, SCHEMA)
    entry[key] = SEED_MAX + 1
    with pytest.raises(ConfigError, match=rf"{'[.]'.join(where)}: {SEED_MAX + 1} is greater "
                                          rf"than the maximum of {SEED_MAX}"):
        check_schema(config, SCHEMA)


def test_a_conditional_model_s_seed_is_bounded_too(config):
    config["conditional_models"] = {"cmi": {"init": "mist", "steps": 2, "seed": 2**70}}
    with pytest.raises(ConfigError, match=r"conditional_models[.]cmi[.]seed: .* maximum"):
        check_schema(config, SCHEMA)


@pytest.mark.parametrize("where", [
    ("runs", "main", "splits"), ("runs", "main", "estimators"),
    ("conditional_runs", "cmi", "splits"), ("conditional_runs", "cmi", "estimators"),
    ("modality_study", "test_splits"), ("modality_study", "estimators"),
    ("models", "mist", "train"), ("models", "mist", "val")])
def test_lists_that_name_jobs_may_not_repeat(config, where):
    entry = config
    for p in where:
        entry = entry[p]
    entry.append(entry[0])
    with pytest.raises(ConfigError, match=rf"{'[.]'.join(where)}: .* has non-unique elements"):
        check_schema(config, SCHEMA)


@pytest.mark.parametrize("split, extra, key", [
    ("test_id", {"n_range": [10, 100]}, "n_range"),
    ("test_id", {"dim_grid": [2, 4]}, "dim_range"),
    ("train_uneven", {"count": None, "n_grid": [50], "dim_grid": [[1, 2]],
                      "dim_range": None, "n_range": None}, "dim_y_range"),
])
def test_a_grid_split_may_not_also_give_what_its_grid_gives(config, split, extra, key):
    entry = config["splits"][split]
    for k, v in extra.items():
        entry.pop(k) if v is None else entry.update({k: v})
    with pytest.raises(ConfigError, match=rf"splits[.]{split}[.]{key}: not allowed here: "):
        check_schema(config, SCHEMA)


def test_a_grid_split_without_them_passes(config):
    config["splits"]["test_id"].pop("dim_range")
    config["splits"]["test_id"]["dim_grid"] = [2, [3, 4]]
    checked(config)


def test_an_n_grid_that_rounds_to_repeated_sizes_is_refused(config):
    config["splits"]["test_ood"]["n_grid"] = {"start": 10, "stop": 14, "num": 8}
    message = refusal(config)
    assert "splits.test_ood.n_grid: {'start': 10, 'stop': 14, 'num': 8} rounds to repeated " \
           "sample sizes [10, 11, 11, 12, 12, 13, 13, 14]" in message


def test_two_addresses_that_would_give_the_same_datapoints_are_refused(config):
    """'plumless' and 'buckeroo' share their CRC-32, from which the seeds are derived."""
    config["splits"]["test_id"]["address"] = "plumless"
    config["splits"]["test_ood"]["address"] = "buckeroo"
    assert "split names 'plumless' and 'buckeroo' have the same CRC-32" in refusal(config)
    config["splits"]["test_ood"]["seed"] = config["seed"] + 1     # other seeds: no clash
    checked(config)


def test_an_atomic_output_appears_whole(tmp_path):
    path = tmp_path / "figure.png"
    with atomic_output(path) as out:
        assert out.parent == tmp_path and out.suffix == ".png" and out != path
        out.write_text("new")
        assert not path.exists()
    assert path.read_text() == "new"
    assert list(tmp_path.iterdir()) == [path]


def test_a_failed_atomic_output_leaves_the_old_file_and_no_partial_one(tmp_path):
    path = tmp_path / "estimates.nc"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as out:
            out.write_text("half")
            raise RuntimeError("the job failed")
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]
