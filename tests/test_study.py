"""The study layer: benchmark tables, their combination, summaries and figures."""
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import mistgen

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
sys.path.insert(0, str(SCRIPTS))

from common.benchmark import benchmark_stores, combine_estimates  # noqa: E402
from common.estimators import make_estimator  # noqa: E402
from common.figures import draw_all  # noqa: E402
from common.summary import headline_document, headline_markdown, summarize  # noqa: E402


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("stores")
    out = []
    for split, family in [("test_id", "normal-dense-base"), ("test_id", "student-sparse-asinh"),
                          ("test_out_of_distribution", "additive_noise-base")]:
        path = d / f"{split}.{family}.zarr"
        mistgen.build_meta_dataset(path, [family], n_grid=[20, 150, 400], repeats=2,
                                   dim_range=(1, 3), split=f"{split}.{family}", workers=1,
                                   progress=False)
        out.append((split, family, path))
    return out


def test_benchmark_combine_summarize(stores, tmp_path):
    parts = []
    for name, spec, n_boot in [("KSG", {"class": "KSG"}, 10), ("CCA-shrunk", {"class": "CCA"}, 0)]:
        est = make_estimator(spec)
        parts += [benchmark_stores(name, est, [s], n_boot=n_boot, progress=False) for s in stores]
    ds = combine_estimates(parts[::-1])
    assert dict(ds.sizes) == {"estimator": 2, "datapoint": 18}
    assert sorted(ds.estimator.values) == ["CCA-shrunk", "KSG"]  # labels kept whole
    assert "test_out_of_distribution" in set(ds.split.values)
    assert np.isfinite(ds.estimate).all()
    # KSG's bootstrap needs n >= 28: no interval at n = 20, one at every larger n
    has_interval = np.isfinite(ds.lower.sel(estimator="KSG"))
    assert (has_interval == (ds.n >= 28)).all()
    assert np.isnan(ds.lower.sel(estimator="CCA-shrunk")).all()
    truth = {(s, f, i): x.mi for s, f, p in stores for i, x in enumerate(mistgen.open_meta_dataset(p))}
    for dp in ds.datapoint.values:
        split, family, i = dp.rsplit("/", 2)
        assert ds.true_mi.sel(datapoint=dp).item() == truth[(split, family, int(i))]
    ds.to_netcdf(tmp_path / "e.nc", engine="h5netcdf")
    back = xr.load_dataset(tmp_path / "e.nc", engine="h5netcdf")
    summary = summarize(back)
    err = (back.estimate - back.true_mi).sel(estimator="KSG")
    in_bin = (back.split == "test_id") & (back.n < 100)
    assert summary.by_n_mse.sel(estimator="KSG", split="test_id", n_bin="[10,100)").item() == \
        pytest.approx(float((err[in_bin] ** 2).mean()))
    assert summary.by_n_count.sel(estimator="KSG", split="test_id", n_bin="[300,500]").item() == 4
    # an n outside the paper's bins gets a bin of its own: every datapoint is in one
    wide = back.assign_coords(n=back.n.where(back.n < 300, 2000))
    counted = summarize(wide).by_n_count.sel(estimator="KSG").sum("n_bin")
    assert (counted == summarize(wide).overall_count.sel(estimator="KSG")).all()
    assert "[501,2000]" in summarize(wide).n_bin.values
    summary.to_netcdf(tmp_path / "s.nc", engine="h5netcdf")
    table = headline_markdown(summary)
    assert "| KSG |" in table and "test_out_of_distribution" in table
    page = headline_document({"main": summary})
    assert "## Run `main`" in page and "| CCA-shrunk |" in page
    paths = draw_all(back, summary, tmp_path / "fig")
    assert all(p.stat().st_size > 5000 for p in paths.values())


def _parts(stores):
    return [benchmark_stores(name, make_estimator(spec), [s], n_boot=n_boot, progress=False)
            for name, spec, n_boot in [("KSG", {"class": "KSG"}, 10), ("CCA", {"class": "CCA"}, 0)]
            for s in stores]


def test_parts_with_other_records_of_a_datapoint_are_refused(stores):
    parts = _parts(stores)
    k = len(stores)
    changed = parts[k].copy(deep=True)          # CCA's first part, its truth rewritten
    changed["true_mi"] = changed["true_mi"] + 1.0
    with pytest.raises(ValueError, match="with other true_mi .* different stores"):
        combine_estimates(parts[:k] + [changed] + parts[k + 1:])


def test_failed_estimates_are_counted_apart_and_each_estimator_keeps_its_n_boot(stores):
    parts = _parts(stores)
    older = parts[0].drop_vars("n_boot")            # written when n_boot was an attribute
    older.attrs["n_boot"] = 10
    ds = combine_estimates([older] + parts[1:])
    assert "n_boot" not in ds.attrs
    assert dict(zip(ds.estimator.values, ds.n_boot.values)) == {"KSG": 10, "CCA": 0}
    worst = ds.n == 20
    broken = ds.copy(deep=True)
    broken["estimate"] = broken.estimate.where(~((broken.estimator == "CCA") & worst))
    summary = summarize(broken)
    at = dict(estimator="CCA", split="test_id")
    assert summary.overall_failed.sel(**at).item() == int((worst & (ds.split == "test_id")).sum())
    assert summary.overall_count.sel(**at).item() == \
        int(((ds.split == "test_id") & ~worst).sum())
    err = (ds.estimate - ds.true_mi).sel(estimator="CCA")
    kept = (ds.split == "test_id") & ~worst
    assert summary.overall_mse.sel(**at).item() == pytest.approx(float((err[kept] ** 2).mean()))
    # KSG's bootstrap starts at n = 28: its coverage counts the intervals it has
    assert summary.interval_count.sel(estimator="KSG", split="test_id").item() == \
        int(((ds.split == "test_id") & (ds.n >= 28)).sum())
    assert dict(zip(summary.estimator.values, summary.n_boot.values)) == {"KSG": 10, "CCA": 0}
    table = headline_markdown(summary)
    assert "coverage (intervals)" in table and "failed |" in table


def test_benchmark_reports_each_stores_warnings_once(stores, capsys):
    import warnings as w

    class Noisy:
        name = "noisy"

        def estimate(self, x, y):
            w.warn(f"about n = {x.shape[0]}", UserWarning)
            return 0.0

    benchmark_stores("noisy", Noisy(), stores[:1], progress=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning")]
    assert lines == ["warning (noisy, test_id/normal-dense-base): 6 of 6 samples warned "
                     "(UserWarning); the first: about n = 20"]

    class Failing(Noisy):                   # two kinds of warning, then an error
        calls = 0

        def estimate(self, x, y):
            self.calls += 1
            w.warn("other kind" if self.calls == 2 else f"about n = {x.shape[0]}",
                   RuntimeWarning if self.calls == 2 else UserWarning)
            if self.calls == 3:
                raise ValueError("broken sample")
            return 0.0

    with pytest.raises(ValueError, match="broken sample"):
        benchmark_stores("failing", Failing(), stores[:1], progress=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning")]
    assert lines == ["warning (failing, test_id/normal-dense-base): 2 of 6 samples warned "
                     "(UserWarning); the first: about n = 20",
                     "warning (failing, test_id/normal-dense-base): 1 of 6 samples warned "
                     "(RuntimeWarning); the first: other kind"]

    with w.catch_warnings():                # -W error stops the run at the first warning
        w.simplefilter("error", UserWarning)
        with pytest.raises(UserWarning, match="about n = 20"):
            benchmark_stores("noisy", Noisy(), stores[:1], progress=False)
        w.filterwarnings("ignore", "about n")   # the first matching filter decides: none
        benchmark_stores("noisy", Noisy(), stores[:1], progress=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning")]
    assert lines == []


def test_a_combined_store_records_each_datapoint_s_spec_as_its_family(tmp_path):
    specs = ["normal-dense-base", "student-sparse-asinh", "additive_noise-base"]
    path = mistgen.build_meta_dataset(tmp_path / "all.zarr", specs, 6, n_range=(20, 40),
                                      dim_range=(1, 2), split="s", workers=1,
                                      progress=False).path
    ds = benchmark_stores("CCA", make_estimator({"class": "CCA"}), [("s", "all", path)],
                          level=None, progress=False)
    assert list(ds.family.values) == specs * 2
    assert list(ds.datapoint.values) == [f"s/all/{i}" for i in range(6)]
    summary = summarize(combine_estimates([ds]))
    assert sorted(summary.family.values) == sorted(specs)
    assert (summary.by_family_count.sel(estimator="CCA", split="s") == 2).all()


def test_combine_rejects_mismatched_datapoints(stores):
    est = make_estimator({"class": "CCA"})
    a = benchmark_stores("A", est, stores[:2], progress=False)
    b = benchmark_stores("B", est, stores[:1], progress=False)
    with pytest.raises(ValueError, match="different datapoints"):
        combine_estimates([a, b])


def test_unknown_estimator_class():
    with pytest.raises(ValueError, match="unknown estimator class 'KNN'"):
        make_estimator({"class": "KNN"})


def test_study_model_entry_becomes_a_training_config(tmp_path):
    from common.training import train_config
    entry = {"variant": "mist_qr", "train": ["train"], "val": ["val"], "max_steps": 600,
             "epochs": 30, "threads": 3, "settings": {"batch_size": 16, "model": {"width": 8}}}
    cfg = train_config(entry, train=["a.zarr"], val=["b.zarr"], out=tmp_path, seed=3)
    assert (cfg.max_steps, cfg.epochs, cfg.time_budget_min) == (600, 30, None)
    assert (cfg.variant, cfg.batch_size, cfg.model, cfg.seed) == ("mist_qr", 16, {"width": 8}, 3)
    assert cfg.threads == 3                  # the entry's, whatever the machine's cores
    entry.pop("threads")
    assert train_config(entry, train=["a.zarr"], val=["b.zarr"], out=tmp_path, seed=3).threads == 1
    assert train_config(dict(entry, seed=11), train=["a.zarr"], val=["b.zarr"], out=tmp_path,
                        seed=3).seed == 11
    with pytest.raises(ValueError, match="batch_sise"):
        train_config(dict(entry, settings={"batch_sise": 5}), train=["a.zarr"], val=["b.zarr"],
                     out=tmp_path, seed=0)
    with pytest.raises(ValueError, match="settings may not set init, seed: the entry sets"):
        train_config(dict(entry, settings={"seed": 5, "init": "x"}), train=["a.zarr"],
                     val=["b.zarr"], out=tmp_path, seed=0)


def test_a_fine_tune_goes_over_its_base_model_key_by_key():
    from common.study import derived_study
    base = {"variant": "mist", "train": ["t"], "val": ["v"], "calibrate": ["c"],
            "epochs": 3, "settings": {"lr": 0.01, "model": {"width": 8, "blocks": 1}}}
    config = {"models": {"mist": base}, "estimators": {}, "runs": {}, "modalities": {"bc": {}},
              "modality_study": {"base_model": "mist", "train_split": "t", "val_split": "v",
                                 "test_splits": ["x"], "estimators": [],
                                 "finetune": {"max_steps": 5, "settings": {
                                     "lr": 0.001, "model": {"blocks": 2}}}}}
    models, estimators, runs = derived_study(config)
    assert models["mist_bc"] == {
        "variant": "mist", "init": "mist", "train": ["t@bc"], "val": ["v@bc"], "epochs": 3,
        "max_steps": 5, "settings": {"lr": 0.001, "model": {"width": 8, "blocks": 2}}}
    assert base["settings"] == {"lr": 0.01, "model": {"width": 8, "blocks": 1}}   # untouched
    assert estimators["MIST-bc"]["model"] == "mist_bc" and runs["bc"]["splits"] == ["x@bc"]


def test_a_store_records_the_split_entry_less_what_does_not_make_it():
    from common.stores import store_split_config
    config = {"families": {"a": ["normal-dense-base"]},
              "splits": {"t": {"families": ["normal-dense-base", "student-sparse-asinh"],
                               "count": 10, "combined": False, "priors": {"x": {}}},
                         "r": {"families": "a", "count": 30, "combined": True,
                               "priors": {"x": {}}}}}
    one = store_split_config(config, "t", "normal-dense-base")
    assert one == {"count": 10, "combined": False}
    # a family added to the split leaves its other stores' parameters as they were
    config["splits"]["t"]["families"].append("uniform-dense-base")
    assert store_split_config(config, "t", "normal-dense-base") == one
    # a combined store is all its families: they stay
    assert store_split_config(config, "r", "all") == {"families": "a", "count": 30,
                                                      "combined": True}


def test_store_recipes_follow_the_split_entry():
    from common.stores import split_stores, store_recipe
    config = {"seed": 0, "shard_size": 500, "priors": {},
              "families": {"a": ["normal-dense-base", "student-sparse-asinh"]},
              "splits": {"t": {"families": "a", "count": 10, "n_range": [10, 50],
                               "combined": False},
                         "r": {"families": "a", "count": 30, "seed": 1000, "address": "train",
                               "combined": True, "shard_size": 7}}}
    assert split_stores(config, "t") == ["data/meta/t/normal-dense-base.zarr",
                                         "data/meta/t/student-sparse-asinh.zarr"]
    assert store_recipe(config, "t", "normal-dense-base") == {
        "specs": ["normal-dense-base"], "seed": 0, "split": "t.normal-dense-base",
        "shard_size": 500, "priors": None, "n_range": [10, 50], "count": 10}
    assert split_stores(config, "r@bc") == ["data/meta/r@bc/all.zarr"]
    combined = store_recipe(config, "r", "all")
    assert combined["specs"] == config["families"]["a"]
    assert (combined["seed"], combined["split"], combined["shard_size"], combined["count"]) \
        == (1000, "train", 7, 30)
    # a store sees the prior overrides of its own families only (a change rebuilds just those)
    config["priors"] = {"student-sparse": {"nu": [2, 3]}}
    assert store_recipe(config, "t", "normal-dense-base")["priors"] is None
    assert store_recipe(config, "t", "student-sparse-asinh")["priors"] == config["priors"]
    assert combined["priors"] is None and store_recipe(config, "r", "all")["priors"] == \
        config["priors"]
    # a split's own priors go over the config's, parameter by parameter, for that split only
    config["splits"]["r"]["priors"] = {"student-sparse": {"strength": [1, 2]},
                                       "normal-dense": {"off_diag": [0.5, 0.9]},
                                       "normal-lvm": {"beta": [1, 2]}}
    assert store_recipe(config, "r", "all")["priors"] == {
        "student-sparse": {"nu": [2, 3], "strength": [1, 2]},
        "normal-dense": {"off_diag": [0.5, 0.9]}}
    config["splits"]["r"]["priors"]["student-sparse"]["nu"] = [4, 5]
    assert store_recipe(config, "r", "all")["priors"]["student-sparse"]["nu"] == [4, 5]
    assert store_recipe(config, "t", "student-sparse-asinh")["priors"] == {
        "student-sparse": {"nu": [2, 3]}}
    config["priors"], config["splits"]["t"]["priors"] = {}, {"student-sparse": {}}
    assert store_recipe(config, "t", "student-sparse-asinh")["priors"] is None   # none given


def test_jobs_without_a_network_do_not_import_torch():
    # Every rule script imports common.logs; generation, tables and the KSG / CCA
    # benchmarks must not pay torch's import time.
    import subprocess
    code = ("import sys; from common.logs import log_to; import mistgen; "
            "from common.estimators import make_estimator; from common.summary import summarize; "
            "from common.benchmark import combine_estimates; from common.stores import store_recipe; "
            "make_estimator({'class': 'KSG'}); make_estimator({'class': 'CCA'}); "
            "print('torch' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=SCRIPTS)
    assert out.stdout.split() == ["False", "False"]


def test_conditional_run_tables_and_figure(tmp_path, capsys):
    from common.conditional_runs import (benchmark_conditional_store, conditional_markdown,
                                         conditional_summary, plot_conditional)
    from mistmodel import MIST
    from mistmodel.estimators import CCA, KSG

    store = mistgen.build_conditional_dataset(
        tmp_path / "c.zarr", ["normal-chain", "normal-collider"], n_grid=[60, 400],
        dim_grid=[1, 4], repeats=2, shard_size=5, progress=False)
    parts = [benchmark_conditional_store(name, est, "cmi", store.path, progress=False)
             for name, est in (("KSG", KSG()), ("CCA", CCA()),
                               ("MIST-CMI", MIST.load(variant="mist_cmi")))]
    # the batched (MIST) and plain paths give the estimates the estimators give one by one
    first = store[3]
    for part, est in zip(parts, (KSG(), CCA())):
        assert part.estimate.values[0, 3] == est.estimate_conditional(first.x, first.y, first.z)
    np.testing.assert_allclose(
        parts[2].estimate.values[0, 3],
        MIST.load(variant="mist_cmi").estimate_conditional(first.x, first.y, first.z),
        rtol=1e-5, atol=1e-6)
    ds = combine_estimates(parts)
    assert ds.sizes == {"estimator": 3, "datapoint": 16}
    assert [float(ds.true_cmi.sel(datapoint=f"cmi/{i}")) for i in range(16)] == \
        [s.cmi for s in store]
    assert set(ds.family.values) == {"normal-chain", "normal-collider"}
    summary = conditional_summary(ds)
    truth, est = ds.true_cmi.values, ds.estimate.sel(estimator="CCA").values
    chains = ds.family.values == "normal-chain"
    assert summary.mae_by_family.sel(estimator="CCA", family="normal-chain") == pytest.approx(
        np.mean(np.abs(est[chains] - truth[chains])))
    assert int(summary.count_by_n.sum()) == 3 * 16 and int(summary.failed_by_n.sum()) == 0
    smallest = ds.n == ds.n.min()                   # CCA failing there: counted apart
    broken = ds.copy(deep=True)
    broken["estimate"] = broken.estimate.where(~((broken.estimator == "CCA") & smallest))
    apart = conditional_summary(broken)
    assert int(apart.failed_by_n.sel(estimator="CCA").sum()) == int(smallest.sum())
    assert int(apart.count_by_n.sel(estimator="CCA").sum()) == 16 - int(smallest.sum())
    page = conditional_markdown(summary, "Conditional run `cmi`")
    assert page.startswith("## Conditional run `cmi`")
    assert page.count("| KSG |") == 2 == page.count("| MIST-CMI |")   # two columns-bins
    value = float(summary.mae_by_n.sel(estimator="CCA").dropna("n_bin", how="all")
                  .isel(n_bin=0).dropna("columns_bin").values[0])
    assert f"| CCA | {value:.3f} |" in page
    plot_conditional(summary, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 5000
    assert summary.count_by_n.dtype == np.int64

    class Batched:                         # records the shapes of each batched call
        name, calls = "fake", []

        def estimate_conditional_batch(self, samples):
            self.calls.append({(s.n, s.dim_x, s.dim_y, s.dim_z) for s in samples})
            return [0.0] * len(samples)

    fake = Batched()
    part = benchmark_conditional_store("fake", fake, "cmi", store.path, progress=False)
    assert all(len(shapes) == 1 for shapes in fake.calls)     # one shape per call
    assert len(fake.calls) < 16 and np.isfinite(part.seconds).all()

    class Warning60(Batched):              # warns of each call at n = 60: half the samples
        name = "warning"

        def estimate_conditional_batch(self, samples):
            if samples[0].n == 60:
                import warnings
                warnings.warn(f"few rows: {samples[0].n}", UserWarning)
            return [0.0] * len(samples)

    capsys.readouterr()
    benchmark_conditional_store("warning", Warning60(), "cmi", store.path, progress=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning")]
    assert lines == ["warning (warning, cmi): 8 of 16 samples warned (UserWarning); the "
                     "first: few rows: 60"]
    with pytest.raises(ValueError, match=r"\(X, Y\) samples"):
        plain = mistgen.build_meta_dataset(tmp_path / "p.zarr", ["normal-dense-base"], 3,
                                           dim_range=(1, 1), progress=False)
        benchmark_conditional_store("KSG", KSG(), "p", plain.path, progress=False)


def test_a_conditional_entry_s_settings_may_not_set_what_the_entry_sets():
    from common.training import conditional_train_config

    for key in ("seed", "threads", "train_store"):
        with pytest.raises(ValueError, match=f"may not set {key}: the entry sets them itself"):
            conditional_train_config({"steps": 2, "settings": {key: 3}}, init="i",
                                     checkpoint="models/c/checkpoint.safetensors")
    cfg = conditional_train_config({"steps": 2, "seed": 5, "settings": {"n_range": [20, 60]}},
                                   init="i", checkpoint="models/c/checkpoint.safetensors")
    assert (cfg.seed, cfg.n_range, cfg.out, cfg.threads) == (5, (20, 60), "models/c", 1)
    assert conditional_train_config({"steps": 2, "threads": 3}, init="i",
                                    checkpoint="models/c/checkpoint.safetensors").threads == 3
