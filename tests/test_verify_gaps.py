"""``mistgen verify`` lists all it can find: lost index chunks with their shard's data,
a lost design attribute, chunks that are not regular files; a path that is no store is a
usage error."""
import json
import shutil
from pathlib import Path

import pytest
import zarr

import mistgen
from mistgen import StoreError
from mistgen import build as build_module
from mistgen.cli import main
from mistgen.design import make_design, make_plan

SPECS = ["normal-dense-base", "student-sparse-asinh"]
SHARD = 3  # datapoints per shard; shard 1 holds datapoints 3-5


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One tiny (X, Y) store and one tiny conditional store, built once."""
    root = tmp_path_factory.mktemp("built")
    plain = mistgen.build_meta_dataset(root / "s.zarr", SPECS, 9, n_range=(10, 20),
                                       dim_range=(1, 2), shard_size=SHARD, workers=1,
                                       progress=False).path
    cond = mistgen.build_conditional_dataset(root / "c.zarr", ["normal-chain"], 4,
                                             n_range=(20, 30), dim_range=(1, 2),
                                             shard_size=2, workers=1, progress=False).path
    return {"plain": plain, "conditional": cond}


@pytest.fixture
def store(built, tmp_path):
    """A fresh copy of the tiny (X, Y) store, to damage."""
    return Path(shutil.copytree(built["plain"], tmp_path / "s.zarr"))


def chunk(path, array, k):
    return Path(path) / array / "c" / str(k)


def flip_byte(file):
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))


def set_attrs(path, edit):
    root = zarr.open_group(str(path), mode="r+")
    meta = dict(root.attrs["mistgen"])
    edit(meta)
    root.attrs["mistgen"] = meta


def problems_with(report, *parts):
    return [p for p in report.problems if all(part in p for part in parts)]


# -- a lost index chunk does not hide its shard's data ----------------------------------

def test_a_lost_label_chunk_still_has_its_shard_s_data_checked(store):
    chunk(store, "mi", 1).unlink()
    flip_byte(chunk(store, "shards/00001", 0))
    report = mistgen.verify_store(store)
    assert problems_with(report, "array 'mi', datapoints 3-5", "chunk file missing")
    assert problems_with(report, "array 'shards/00001', datapoints 3-5", "cannot be read"), \
        report.problems
    assert len(report.problems) == 2


def test_a_lost_shard_column_chunk_still_has_its_shard_s_data_checked(store):
    chunk(store, "shard", 1).unlink()
    values = chunk(store, "shards/00001", 0)
    values.write_bytes(values.read_bytes()[: values.stat().st_size // 2])
    report = mistgen.verify_store(store)
    assert problems_with(report, "array 'shard', datapoints 3-5", "chunk file missing")
    assert problems_with(report, "array 'shards/00001'", "cannot be read"), report.problems


def test_a_store_that_does_not_open_still_has_its_data_arrays_read(store):
    chunk(store, "n", 0).unlink()          # the index cannot locate datapoints: no open
    flip_byte(chunk(store, "shards/00002", 0))
    report = mistgen.verify_store(store)
    assert problems_with(report, "array 'n', chunk 0", "chunk file missing")
    assert problems_with(report, "array 'shards/00002'", "cannot be read"), report.problems
    assert not problems_with(report, "array 'shards/00001'")


# -- a lost design attribute -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["plain", "conditional"])
def test_a_store_that_lost_its_design_is_damaged(built, tmp_path, kind):
    path = Path(shutil.copytree(built[kind], tmp_path / "copy.zarr"))
    assert mistgen.verify_store(path).ok
    set_attrs(path, lambda meta: meta.pop("design"))
    report = mistgen.verify_store(path)
    assert not report.ok
    assert problems_with(report, str(path), "attribute mistgen.design is missing"), \
        report.problems


def test_a_design_that_is_not_a_dict_is_damage(store):
    set_attrs(store, lambda meta: meta.update(design="grid"))
    report = mistgen.verify_store(store)
    assert problems_with(report, "attribute mistgen.design must be a dict", "'grid'"), \
        report.problems


def test_a_warped_store_needs_no_design(store):
    set_attrs(store, lambda meta: (meta.pop("design"), meta.update(warp={"modality": "m"})))
    report = mistgen.verify_store(store, regenerate=True)
    assert report.ok and "base store" in str(report)


def test_a_store_written_from_a_plan_of_its_own_needs_no_design(tmp_path):
    plan = make_plan(make_design(SPECS, count=4, n_range=(10, 20), dim_range=(1, 2)), 1,
                     "own", None, 2)
    attrs = build_module.store_attrs(plan, "float32")
    for key in ("design", "seed", "priors"):
        del attrs["mistgen"][key]
    ds = mistgen.write_store(tmp_path / "own.zarr", plan, attrs, workers=1, progress=False)
    report = mistgen.verify_store(ds.path, regenerate=True)
    assert report.ok and "no mistgen.design attribute" in str(report)


# -- a path that is not a store ----------------------------------------------------------

def not_a_store(tmp_path, what):
    path = tmp_path / "thing"
    if what == "file":
        path.write_text("hello")
    else:
        path.mkdir()
    if what == "folder of files":
        (path / "notes.txt").write_text("mine")
        (path / "data").mkdir()
    if what == "zarr group":
        zarr.open_group(str(path), mode="w", zarr_format=3)
    return path


NEITHER = "a directory holding neither a zarr.json with mistgen attributes nor any"


@pytest.mark.parametrize("what, why", [
    ("empty folder", "an empty directory"),
    ("file", "a file"),
    ("folder of files", NEITHER),
    ("zarr group", NEITHER),
])
def test_a_path_that_is_not_a_store_is_a_usage_error(tmp_path, capsys, what, why):
    path = not_a_store(tmp_path, what)
    with pytest.raises(StoreError, match="is not a mistgen store"):
        mistgen.verify_store(path)
    assert main(["verify", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "DAMAGED" not in out + err
    assert err.count("\n") == 1 and f"{path} is not a mistgen store ({why}" in err


def test_a_store_whose_group_metadata_is_lost_is_still_damaged(store, capsys):
    (store / "zarr.json").unlink()
    assert main(["verify", str(store)]) == 1
    out, _ = capsys.readouterr()
    assert "DAMAGED" in out


def test_a_usage_error_does_not_stop_the_other_stores(built, tmp_path, capsys):
    path = not_a_store(tmp_path, "empty folder")
    assert main(["verify", str(path), str(built["plain"])]) == 2
    out, err = capsys.readouterr()
    assert ": OK (9 datapoints in 3 shards checked)" in out and "not a mistgen store" in err


# -- chunks that are not regular files ---------------------------------------------------

@pytest.mark.parametrize("array, k", [("shard", 0), ("mi", 1), ("seed", 2), ("params", 0),
                                      ("shards/00001", 0)])
def test_a_directory_in_place_of_a_chunk_is_damage_naming_it(store, array, k):
    file = chunk(store, array, k)
    file.unlink()
    file.mkdir()
    report = mistgen.verify_store(store)
    assert problems_with(report, str(file), "is a directory"), report.problems


def test_a_directory_in_place_of_a_locating_chunk_is_damage_naming_it(store):
    file = chunk(store, "offset", 1)
    file.unlink()
    file.mkdir()
    report = mistgen.verify_store(store)
    assert problems_with(report, str(file), "is a directory"), report.problems


def test_a_missing_chunk_is_reported_naming_its_file(store):
    chunk(store, "seed", 2).unlink()
    chunk(store, "shards/00000", 0).unlink()
    report = mistgen.verify_store(store)
    for array, k in (("seed", 2), ("shards/00000", 0)):
        assert problems_with(report, "chunk file missing", str(chunk(store, array, k))), \
            report.problems


def test_a_directory_in_place_of_a_chunk_is_not_read_as_fill_values(store):
    file = chunk(store, "mi", 1)
    file.unlink()
    file.mkdir()
    ds = mistgen.open_meta_dataset(store)
    assert ds[0].mi > 0
    with pytest.raises(StoreError, match="array 'mi', datapoints 3-5") as caught:
        ds[4]
    assert f"chunk file {file} is a directory" in str(caught.value)


def test_an_intact_store_reads_as_before(built):
    report = mistgen.verify_store(built["plain"], regenerate=True)
    assert report.ok and report.problems == [] and report.notes == []
    assert str(report) == f"{built['plain']}: OK (9 datapoints in 3 shards checked)"
    data = json.loads((built["plain"] / "zarr.json").read_text())
    assert isinstance(data["attributes"]["mistgen"]["design"], dict)
