"""Bad study configs stop the dry run: every kind is refused when the Snakefile is parsed,
with a message naming the key and the value (or the file and the row)."""
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from common.checks import ConfigError, _plan, check_config  # noqa: E402
from common.schema import check_schema  # noqa: E402
from common.stores import store_names  # noqa: E402

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
BREAST_CANCER = ROOT / "mistgen" / "modalities" / "breast_cancer.npy"


@pytest.fixture(scope="module")
def base_config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def modality_file(tmp_path, edit):
    """A copy of the shipped modality data with ``edit`` applied to it."""
    table = np.load(BREAST_CANCER)
    edit(table)
    path = tmp_path / "data.npy"
    np.save(path, table)
    return str(path)


def set_nan(t):
    t[17, 1] = np.nan


def set_constant(t):
    t[:, 3] = 2.5


def edit_modality(**changes):
    def edit(c, tmp_path):
        entry = c["modalities"]["breast_cancer"]
        for key, value in changes.items():
            entry[key] = value(tmp_path) if callable(value) else value
    return edit


BAD = {
    "modality file with NaN": (
        edit_modality(path=lambda p: modality_file(p, set_nan)), ["data.npy", "17"]),
    "modality file with a constant column": (
        edit_modality(path=lambda p: modality_file(p, set_constant)), ["data.npy", "3"]),
    "modality file missing": (edit_modality(path="no/such/file.npy"), ["no/such/file.npy"]),
    "x column out of range": (edit_modality(x_columns=[0, 9]), ["9"]),
    "y column out of range": (edit_modality(y_columns=[2, 40]), ["40"]),
    "X/Y overlap": (edit_modality(y_columns=[1, 3]), ["1"]),
    "unknown flow key": (edit_modality(flow={"layers": 3}), ["layers"]),
    "bad flow value": (edit_modality(flow={"max_steps": "many"}), ["max_steps", "many"]),
    "a family the modality's dims cannot take": (
        edit_modality(x_columns=[0]), ["modalities.breast_cancer", "warped to its dims", "dim_x=1"]),
    "unknown family spec": (
        lambda c, p: c["families"]["test_id"].append("gaussian-dense-base"), ["gaussian-dense-base"]),
    "unknown transform in a spec": (
        lambda c, p: c["families"]["test_ood"].append("normal-dense-wobbly"), ["wobbly"]),
    "2pair at d = 1": (
        lambda c, p: c["splits"]["train"].update(dim_range=[1, 32]), ["splits.train", "2pair"]),
    "reversed n_range": (
        lambda c, p: c["splits"]["val"].update(n_range=[500, 10]), ["splits.val", "[500, 10]"]),
    "reversed dim_range": (
        lambda c, p: c["splits"]["test_id"].update(dim_range=[32, 2]), ["splits.test_id", "[32, 2]"]),
    "unknown prior parameter": (
        lambda c, p: c.update(priors={"normal-dense": {"off_diagonal": [0, 0.3]}}), ["off_diagonal"]),
    "a prior the split's dims make invalid": (
        lambda c, p: c.update(priors={"normal-dense": {"off_diag": [-0.5, 0.1]}}),
        ["splits.train (store normal-dense-base)", "normal-dense.off_diag [-0.5, 0.1]",
         "reaches values at or below"]),
    "a spec twice in a split's list": (
        lambda c, p: c["splits"]["val"].update(families=["normal-dense-base"] * 2),
        ["splits.val.families lists 'normal-dense-base' more than once"]),
    "a prior for a family no store draws": (
        lambda c, p: c.update(priors={"normal-dnese": {"off_diag": [0, 0.3]}}),
        ["priors: unknown family 'normal-dnese'"]),
    "unknown family list of a split": (
        lambda c, p: c["splits"]["val"].update(families="trian"), ["splits.val", "trian"]),
    "bad estimator setting (unknown argument)": (
        lambda c, p: c["estimators"]["KSG"]["settings"].update(neighbours=5),
        ["estimators.KSG", "neighbours"]),
    "bad estimator setting (bad value)": (
        lambda c, p: c["estimators"]["MINE"]["settings"].update(max_steps=0),
        ["estimators.MINE", "max_steps", "0"]),
    "bad MIST setting": (
        lambda c, p: c["estimators"]["MIST-QR-shipped"]["settings"].update(variant="mist_q"),
        ["estimators.MIST-QR-shipped", "mist_q"]),
    "unknown estimator in a run": (
        lambda c, p: c["runs"]["main"]["estimators"].append("KNN"), ["runs.main", "KNN"]),
    "unknown split in a run": (
        lambda c, p: c["runs"]["main"]["splits"].append("test_iid"), ["runs.main", "test_iid"]),
    "unknown modality in a split name": (
        lambda c, p: c["runs"]["main"]["splits"].append("test_id@mnist"), ["mnist"]),
    "unknown model of a MIST estimator": (
        lambda c, p: c["estimators"]["MIST"].update(model="mist3"), ["estimators.MIST", "mist3"]),
    "unknown split of a model": (
        lambda c, p: c["models"]["mist"].update(val=["vall"]), ["models.mist.val", "vall"]),
    "unknown init model": (
        lambda c, p: c["models"]["mist_qr"].update(init="mist_q"), ["models.mist_qr.init", "mist_q"]),
    "init chain that loops": (
        lambda c, p: (c["models"]["mist"].update(init="mist_qr"),
                      c["models"]["mist_qr"].update(init="mist", variant="mist"),
                      c["models"]["mist_qr"].pop("calibrate", None)),
        ["loops"]),
    "unknown training setting": (
        lambda c, p: c["models"]["mist"].update(settings={"batch_sise": 8}),
        ["models.mist", "batch_sise"]),
    "bad model hyperparameter": (
        lambda c, p: c["models"]["mist"].update(settings={"model": {"width": 15, "heads": 2}}),
        ["models.mist", "15"]),
    "calibration of a point model": (
        lambda c, p: c["models"]["mist"].update(calibrate=["val"]), ["models.mist.calibrate"]),
    "unknown base model of the modality study": (
        lambda c, p: c["modality_study"].update(base_model="mist2"), ["base_model", "mist2"]),
    "unknown figure split": (edit_modality(figure_split="trainn"), ["figure_split", "trainn"]),
    "a test split wider than the MIST of its run": (
        lambda c, p: c["splits"]["test_id"].update(dim_range=[2, 48]),
        ["runs.main: MIST (model 'mist'", "'test_id' (dim_x = 48 > 32, dim_y = 48 > 32)",
         "estimators.MIST.settings.out_of_range: warn"]),
    "a test split with more Y columns than the shipped MIST takes": (
        lambda c, p: (c["runs"]["main"].update(estimators=["KSG", "MIST-shipped"]),
                      c["splits"]["test_ood"].update(families="train_uneven", dim_range=[1, 8],
                                                     dim_y_range=[1, 40])),
        ["runs.main: MIST-shipped (the shipped mist checkpoint)", "'test_ood' (dim_y = 40 > 32)"]),
    "a dim grid wider than the MIST of its run": (
        lambda c, p: (c["splits"]["test_id"].pop("dim_range", None),
                      c["splits"]["test_id"].update(n_grid=[100], dim_grid=[4, 48])),
        ["runs.main: MIST-QR (model 'mist_qr'", "'test_id' (dim_x = 48 > 32, dim_y = 48 > 32)"]),
    "a modality wider than the base MIST of the modality study": (
        lambda c, p: (c["models"]["mist"].update(train=["train_uneven"]),
                      c["splits"]["train_uneven"].update(dim_range=[1, 1], dim_y_range=[1, 1])),
        ["modality_study (run breast_cancer): MIST (model 'mist'",
         "'test_id@breast_cancer' (dim_x = 2 > 1, dim_y = 2 > 1)", "the modality's x_columns"]),
    "calibration splits wider than the model's training splits": (
        lambda c, p: (c["models"]["mist_qr"].update(calibrate=["test_id"]),
                      c["splits"]["train"].update(dim_range=[2, 16]),
                      c["splits"]["train_uneven"].update(dim_range=[1, 16], dim_y_range=[1, 16])),
        ["models.mist_qr.calibrate", "'test_id' (dim_x = 32 > 16, dim_y = 32 > 16)"]),
}


@pytest.mark.parametrize("edit, problems, words", [
    (lambda c: c["families"]["test_id"].append(c["families"]["test_id"][0]), 1,
     ["families.test_id: [", "has non-unique elements"]),
    (lambda c: c.update(dask_scheduler="not a url"), 1,
     ["dask_scheduler: 'not a url' does not match"]),
    (lambda c: c.update(unknown_key=3), 1, ["the config: Additional properties", "'unknown_key'"]),
    (lambda c: c["splits"]["test_id"].update(n_grid={"start": 10, "stop": 20}), 1,
     ["splits.test_id.n_grid: 'num' is a required property"]),
    (lambda c: c["splits"]["test_id"].update(n_grid=[1, 10]), 1,
     ["splits.test_id.n_grid.0: 1 is less than the minimum of 2"]),
    (lambda c: (c["splits"]["val"].update(families=3), c.pop("seed")), 2,
     ["the config: 'seed' is a required", "splits.val.families: 3 is not of type 'string'"]),
], ids=["a spec twice in a family list", "a scheduler address", "an unknown key",
        "a grid object without num", "a grid value too small", "two at once"])
def test_the_schema_refuses_with_one_line_per_problem(edit, problems, words, base_config):
    config = copy.deepcopy(base_config)
    edit(config)
    with pytest.raises(ConfigError) as err:
        check_schema(config, SCHEMA)
    message = str(err.value).splitlines()
    assert len(message) == 1 + problems, message
    assert all(any(w in line for line in message[1:]) for w in words), message
    with pytest.raises(Exception):
        validated(config)                  # snakemake's own check agrees


def validated(config):
    validate(config, SCHEMA)
    return config


def test_the_shipped_configs_pass():
    for path in ["config.yaml", "workflow/configs/test.yaml", "workflow/configs/paper.yaml",
                 "workflow/configs/release.yaml"]:
        check_config(validated(yaml.safe_load((ROOT / path).read_text())), str(ROOT))


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_config_is_refused_naming_the_problem(kind, base_config, tmp_path):
    edit, words = BAD[kind]
    config = copy.deepcopy(base_config)
    edit(config, tmp_path)
    with pytest.raises(ConfigError) as err:
        check_config(validated(config), str(ROOT))
    message = str(err.value)
    assert all(w in message for w in words), message


def snakemake_dry_run(workdir, config):
    path = workdir / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "-n", "--configfile", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("kind", ["modality file with NaN", "unknown estimator in a run"])
def test_snakemake_dry_run_stops(kind, base_config, tmp_path):
    edit, words = BAD[kind]
    config = copy.deepcopy(base_config)
    edit(config, tmp_path)
    result = snakemake_dry_run(tmp_path, config)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the study config cannot run" in output and all(w in output for w in words), output
    assert "Traceback" not in output
    assert not (tmp_path / "data").exists()


def test_every_refusing_estimator_of_a_run_is_named(base_config):
    config = copy.deepcopy(base_config)
    config["splits"]["test_id"].update(dim_range=[2, 40])
    config["splits"]["test_ood"].update(dim_range=[2, 36])
    with pytest.raises(ConfigError) as err:
        check_config(validated(config), str(ROOT))
    lines = [line for line in str(err.value).splitlines() if "runs.main:" in line]
    assert [line.split(":")[1].split()[0] for line in lines] == [
        "MIST", "MIST-QR", "MIST-shipped", "MIST-QR-shipped"]
    assert all("'test_id' (dim_x = 40 > 32" in line and "'test_ood' (dim_x = 36 > 32" in line
               for line in lines)


def test_a_dim_grid_is_read_for_its_dims_and_a_dim_range_beside_it_refused(base_config):
    """A grid split takes its dims from dim_grid alone: narrow grid dims pass a model
    trained on narrow splits; a dim_range beside the grid, which it would ignore, is
    refused naming it."""
    config = copy.deepcopy(base_config)
    config["splits"]["train"].update(dim_range=[2, 8])
    config["splits"]["train_uneven"].update(dim_range=[1, 8], dim_y_range=[1, 8])
    config["splits"]["calib"].update(dim_range=[2, 8])
    for split in ("test_id", "test_ood"):
        config["splits"][split].pop("dim_range", None)
        config["splits"][split].update(n_grid=[100], dim_grid=[4, 8])
    config["runs"]["main"]["estimators"] = ["KSG", "MIST", "MIST-QR"]
    check_config(validated(config), str(ROOT))
    config["splits"]["test_id"]["dim_range"] = [2, 32]
    with pytest.raises(Exception, match="drop dim_range"):
        validated(config)


def test_a_study_model_is_limited_to_the_dims_its_training_splits_draw(base_config):
    """A small training split need not draw its dim_range's largest dims; the trained
    card holds the dims drawn, so a test split between the two is refused at the dry run."""
    config = copy.deepcopy(base_config)
    config["models"]["mist_qr"].pop("calibrate", None)   # the test splits are the point here
    for split in ("train", "train_uneven"):
        config["splits"][split].update(count=3, combined=True)
    validated(config)
    drawn = [_plan(config, split, store_names(config, split)[0]).drawn_dims()
             for split in ("train", "train_uneven")]
    widest = max(d[0] for d in drawn), max(d[1] for d in drawn)
    assert widest[0] < 32                      # the split's design reaches 32
    for split in ("test_id", "test_ood"):
        config["splits"][split].update(n_grid=[100], dim_grid=[list(widest)])
    check_config(config, str(ROOT))
    config["splits"]["test_id"].update(dim_grid=[[widest[0] + 1, widest[1]]])
    with pytest.raises(ConfigError) as err:
        check_config(config, str(ROOT))
    refused = [line.split(":")[1].split()[0] for line in str(err.value).splitlines()
               if "runs.main:" in line]
    assert refused == ["MIST", "MIST-QR"]      # the shipped networks take 32
    assert f"'test_id' (dim_x = {widest[0] + 1} > {widest[0]})" in str(err.value)


def test_a_wide_split_runs_with_estimators_that_warn(base_config):
    """With ``out_of_range: warn`` a MIST answers beyond its trained dims, so the run is
    allowed; the same run without it is refused."""
    config = copy.deepcopy(base_config)
    config["splits"]["test_id"].update(dim_range=[2, 48])
    with pytest.raises(ConfigError, match="dim_x = 48 > 32"):
        check_config(validated(copy.deepcopy(config)), str(ROOT))
    for name in config["runs"]["main"]["estimators"]:
        spec = config["estimators"][name]
        if spec["class"] == "MIST":
            spec["settings"] = {**(spec.get("settings") or {}), "out_of_range": "warn"}
    check_config(validated(config), str(ROOT))
