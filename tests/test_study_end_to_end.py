"""The tiny study config through the whole DAG (marked e2e: .ci/run runs it after the suite)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

import mistgen

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def snakemake(workdir, *args):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--profile", str(ROOT / "workflow/profiles/test"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def test_tiny_study_end_to_end(tmp_path):
    result = snakemake(tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    cfg = yaml.safe_load((ROOT / "workflow/configs/test.yaml").read_text())
    run = cfg["runs"]["main"]
    expected_datapoints = 0
    for split in run["splits"]:
        for family in cfg["families"][cfg["splits"][split]["families"]]:
            expected_datapoints += len(mistgen.open_meta_dataset(
                tmp_path / f"data/meta/{split}/{family}.zarr"))
    ds = xr.load_dataset(tmp_path / "results/main/estimates.nc", engine="h5netcdf")
    assert sorted(ds.estimator.values) == sorted(run["estimators"])
    assert ds.sizes["datapoint"] == expected_datapoints
    assert np.isfinite(ds.estimate).all()
    assert np.isfinite(ds.seconds).all()
    for est in ("KSG", "MIST-QR"):  # bootstrap and quantile intervals
        assert np.isfinite(ds.lower.sel(estimator=est)).all()
        assert (ds.lower.sel(estimator=est) <= ds.upper.sel(estimator=est)).all()
    summary = xr.load_dataset(tmp_path / "results/main/summary.nc", engine="h5netcdf")
    assert set(summary.split.values) == set(run["splits"])
    for name in ("error_vs_n", "error_vs_dim", "predicted_vs_true", "coverage", "timing"):
        assert (tmp_path / f"results/main/figures/{name}.png").stat().st_size > 5000
    headline = (tmp_path / "results/headline.md").read_text()
    assert all(f"| {est} |" in headline for est in run["estimators"])
    assert (tmp_path / "models/mist_qr/checkpoint.safetensors").is_file()
    metrics = json.loads((tmp_path / "models/mist_qr/metrics.json").read_text())
    assert metrics["epochs"][-1]["step"] == cfg["models"]["mist_qr"]["max_steps"]
    cmi = json.loads((tmp_path / "models/conditional/mist_cmi/metrics.json").read_text())
    assert cmi["val"][-1]["step"] == cfg["conditional_models"]["mist_cmi"]["steps"]
    # the conditional network trained and validated on the conditional stores it names
    for name, entry in cfg["conditional_splits"].items():
        store = tmp_path / f"data/conditional/{name}.zarr"
        assert mistgen.verify_store(store, regenerate=True).ok
        assert set(mistgen.open_meta_dataset(store).index.spec.values) == set(entry["specs"])
    from mistmodel.checkpoint import load_checkpoint
    _, card = load_checkpoint(tmp_path / "models/conditional/mist_cmi/checkpoint.safetensors")
    stores = [Path(s["path"]) for s in card["stages"][-1]["stores"]]
    assert stores == [Path("data/conditional/cmi_train.zarr")] or stores == [
        tmp_path / "data/conditional/cmi_train.zarr"]
    # the conditional run: every estimator on every datapoint, a summary and a figure
    cond = cfg["conditional_runs"]["cmi"]
    est = xr.load_dataset(tmp_path / "results/conditional/cmi/estimates.nc", engine="h5netcdf")
    assert sorted(est.estimator.values) == sorted(cond["estimators"])
    assert est.sizes["datapoint"] == sum(len(mistgen.open_meta_dataset(
        tmp_path / f"data/conditional/{s}.zarr")) for s in cond["splits"])
    assert np.isfinite(est.estimate).all() and (est.true_cmi >= 0).all()
    summary = xr.load_dataset(tmp_path / "results/conditional/cmi/summary.nc", engine="h5netcdf")
    assert np.isfinite(summary.mae_by_family).all()
    assert (tmp_path / "results/conditional/cmi/error_vs_n.png").stat().st_size > 5000
    assert "## Conditional run `cmi`" in headline
    assert all(f"| {name} |" in headline.split("Conditional run")[1]
               for name in cond["estimators"])
    # every job with a benchmark directive left its time
    for rule in ("generate", "generate_conditional", "train", "train_conditional", "benchmark",
                 "benchmark_conditional", "fit_flows", "warp"):
        assert list((tmp_path / "logs/times" / rule).rglob("*.tsv")), rule
    again = snakemake(tmp_path, "-n")  # a rerun with nothing changed has nothing to do
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    report = snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    assert report.returncode == 0, (report.stdout + report.stderr)[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 100_000
