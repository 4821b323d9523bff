"""Meta-dataset stores: round trip, determinism across workers and shard order, integrity."""
import hashlib
import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import mistgen
from mistgen import MistgenError, ShapeError, SpecError, StoreError
from mistgen import build as build_module
from mistgen.design import grid_cell, make_design, make_plan
from mistgen.destination import finalize
from mistgen.store import FORMAT, create_skeleton, write_shard

SPECS = ["normal-dense-base", "student-sparse-asinh", "additive_noise-wiggly",
         "normal-lvm-halfcube", "student-2pair-base", "normal-dense-normal_cdf-spiral"]


def digest(path):
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(Path(path).rglob("*")) if f.is_file()}


def build(path, **kw):
    args = dict(specs=SPECS, count=40, n_range=(10, 60), dim_range=(2, 5), seed=3,
                split="train", shard_size=7, workers=1, progress=False)
    args.update(kw)
    return mistgen.build_meta_dataset(path, **args)


def test_round_trip(tmp_path):
    ds = build(tmp_path / "train.zarr")
    assert len(ds) == 40 and ds.num_shards == 6
    index = ds.index
    assert index.sizes["datapoint"] == 40
    seen = 0
    for shard in ds.iter_shards():
        for s in shard:
            i = seen
            seen += 1
            ref = mistgen.sample(s.spec, s.n, s.dim_x, s.dim_y, s.seed)
            np.testing.assert_array_equal(s.x, ref.x.astype(np.float32))
            np.testing.assert_array_equal(s.y, ref.y.astype(np.float32))
            assert s.mi == ref.mi and s.params == ref.params
            assert str(index.spec[i].values) == s.spec and int(index.n[i]) == s.n
            assert int(index.dim_x[i]) == s.dim_x and float(index.mi[i]) == s.mi
            np.testing.assert_array_equal(ds[i].x, s.x)
    assert seen == 40
    assert set(str(v) for v in index.spec.values) == set(SPECS)
    np.testing.assert_array_equal(ds[-1].y, ds[39].y)


def test_store_metadata_readable_by_xarray(tmp_path):
    cfg = {"study": "unit-test", "nested": {"a": 1}}
    path = tmp_path / "s.zarr"
    build(path, config=cfg, priors={"normal-dense": {"off_diag": [0.1, 0.2]}})
    ix = xr.open_zarr(path)
    for name in ("spec", "n", "dim_x", "dim_y", "mi", "seed", "params"):
        assert name in ix and ix[name].dims == ("datapoint",)
    meta = ix.attrs["mistgen"]
    assert meta["specs"] == SPECS and meta["version"] == mistgen.__version__
    assert meta["complete"] is True and meta["seed"] == 3
    assert meta["priors"]["normal-dense"]["off_diag"] == [0.1, 0.2]
    assert ix.attrs["config"] == cfg
    params = [json.loads(p) for p, s in zip(ix.params.values, ix.spec.values) if s == "normal-dense-base"]
    assert params and all(0.1 <= p["off_diag"] <= 0.2 for p in params)


def test_paper_style_grid(tmp_path):
    ds = mistgen.build_meta_dataset(
        tmp_path / "test.zarr", ["normal-dense-base", "student-sparse-asinh"],
        n_grid=np.linspace(10, 500, 20).astype(int).tolist(), repeats=9, dim_range=(2, 32),
        seed=1, split="test_id", shard_size=100, workers=1, progress=False)
    ix = ds.index
    assert len(ds) == 2 * 20 * 9
    counts = ix.to_dataframe().groupby(["spec", "n"]).size()
    assert len(counts) == 40 and (counts == 9).all()
    assert ix.dim_x.min() >= 2 and ix.dim_x.max() <= 32
    assert (ix.dim_x == ix.dim_y).all()


def test_unequal_dims_and_explicit_dim_grid(tmp_path):
    ds = mistgen.build_meta_dataset(
        tmp_path / "g.zarr", ["normal-sparse-base"], n_grid=[10, 20], dim_grid=[1, [3, 64]],
        repeats=2, workers=1, progress=False)
    shapes = {(s.n, s.dim_x, s.dim_y) for s in ds}
    assert shapes == {(10, 1, 1), (10, 3, 64), (20, 1, 1), (20, 3, 64)}
    ds = build(tmp_path / "r.zarr", specs=["student-dense-base"], dim_range=(1, 3), dim_y_range=(5, 9))
    assert all(1 <= s.dim_x <= 3 and 5 <= s.dim_y <= 9 for s in ds)


def test_drawn_dims_are_the_most_the_built_datapoints_have(tmp_path, monkeypatch):
    for count, dim_y_range in ((6, None), (12, (1, 9)), (200, (1, 9))):
        ds = build(tmp_path / f"d{count}.zarr", specs=["normal-dense-base"], count=count,
                   dim_range=(1, 12), dim_y_range=dim_y_range)
        design = make_design(["normal-dense-base"], count, n_range=(10, 60), dim_range=(1, 12),
                             dim_y_range=dim_y_range)
        plan = make_plan(design, 3, "train", None, 7)
        assert plan.drawn_dims() == (max(s.dim_x for s in ds), max(s.dim_y for s in ds))
    grid = make_design(["normal-dense-base"], n_grid=[10], dim_grid=[[2, 7], [5, 1]])
    assert make_plan(grid, 0, "test", None, 5).drawn_dims() == (5, 7)
    # a large split stops reading addresses once it has drawn the design's largest dims
    from mistgen import design as design_module
    calls = []
    real = design_module.address_rng
    monkeypatch.setattr(design_module, "address_rng", lambda *a: calls.append(a) or real(*a))
    huge = make_plan(make_design(["normal-dense-base"], 10 ** 9, dim_range=(1, 12)), 0,
                     "train", None, 100)
    assert huge.drawn_dims() == (12, 12) and len(calls) < 1000


def test_a_grid_cell_is_found_in_product_order():
    specs, ns = ("a", "b", "c"), (10, 20)
    for dims in (None, ((1, 1), (2, 3), (4, 1), (2, 2))):
        cells = list(itertools.product(specs, ns, dims if dims is not None else (None,)))
        assert [grid_cell(specs, ns, dims, k) for k in range(len(cells))] == cells
    grid = make_design(["normal-dense-base", "student-dense-base"], n_grid=[10, 30],
                       dim_grid=[[2, 7], [5, 1], [1, 1]], repeats=2)
    rng = np.random.default_rng(0)
    assert [grid.cell(i, rng) for i in range(grid.count)] == [
        (spec, n, dx, dy) for spec, n, (dx, dy) in itertools.product(
            grid.specs, grid.n_grid, grid.dim_grid) for _ in range(2)]


def test_same_bytes_for_one_and_two_dask_workers(tmp_path):
    a = build(tmp_path / "one.zarr", count=60, shard_size=8, workers=1)
    b = build(tmp_path / "two.zarr", count=60, shard_size=8, workers=2)
    da, db = digest(a.path), digest(b.path)
    assert len(da) > 60 and da == db


def test_cluster_by_scheduler_address(tmp_path):
    from distributed import Client, LocalCluster

    reference = build(tmp_path / "one.zarr", count=30, shard_size=4, workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        built = build(tmp_path / "cluster.zarr", count=30, shard_size=4,
                      scheduler=cluster.scheduler_address)
        with Client(cluster) as client:
            workers_used = len(client.scheduler_info()["workers"])
    assert workers_used == 2
    assert digest(built.path) == digest(reference.path)


def test_same_bytes_for_any_shard_order(tmp_path):
    reference = build(tmp_path / "ref.zarr")
    plan = make_plan(make_design(SPECS, 40, n_range=(10, 60), dim_range=(2, 5)), 3, "train", None, 7)
    attrs = json.loads((reference.path / "zarr.json").read_text())["attributes"]
    attrs["mistgen"]["complete"] = False
    tmp = tmp_path / ".rev.partial"
    create_skeleton(tmp, plan, attrs)
    for k in reversed(range(plan.num_shards)):
        write_shard(str(tmp), k, plan, "float32")
    finalize(tmp, tmp_path / "rev.zarr", overwrite=False)
    assert digest(tmp_path / "rev.zarr") == digest(reference.path)


def test_seed_and_split_change_the_data(tmp_path):
    a = build(tmp_path / "a.zarr", count=8)
    b = build(tmp_path / "b.zarr", count=8, seed=4)
    c = build(tmp_path / "c.zarr", count=8, split="val")
    assert a[0].seed != b[0].seed and a[0].seed != c[0].seed


def test_existing_path_needs_overwrite(tmp_path):
    path = tmp_path / "s.zarr"
    build(path, count=5)
    with pytest.raises(StoreError, match="already exists; pass overwrite=True"):
        build(path, count=5)
    ds = build(path, count=9, overwrite=True)
    assert len(ds) == 9 and len(mistgen.open_meta_dataset(path)) == 9
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not a mistgen meta-dataset; refusing"):
        build(other, count=5, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    real = build_module.write_shard

    def failing(path, k, plan, dtype):
        if k == 3:
            raise KeyboardInterrupt  # e.g. the user pressing Ctrl-C mid-build
        return real(path, k, plan=plan, dtype=dtype)

    monkeypatch.setattr(build_module, "write_shard", failing)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "s.zarr")
    assert list(tmp_path.iterdir()) == []


def test_incomplete_store_does_not_open(tmp_path):
    plan = make_plan(make_design(SPECS, 10), 0, "train", None, 5)
    create_skeleton(tmp_path / "half.zarr", plan, {"mistgen": {"format": FORMAT, "complete": False}})
    write_shard(str(tmp_path / "half.zarr"), 0, plan, "float32")
    with pytest.raises(StoreError, match="incomplete"):
        mistgen.open_meta_dataset(tmp_path / "half.zarr")
    with pytest.raises(StoreError, match="not a meta-dataset store"):
        mistgen.open_meta_dataset(tmp_path / "nothing.zarr")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(specs=["gamma-base"]), SpecError, "known family"),
    (dict(specs=["normal-dense-cube"]), SpecError, "unknown transform 'cube'"),
    (dict(specs=[]), SpecError, "non-empty list"),
    (dict(specs="normal-dense-base"), SpecError, "non-empty list"),
    (dict(specs=["normal-2pair-base"], dim_range=(1, 4)), ShapeError, "normal-2pair"),
    (dict(specs=["additive_noise-base"], dim_y_range=(2, 6)), ShapeError, "dim_x == dim_y"),
    (dict(n_range=(1, 10)), ShapeError, "n_range\\[0\\] must be >= 2"),
    (dict(count=0), MistgenError, "count must be >= 1"),
    (dict(count=-5), MistgenError, "count must be >= 1"),
    (dict(count=2.5), MistgenError, "count must be an integer"),
    (dict(shard_size=0), MistgenError, "shard_size must be >= 1"),
    (dict(seed=-1), MistgenError, "seed must be >= 0"),
    (dict(split="a/b"), MistgenError, "split must be"),
    (dict(dim_range=(5, 2)), MistgenError, "low <= high"),
    (dict(dtype="float16"), MistgenError, "dtype must be one of"),
    (dict(priors={"normal-dens": {}}), SpecError, "unknown family 'normal-dens'"),
    (dict(n_grid=[10, 1]), ShapeError, "n_grid entry must be >= 2"),
    (dict(count=7, n_grid=[10, 20], repeats=2), MistgenError, "disagrees with the grid"),
])
def test_bad_build_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        build(tmp_path / "bad.zarr", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_indexing_errors(tmp_path):
    ds = build(tmp_path / "s.zarr", count=5)
    with pytest.raises(IndexError, match="out of range"):
        ds[5]
    with pytest.raises(IndexError, match="shard 1 out of range"):
        ds.shard(1)
    with pytest.raises(TypeError):
        ds["3"]


def test_several_stores_read_as_one(tmp_path):
    a = build(tmp_path / "a.zarr", specs=["normal-dense-base"], count=10, shard_size=4)
    b = build(tmp_path / "b.zarr", specs=["student-sparse-asinh"], count=5, shard_size=4)
    both = mistgen.open_meta_dataset([a.path, b.path])
    assert len(both) == 15 and both.num_shards == 5
    assert both.specs == ["normal-dense-base", "student-sparse-asinh"]
    np.testing.assert_array_equal(both[12].x, b[2].x)
    np.testing.assert_array_equal(both[-1].y, b[4].y)
    assert [len(s) for s in both.iter_shards()] == [4, 4, 2, 4, 1]
    assert [both.shard_length(k) for k in range(5)] == [4, 4, 2, 4, 1]
    assert [s.mi for s in both] == [s.mi for s in a] + [s.mi for s in b]
    ix = both.index
    assert ix.sizes["datapoint"] == 15 and list(ix.spec.values[9:11]) == [
        "normal-dense-base", "student-sparse-asinh"]


# -- replacing what stands at the destination --------------------------------------------

def leftovers(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.startswith("."))


def test_a_chunk_zarr_was_writing_when_killed_is_the_store_s_own(tmp_path):
    # zarr writes a chunk to <chunk>.<32 hex>.partial and renames it: a build killed in
    # between leaves that file, which is the build's, not a user's
    from mistgen.destination import _foreign

    ds = build(tmp_path / "s.zarr", count=4)
    (ds.path / "mi" / "c" / f"0.{'b0' * 16}.partial").write_bytes(b"half")
    assert _foreign(ds.path) is None
    (ds.path / "mi" / "c" / "0.notes").write_text("mine")
    assert "0.notes" in _foreign(ds.path)


def test_killed_build_is_reported_while_running_and_removed_once_gone(tmp_path):
    import subprocess
    import sys
    import time

    path = tmp_path / "big.zarr"
    script = (f"import mistgen\nif __name__ == '__main__':\n"
              f"    mistgen.build_meta_dataset({str(path)!r}, ['student-dense-base'], 100000, "
              f"shard_size=5, workers=1, progress=False)\n")
    builder = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not any((p / "shards" / "00000").exists()
                      for p in tmp_path.glob(".big.zarr.partial-*")):
            assert builder.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        with pytest.warns(mistgen.StoreWarning,
                          match=f"builder \\(pid {builder.pid}\\) is still running"):
            build(path, count=3)
        assert len(leftovers(tmp_path)) == 1
    finally:
        builder.kill()
        builder.wait()
    with pytest.warns(mistgen.StoreWarning, match="removed .*partial.* no longer running"):
        build(path, count=4, overwrite=True)
    assert leftovers(tmp_path) == [] and len(mistgen.open_meta_dataset(path)) == 4


# -- verification ----------------------------------------------------------------------

def test_verify_says_when_it_could_not_draw_datapoints_again(tmp_path):
    import zarr

    ds = build(tmp_path / "s.zarr", count=4)
    assert mistgen.verify_store(ds.path, regenerate=True).notes == []
    root = zarr.open_group(str(ds.path), mode="r+")
    root.attrs["mistgen"] = {**root.attrs["mistgen"], "warp": {"modality": "m"}}
    report = mistgen.verify_store(ds.path, regenerate=True)
    assert report.ok and "not drawn again" in str(report) and "base store" in str(report)
    assert mistgen.verify_store(ds.path).notes == []          # nothing asked, nothing said


def test_verify_names_a_family_file_that_does_not_load_not_the_store(tmp_path):
    import os
    import subprocess
    import sys

    ds = build(tmp_path / "s.zarr", count=2)
    env = {**os.environ, "MISTGEN_FAMILY_FILES": str(tmp_path / "nofile.py")}
    run = subprocess.run([sys.executable, "-m", "mistgen", "verify", str(ds.path)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 2, run.stderr
    assert "family file" in run.stderr and "no such file" in run.stderr
    assert "not registered" not in run.stderr


def test_verify_passes_an_intact_store_and_the_command_exits_zero(tmp_path):
    import subprocess
    import sys

    ds = build(tmp_path / "s.zarr")
    report = mistgen.verify_store(ds.path, regenerate=True)
    assert report.ok and report.datapoints_checked == 40 and report.shards_checked == 6
    run = subprocess.run([sys.executable, "-m", "mistgen", "verify", str(ds.path)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "OK (40 datapoints in 6 shards checked)" in run.stdout


def test_every_array_chunk_carries_a_checksum(tmp_path):
    ds = build(tmp_path / "s.zarr", count=8)
    meta = json.loads((ds.path / "zarr.json").read_text())["consolidated_metadata"]["metadata"]
    arrays = {k: v for k, v in meta.items() if v["node_type"] == "array"}
    assert len(arrays) == 9 + ds.num_shards
    assert all(v["codecs"][-1]["name"] == "crc32c" for v in arrays.values())


@pytest.mark.parametrize("change, message", [
    ({"nu": float("nan")}, "nu must be a finite number"),
    ({"offdiag": 0.5}, "no parameter"),
])
def test_verify_reports_parameters_that_do_not_define_the_label(tmp_path, change, message):
    import zarr

    ds = build(tmp_path / "s.zarr", specs=["student-dense-base"], count=4)
    params = zarr.open_array(str(ds.path / "params"), mode="r+")
    values = params[:]
    values[0] = json.dumps({**json.loads(values[0]), **change}, sort_keys=True)
    params[:] = values
    report = mistgen.verify_store(ds.path)
    assert [p for p in report.problems if "datapoint 0" in p and message in p], report.problems


def test_a_cast_that_merges_values_is_warned_of_and_recorded(tmp_path):
    from mistgen import MergedValuesWarning

    # normal_cdf maps 6 and 7 both to 1.0 in float32: 8 labels become 7
    kw = dict(specs=["discrete-copy-normal_cdf"], count=3, n_range=(400, 400),
              dim_range=(1, 1), priors={"discrete-copy": {"k": [8, 8]}})
    with pytest.warns(MergedValuesWarning,
                      match=r"3 datapoint\(s\).*discrete-copy-normal_cdf") as caught:
        ds = build(tmp_path / "f32.zarr", **kw)
    assert caught[0].filename == __file__                   # the caller's line
    assert ds.meta["merged_by_dtype"] == {"discrete-copy-normal_cdf": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("error", MergedValuesWarning)
        ds = build(tmp_path / "f64.zarr", dtype="float64", **kw)
    assert "merged_by_dtype" not in ds.meta


def test_a_transform_that_merges_values_in_float64_is_warned_of_and_recorded(tmp_path):
    from mistgen import MergedValuesWarning
    from mistgen.conditional import draw_conditional

    # Cauchy tails beyond about 8.3 all become 1.0 under normal_cdf, in float64 already
    kw = dict(specs=["student-dense-normal_cdf"], count=2, n_range=(1000, 1000),
              dim_range=(1, 1), priors={"student-dense": {"nu": [1, 1]}}, dtype="float64")
    with pytest.warns(MergedValuesWarning, match=r"2 datapoint\(s\), the spec's transforms"):
        ds = build(tmp_path / "cdf.zarr", **kw)
    assert ds.meta["merged_by_transform"] == {"student-dense-normal_cdf": 2}
    assert "merged_by_dtype" not in ds.meta
    with warnings.catch_warnings():
        warnings.simplefilter("error", MergedValuesWarning)
        build(tmp_path / "asinh.zarr", **{**kw, "specs": ["student-dense-asinh"]})
    assert draw_conditional("student-chain-normal_cdf", 2000, 1, 1, 1, 16).merged_by_transform
    assert not draw_conditional("normal-chain-normal_cdf", 2000, 1, 1, 1, 0).merged_by_transform
    # a map that is not monotone merges too: 28 rows through spiral then normal_cdf
    assert mistgen.sample("student-dense-spiral-normal_cdf", 2000, 2, 2, 3).merged_by_transform
    from mistgen.merges import maps_values_together
    values = np.arange(1000.0)[:, None]
    assert maps_values_together(values, values % 2) and not maps_values_together(values, -values)


def test_merged_values_counts_rows_not_chance_ties():
    from mistgen.store import merges_values

    x = np.random.default_rng(0).standard_normal((1000, 3))
    x[0, 1] = np.nextafter(x[1, 1], 2.0)                       # one chance tie: 2 rows
    assert not merges_values(x, x.astype(np.float32))
    x[:20, 2] = 20.0 + np.arange(20) * 1e-9                    # 2% of a column merged
    assert merges_values(x, x.astype(np.float32))
    assert not merges_values(x, x)                             # no cast, nothing merged
