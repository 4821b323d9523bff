"""Stores of conditional (X, Y, Z) samples: build, read, verify, train from them."""
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import zarr

import mistgen
from mistgen import MistgenError, ShapeError, SpecError, StoreError
from mistgen.conditional import ConditionalSample, conditional_truth, draw_conditional
from mistgen.conditional_design import make_conditional_design

SPECS = ["normal-chain", "student-collider-halfcube", "normal-confounded-wiggly-spiral",
         "student-factor"]


def build(path, **kw):
    args = dict(specs=SPECS, count=30, n_range=(20, 60), dim_range=(1, 3), seed=5,
                split="cmi", shard_size=7, workers=1, progress=False)
    args.update(kw)
    return mistgen.build_conditional_dataset(path, **args)


def digest(path):
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(Path(path).rglob("*")) if f.is_file()}


def test_round_trip_holds_each_datapoint_as_drawn_from_its_seed(tmp_path):
    ds = build(tmp_path / "c.zarr", dtype="float64")
    assert ds.conditional and len(ds) == 30 and ds.num_shards == 5
    assert ds.meta["format"] == "mistgen-conditional-meta-dataset/1"
    seen = set()
    for i, s in enumerate(ds):
        assert isinstance(s, ConditionalSample)
        assert s.spec == SPECS[i % len(SPECS)]
        assert 20 <= s.n <= 60 and all(1 <= d <= 3 for d in (s.dim_x, s.dim_y, s.dim_z))
        fresh = draw_conditional(s.spec, s.n, s.dim_x, s.dim_y, s.dim_z, s.seed)
        for g in "xyz":
            np.testing.assert_array_equal(getattr(s, g), getattr(fresh, g))
        assert (s.cmi, s.mi) == (fresh.cmi, fresh.mi)
        assert s.params == fresh.params
        seen.add((s.dim_x, s.dim_y, s.dim_z))
    assert len(seen) > 5            # the three groups' sizes are drawn independently
    index = ds.index
    assert {"dim_z", "cmi"} <= set(index.data_vars)
    assert np.allclose(index.cmi.values, [s.cmi for s in ds])


def test_labels_include_zero_cmi_chains_and_zero_mi_colliders(tmp_path):
    ds = build(tmp_path / "c.zarr", specs=["normal-chain", "normal-collider"], count=10)
    for s in ds:
        if s.spec == "normal-chain":
            assert abs(s.cmi) < 1e-12 and s.mi > 0
        else:
            assert abs(s.mi) < 1e-12 and s.cmi > 0


def test_same_bytes_for_one_and_two_workers_and_another_build(tmp_path):
    a = build(tmp_path / "one.zarr", workers=1)
    b = build(tmp_path / "two.zarr", workers=2)
    da, db = digest(a.path), digest(b.path)
    assert len(da) > 40 and da == db
    other = build(tmp_path / "other.zarr", seed=6)
    assert not np.array_equal(other[0].x, a[0].x)


def test_grid_design_with_int_and_triple_dims(tmp_path):
    ds = build(tmp_path / "g.zarr", specs=["normal-factor"], count=None, n_range=None,
               n_grid=[30, 50], dim_grid=[2, [1, 3, 4]], repeats=2)
    shapes = [(s.n, s.dim_x, s.dim_y, s.dim_z) for s in ds]
    assert shapes == [(30, 2, 2, 2)] * 2 + [(30, 1, 3, 4)] * 2 + [(50, 2, 2, 2)] * 2 + \
        [(50, 1, 3, 4)] * 2
    assert mistgen.verify_store(ds.path, regenerate=True).ok


def test_conditional_grid_cells_come_in_product_order():
    design = make_conditional_design(["normal-factor", "student-chain", "normal-collider-base"],
                                     n_grid=[30, 50], dim_grid=[2, [1, 3, 4]], repeats=2)
    rng = np.random.default_rng(0)
    assert [design.cell(i, rng) for i in range(design.count)] == [
        (spec, n, *dims) for spec, n, dims in itertools.product(
            design.specs, design.n_grid, ((2, 2, 2), (1, 3, 4))) for _ in range(2)]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"specs": ["normal-fork"]}, SpecError, "unknown conditional spec 'normal-fork'"),
    ({"specs": ["normal-chain-swirl"]}, SpecError, "unknown transform 'swirl'"),
    ({"specs": "normal-chain"}, SpecError, "non-empty list"),
    ({"dim_range": (0, 2)}, ShapeError, "dim_range[0] must be >= 1"),
    ({"dim_z_range": (3, 2)}, MistgenError, "low <= high"),
    ({"n_range": (10, 10**7), "dim_range": (30, 30)}, ShapeError, "GB of memory"),
    ({"count": None, "n_grid": [50], "dim_grid": [[1, 2]]}, MistgenError, "triples"),
    ({"count": 5, "n_grid": [50], "repeats": 2}, MistgenError, "disagrees with the grid"),
    ({"dtype": "float16"}, MistgenError, "dtype must be one of"),
    ({"split": "a/b"}, MistgenError, "split must be"),
])
def test_bad_arguments_name_the_problem_and_write_nothing(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        build(tmp_path / "bad.zarr", **kwargs)
    assert not (tmp_path / "bad.zarr").exists()


def test_verify_finds_a_label_moved_between_datapoints(tmp_path):
    ds = build(tmp_path / "c.zarr")
    assert mistgen.verify_store(ds.path, regenerate=True).ok
    cmi = zarr.open_array(str(ds.path / "cmi"), mode="r+")
    values = cmi[:]
    j = next(j for j in range(1, 7) if values[j] != values[0])
    values[0], values[j] = values[j], values[0]
    cmi[:7] = values[:7]           # both in shard 0; checksums are rewritten, still valid
    report = mistgen.verify_store(ds.path)
    assert not report.ok
    assert any("array 'cmi', datapoint 0" in p for p in report.problems), report.problems


def test_verify_finds_values_that_differ_from_their_seed(tmp_path):
    ds = build(tmp_path / "c.zarr")
    shard = zarr.open_array(str(ds.path / "shards" / "00001"), mode="r+")
    values = shard[:]
    values[3] += 1.0
    shard[:] = values
    assert mistgen.verify_store(ds.path).ok            # labels and addresses still agree
    report = mistgen.verify_store(ds.path, regenerate=True)
    assert any("datapoint 7: values differ" in p for p in report.problems), report.problems


def test_a_missing_dim_z_chunk_is_damage_named_on_opening(tmp_path):
    ds = build(tmp_path / "c.zarr")
    (ds.path / "dim_z" / "c" / "2").unlink()
    with pytest.raises(StoreError, match=r"array 'dim_z'.*missing"):
        mistgen.open_meta_dataset(ds.path)
    report = mistgen.verify_store(ds.path)
    assert any("'dim_z', chunk 2" in p for p in report.problems), report.problems


def test_conditional_and_plain_stores_are_not_read_as_one(tmp_path):
    cond = build(tmp_path / "c.zarr")
    plain = mistgen.build_meta_dataset(tmp_path / "p.zarr", ["normal-dense-base"], 4,
                                       dim_range=(2, 2), progress=False)
    with pytest.raises(StoreError, match="cannot read conditional"):
        mistgen.open_meta_dataset([cond.path, plain.path])
    both = mistgen.open_meta_dataset([cond.path, cond.path])
    assert both.conditional and len(both) == 60 and isinstance(both[45], ConditionalSample)


def test_overwrite_replaces_a_conditional_store(tmp_path):
    build(tmp_path / "c.zarr")
    with pytest.raises(MistgenError, match="exists"):
        build(tmp_path / "c.zarr")
    again = build(tmp_path / "c.zarr", count=8, overwrite=True)
    assert len(again) == 8


def test_truth_without_drawing_rows_matches_the_draw():
    for spec in SPECS:
        s = draw_conditional(spec, 40, 2, 1, 3, 99)
        cmi, mi, params = conditional_truth(spec, 2, 1, 3, 99)
        assert (cmi, mi) == (s.cmi, s.mi)
        assert params == s.params                  # transforms included


# -- consumers --------------------------------------------------------------------------

def test_xy_training_and_warping_refuse_a_conditional_store(tmp_path):
    from mistgen.warp import warp_store
    from mistmodel.training import open_stores

    ds = build(tmp_path / "c.zarr")
    with pytest.raises(ValueError, match="conditional"):
        open_stores(str(ds.path))
    with pytest.raises(MistgenError, match="conditional"):
        warp_store(ds.path, "unused.safetensors", tmp_path / "w.zarr")


def test_conditional_training_reads_stores(tmp_path):
    from mistmodel.checkpoint import load_checkpoint
    from mistmodel.conditional_training import (ConditionalTrainConfig, open_conditional_stores,
                                                store_batches, train_conditional)

    train = build(tmp_path / "train.zarr", n_range=(20, 40), count=24, shard_size=8)
    val = build(tmp_path / "val.zarr", count=6, split="val")
    plain = mistgen.build_meta_dataset(tmp_path / "p.zarr", ["normal-dense-base"], 4,
                                       dim_range=(2, 2), progress=False)
    with pytest.raises(ValueError, match=r"\(X, Y\) samples"):
        open_conditional_stores(str(plain.path))
    with pytest.raises(ValueError, match="train_store must be"):
        ConditionalTrainConfig(out="o", init="i", train_store=[])
    init = Path(__file__).resolve().parents[1] / "mistmodel/checkpoints/mist.safetensors"
    cfg = ConditionalTrainConfig(out=str(tmp_path / "run"), init=str(init), steps=4,
                                 batch_size=4, eval_every=2, progress=False,
                                 train_store=str(train.path), val_store=[str(val.path)])
    # the batches are a pure function of the store and the seed, and cover it
    first = [[(s.spec, s.seed) for s in b] for _, b in zip(range(8), store_batches(train, cfg))]
    again = [[(s.spec, s.seed) for s in b] for _, b in zip(range(8), store_batches(train, cfg))]
    assert first == again
    assert {seed for b in first for _, seed in b} == {s.seed for s in train}
    ckpt = train_conditional(cfg)
    _, card = load_checkpoint(ckpt)
    index = train.index
    assert card["data_ranges"]["n"] == [int(index.n.min()), int(index.n.max())]
    assert card["stages"][-1]["stores"][0]["path"] == str(train.path)
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert [v["step"] for v in metrics["val"]] == [2, 4]
    assert np.isfinite(metrics["val"][-1]["mae"])


def test_damaged_attributes_are_reported_not_raised(tmp_path):
    import shutil

    ds = build(tmp_path / "c.zarr")
    meta_file = ds.path / "zarr.json"
    original = json.loads(meta_file.read_text())
    # a design attribute that no longer describes a plan
    bad = json.loads(json.dumps(original))
    bad["attributes"]["mistgen"]["design"]["dim_ranges"] = [[1, 3], [1, 3]]
    bad["consolidated_metadata"] = original["consolidated_metadata"]
    meta_file.write_text(json.dumps(bad))
    report = mistgen.verify_store(ds.path)
    assert any("do not define a plan" in p for p in report.problems), report.problems
    # a format that is not a string
    bad["attributes"]["mistgen"]["format"] = ["mistgen-conditional-meta-dataset/1"]
    meta_file.write_text(json.dumps(bad))
    with pytest.raises(StoreError, match="has format"):
        mistgen.open_meta_dataset(ds.path)
    assert not mistgen.verify_store(ds.path).ok
    shutil.rmtree(ds.path)


def test_a_folder_of_the_user_inside_an_xy_store_is_never_replaced(tmp_path):
    plain = mistgen.build_meta_dataset(tmp_path / "p.zarr", ["normal-dense-base"], 4,
                                       dim_range=(2, 2), progress=False)
    (plain.path / "cmi").mkdir()                     # not an entry of an (X, Y) store
    (plain.path / "cmi" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not part of a meta-dataset"):
        mistgen.build_meta_dataset(plain.path, ["normal-dense-base"], 4, dim_range=(2, 2),
                                   progress=False, overwrite=True)
    assert (plain.path / "cmi" / "notes.txt").read_text() == "mine"
    # a conditional store's own cmi array is its own, and is replaced
    cond = build(tmp_path / "c.zarr")
    again = build(cond.path, count=8, overwrite=True)
    assert len(again) == 8


def test_verify_finds_a_changed_transform_chain(tmp_path):
    ds = build(tmp_path / "c.zarr", specs=["normal-chain-halfcube"], count=7)
    params = zarr.open_array(str(ds.path / "params"), mode="r+")
    values = params[:]
    record = json.loads(values[0])
    record["transforms"] = "wiggly"
    values[0] = json.dumps(record, sort_keys=True)
    params[:] = values
    report = mistgen.verify_store(ds.path)
    assert any("array 'params', datapoint 0" in p for p in report.problems), report.problems

