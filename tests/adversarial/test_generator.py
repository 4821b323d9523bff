"""The attacker's and the careless user's cases against mistgen, kept together.

Damaged stores, hostile destinations, leftovers of killed builds, bad priors, absurd
shapes and an unguarded build script: every case must end in one clear error (or warning)
that names the store, the array and the datapoints, or the family, parameter and value.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mistgen
from mistgen import MistgenError, PriorError, ShapeError, SpecError, StoreError, StoreWarning
from mistgen import build as build_module
from mistgen.design import make_design, make_plan

SPECS = ["normal-dense-base", "student-sparse-asinh"]
SHARD = 6  # datapoints per shard; datapoint 8 lies in shard 1 (datapoints 6-11)


@pytest.fixture
def store(tmp_path):
    return mistgen.build_meta_dataset(tmp_path / "s.zarr", SPECS, 20, n_range=(10, 40),
                                      dim_range=(2, 4), shard_size=SHARD, workers=1,
                                      progress=False).path


def chunk(path, array, k):
    return Path(path) / array / "c" / str(k)


def flip_byte(file, at=None):
    data = bytearray(file.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at] ^= 0x01
    file.write_bytes(bytes(data))


def edit_json(file, edit):
    doc = json.loads(file.read_text())
    edit(doc)
    file.write_text(json.dumps(doc))


def read_everything(path):
    ds = mistgen.open_meta_dataset(path)
    for k in range(ds.num_shards):
        ds.shard(k)
    return ds


# -- damaged chunks ------------------------------------------------------------------------

def test_missing_shard_chunk_is_an_error_naming_store_array_and_datapoint(store):
    chunk(store, "shards/00001", 0).unlink()
    ds = mistgen.open_meta_dataset(store)
    assert ds[0].n >= 10  # other shards still read
    with pytest.raises(StoreError, match=f"{store}: array 'shards/00001', datapoints 6-11 "
                                         "\\(reading datapoint 8\\): chunk file .* is missing"):
        ds[8]
    with pytest.raises(StoreError, match="'shards/00001'"):
        ds.shard(1)


@pytest.mark.parametrize("array", ["shards/00001", "mi", "spec", "params", "seed", "n"])
def test_flipped_byte_fails_the_checksum(store, array):
    flip_byte(chunk(store, array, 0 if array.startswith("shards") else 1))
    with pytest.raises(StoreError, match=f"{store}: array '{array}', datapoint.*checksum"):
        read_everything(store)


def test_truncated_shard_is_an_error_naming_it(store):
    file = chunk(store, "shards/00002", 0)
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(StoreError, match=f"{store}: array 'shards/00002', datapoints 12-17 "
                                         "\\(reading datapoint 13\\): cannot be read"):
        mistgen.open_meta_dataset(store)[13]


@pytest.mark.parametrize("array", ["mi", "spec", "seed", "params"])
def test_deleted_label_chunk_is_not_read_as_fill_values(store, array):
    chunk(store, array, 1).unlink()
    ds = mistgen.open_meta_dataset(store)
    with pytest.raises(StoreError, match=f"array '{array}', datapoints 6-11 "
                                         "\\(reading datapoint 7\\): chunk file"):
        ds[7]
    with pytest.raises(StoreError, match=f"array '{array}'"):
        ds.index


@pytest.mark.parametrize("array", ["n", "dim_x", "dim_y", "offset"])
def test_deleted_locating_chunk_stops_the_open(store, array):
    chunk(store, array, 0).unlink()
    with pytest.raises(StoreError, match=f"{store}: array '{array}', datapoints 0-5: chunk file"):
        mistgen.open_meta_dataset(store)


def test_verify_lists_every_problem_and_the_command_fails(store):
    chunk(store, "mi", 1).unlink()
    flip_byte(chunk(store, "shards/00002", 0))
    report = mistgen.verify_store(store)
    assert not report.ok and len(report.problems) == 2
    assert "array 'mi', datapoints 6-11: chunk file missing" in report.problems[0]
    assert "array 'shards/00002', datapoints 12-17" in report.problems[1]
    run = subprocess.run([sys.executable, "-m", "mistgen", "verify", str(store)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "DAMAGED (2 problem(s))" in run.stdout
    assert "Traceback" not in run.stderr


def test_verify_reports_a_deleted_shard_folder_instead_of_crashing(store):
    shutil.rmtree(Path(store) / "shards")
    report = mistgen.verify_store(store)
    assert not report.ok and report.problems
    assert any("shards" in p for p in report.problems)


def swap_files(a, b):
    tmp = a.with_name("swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def rewrite_values_with_valid_checksums(store):
    import zarr
    array = zarr.open_group(str(store), mode="r+", use_consolidated=False)["shards/00001"]
    array[:] = array[:][::-1].copy()


@pytest.mark.parametrize("damage, regenerate, message", [
    (lambda s: swap_files(chunk(s, "mi", 0), chunk(s, "mi", 1)), False,
     "array 'mi', datapoint 0: label .* differs from .*, the MI of its spec and parameters"),
    (lambda s: edit_json(s / "zarr.json", set_meta("seed", 99)), False,
     "datapoint 0: index holds .* but attributes seed/split/design give"),
    (lambda s: edit_json(s / "zarr.json", set_meta("dtype", "float64")), False,
     "array 'shards/00000' holds float32, but attribute mistgen.dtype says 'float64'"),
    (lambda s: (s / "shards" / "00001" / "zarr.json").unlink(), False,
     "metadata of array 'shards/00001' unreadable"),
    (lambda s: edit_json(s / "mi" / "zarr.json", lambda d: d.update(fill_value=1.0)), False,
     "metadata of array 'mi' differs from the copy in"),
    (lambda s: (s / "shards" / "00007").mkdir(), False, "unexpected entries \\['00007'\\]"),
    (rewrite_values_with_valid_checksums, True,
     "array 'shards/00001', datapoint 6: values differ from the datapoint drawn again"),
    (lambda s: edit_json(s / "zarr.json", set_meta(
        "priors", {"normal-dense": {"off_diag": [0.45, 0.5]}})), True,
     "array 'params', datapoint 0: .* differ from .*drawn again from its seed and priors"),
])
def test_damage_that_reads_cleanly_is_found_by_verify(store, damage, regenerate, message):
    damage(store)
    report = mistgen.verify_store(store, regenerate=regenerate)
    assert not report.ok
    assert any(str(store) in p and re.search(message, p) for p in report.problems), \
        report.problems


# -- edited attributes ---------------------------------------------------------------------

def set_meta(key, value):
    def edit(doc):
        doc["attributes"]["mistgen"][key] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (set_meta("count", 25), "attributes disagree: mistgen.count=25"),
    (set_meta("count", 18), "attributes disagree|array 'spec' has shape \\(20,\\)"),
    (set_meta("shard_size", 5), "array 'spec' has shape \\(20,\\) in chunks of \\(6,\\); "
                                "the attributes say 20 datapoints in shards of 5"),
    (set_meta("shard_size", 4), "attributes disagree"),
    (set_meta("num_shards", 3), "attributes disagree"),
    (set_meta("count", "20"), "attribute mistgen.count must be a int"),
    (set_meta("format", "mistgen-meta-dataset/1"), "has format .*rebuild it"),
    (set_meta("complete", "yes"), "is incomplete"),
    (set_meta("specs", ["normal-dense-base"]), "array 'spec', datapoint 1: holds "
                                               "'student-sparse-asinh', which is not one"),
    (lambda doc: doc["attributes"].pop("mistgen"), "not a readable meta-dataset store"),
    (lambda doc: doc["consolidated_metadata"]["metadata"]["shards/00001"].update(shape=[7]),
     "array 'shards/00001', datapoints 6-11"),
    (lambda doc: doc["consolidated_metadata"]["metadata"]["n"].update(shape=[19]),
     "array 'n' has shape \\(19,\\)"),
])
def test_edited_attributes_give_an_error_naming_the_store(store, edit, message):
    edit_json(store / "zarr.json", edit)
    with pytest.raises(StoreError, match=message) as info:
        read_everything(store)
    assert str(store) in str(info.value)


def test_rewritten_offset_column_is_caught(store):
    import zarr
    root = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    offsets = root["offset"][:]
    offsets[3] += 1
    root["offset"][:] = offsets
    with pytest.raises(StoreError, match="datapoint 3: array 'offset' holds"):
        mistgen.open_meta_dataset(store)


# -- destinations --------------------------------------------------------------------------

def small_build(path, **kw):
    return mistgen.build_meta_dataset(path, SPECS, 4, n_range=(10, 20), dim_range=(2, 3),
                                      shard_size=2, workers=1, progress=False, **kw)


class Interfering:
    """A plan that runs ``action`` while its first datapoint is generated."""

    def __init__(self, plan, action):
        self.plan, self.action = plan, action
        self.count, self.shard_size, self.num_shards = plan.count, plan.shard_size, plan.num_shards
        self.shard_bounds = plan.shard_bounds

    def datapoint(self, i):
        if i == 0:
            self.action()
        return self.plan.datapoint(i)


def build_while(path, action, overwrite):
    plan = make_plan(make_design(SPECS, 4, n_range=(10, 20), dim_range=(2, 3)), 0, "t", None, 2)
    return mistgen.write_store(path, Interfering(plan, action),
                               build_module.store_attrs(plan, "float32"),
                               overwrite=overwrite, workers=1, progress=False)


def user_directory(path):
    def create():
        if path.exists():
            import shutil
            shutil.rmtree(path)
        path.mkdir()
        (path / "thesis.tex").write_text("years of work")
    return create


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("overwrite", [False, True])
def test_directory_created_at_the_destination_during_the_build_survives(tmp_path, existing,
                                                                        overwrite):
    path = tmp_path / "s.zarr"
    if existing:
        small_build(path)
    message = "appeared while building" if not overwrite else "not a mistgen meta-dataset"
    if existing and not overwrite:
        message = "already exists"
    with pytest.raises(StoreError, match=f"{path} .*{message}"):
        build_while(path, user_directory(path), overwrite)
    if not (existing and not overwrite):
        assert (path / "thesis.tex").read_text() == "years of work"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_builds_of_one_path_interleaved_replace_each_other_and_nothing_else(tmp_path):
    path = tmp_path / "s.zarr"
    small_build(path)
    inner = []

    def concurrent_build():
        with pytest.warns(StoreWarning, match="alone: its builder .* is still running"):
            inner.append(small_build(path, overwrite=True, seed=5))
        user_directory(tmp_path / "other")()  # a bystander beside the path is never touched

    ds = build_while(path, concurrent_build, overwrite=True)
    assert len(inner) == 1 and mistgen.open_meta_dataset(path).split == ds.split == "t"
    assert mistgen.verify_store(path).ok and (tmp_path / "other" / "thesis.tex").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_user_files_inside_a_store_directory_are_not_deleted(tmp_path):
    path = tmp_path / "s.zarr"
    small_build(path)
    (path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="holds entries that are not part of a meta-dataset "
                                         "\\(notes.txt\\)"):
        small_build(path, overwrite=True)
    assert (path / "notes.txt").read_text() == "mine"
    # also deeper down, in an index array or a shard
    (path / "notes.txt").unlink()
    for nested in ("mi/keep.csv", "shards/00000/my_notes.txt", "shards/c/0"):
        (path / nested).parent.mkdir(parents=True, exist_ok=True)
        (path / nested).write_text("mine")
        with pytest.raises(StoreError, match=f"not part of a meta-dataset \\({nested}"):
            small_build(path, overwrite=True)
        assert (path / nested).read_text() == "mine"
        (path / nested).unlink()
    small_build(path, overwrite=True)          # a store and nothing else: replaced


@pytest.mark.parametrize("target_kind", ["store", "user", "dangling"])
def test_symlinked_destination_is_refused_and_its_target_untouched(tmp_path, target_kind):
    target = tmp_path / "target"
    if target_kind == "store":
        small_build(target)
    elif target_kind == "user":
        target.mkdir()
        (target / "data.csv").write_text("1,2")
    link = tmp_path / "link.zarr"
    link.symlink_to(target, target_is_directory=True)
    before = sorted(p.name for p in target.rglob("*")) if target.exists() else None
    with pytest.raises(StoreError, match=f"{link} is a symbolic link .*refusing to build over it"):
        small_build(link, overwrite=True)
    assert link.is_symlink()
    assert (sorted(p.name for p in target.rglob("*")) if target.exists() else None) == before


def test_symlink_swapped_in_during_the_build_is_refused(tmp_path):
    path, elsewhere = tmp_path / "s.zarr", tmp_path / "elsewhere"
    small_build(path)
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")

    def swap():
        import shutil
        shutil.rmtree(path)
        path.symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(StoreError, match="is a symbolic link"):
        build_while(path, swap, overwrite=True)
    assert path.is_symlink() and (elsewhere / "keep.txt").read_text() == "keep"


# -- leftovers of killed builds ------------------------------------------------------------

def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("tag, content, reason", [
    ("{dead}@{host}-0123abcd", "user", "not a mistgen meta-dataset; check it"),
    ("{alive}@{host}-0123abcd", "store", "builder \\(pid {alive}\\) is still running"),
    ("{dead}@other-host-0123abcd", "store", "made on host 'other-host'"),
    ("0123456789ab", "store", "does not name the build that made it"),
])
def test_leftover_that_may_not_be_ours_is_reported_and_kept(tmp_path, tag, content, reason):
    fields = dict(dead=dead_pid(), alive=os.getpid(), host=socket.gethostname())
    leftover = tmp_path / f".s.zarr.partial-{tag.format(**fields)}"
    if content == "store":
        small_build(leftover)
    else:
        leftover.mkdir()
        (leftover / "results.npy").write_bytes(b"\x93NUMPY")
    with pytest.warns(StoreWarning, match=f"left {leftover} alone: .*{reason.format(**fields)}"):
        small_build(tmp_path / "s.zarr")
    assert leftover.is_dir()


def test_leftover_of_a_dead_builder_on_this_host_is_removed(tmp_path):
    leftover = tmp_path / f".s.zarr.old-{dead_pid()}@{socket.gethostname()}-0123abcd"
    small_build(leftover)
    with pytest.warns(StoreWarning, match=f"removed {leftover}"):
        small_build(tmp_path / "s.zarr")
    assert not leftover.exists()


# -- bad priors and parameters -------------------------------------------------------------

@pytest.mark.parametrize("spec, kwargs, message", [
    ("student-dense", dict(priors={"student-dense": {"nu": [-1, 0]}}),
     "prior for student-dense.nu must lie within nu > 0, got \\[-1, 0\\]"),
    ("student-sparse", dict(priors={"student-sparse": {"nu": [0, 3]}}), "student-sparse.nu"),
    ("normal-dense", dict(priors={"normal-dense": {"off_diag": [0.5, 1.0]}}),
     "normal-dense.off_diag must lie within -1 < off_diag < 1"),
    ("normal-dense", dict(priors={"normal-dense": {"off_diag": [-0.9, 0.1]}}),
     "normal-dense.off_diag \\[-0.9, 0.1\\] reaches values at or below .* dim_x=3, dim_y=3"),
    ("normal-dense", dict(priors={"normal-dense": {"off_diag": ["a", "b"]}}),
     "normal-dense.off_diag must be a pair of numbers"),
    ("normal-dense", dict(priors={"normal-dense": {"off_diag": [float("nan"), 0.2]}}),
     "normal-dense.off_diag must be finite"),
    ("additive_noise", dict(priors={"additive_noise": {"epsilon": [0, 1]}}),
     "additive_noise.epsilon must lie within epsilon > 0"),
    ("normal-lvm", dict(priors={"normal-lvm": {"k": [0, 2]}}), "normal-lvm.k must be integers"),
    ("student-dense", dict(params={"nu": -2.0, "off_diag": 0.1}),
     "'student-dense': parameter nu must lie within nu > 0, got -2.0"),
    ("student-dense", dict(params={"nu": "3", "off_diag": 0.1}),
     "'student-dense': parameter nu must be a finite number, got '3'"),
    ("normal-dense", dict(params={"off_diag": -0.5}),
     "'normal-dense': off_diag=-0.5 is at or below -1/\\(dim_x \\+ dim_y - 1\\) = -0.2"),
    ("normal-dense", dict(params={"off_diag": float("inf")}), "off_diag must be a finite number"),
    ("normal-sparse", dict(params={"k": 7, "strength": 1.0}),
     "'normal-sparse': parameter k must be between 1 and min\\(dim_x, dim_y\\) = 3, got 7"),
    ("normal-lvm", dict(params={"k": 1.5, "alpha": 0, "lambda": 1, "beta": 0, "eta": 1}),
     "parameter k must be an integer"),
    ("additive_noise", dict(params={"epsilon": [0.5, 0.0, 0.2]}),
     "parameter epsilon must lie within epsilon > 0, got 0.0"),
])
def test_bad_priors_and_parameters_name_family_parameter_and_value(spec, kwargs, message):
    with pytest.raises(PriorError, match=message):
        mistgen.sample(spec, 20, 3, 3, 0, **kwargs)


@pytest.mark.parametrize("priors, error, message", [
    ({"normal-dnese": {}}, SpecError, "unknown family 'normal-dnese'"),
    ({"normal-dense-base": {"off_diag": [0, 0.01]}}, SpecError,
     "unknown family 'normal-dense-base'"),
    ({"normal-dense": 3}, PriorError, "priors\\['normal-dense'\\] must map parameter names"),
])
def test_sample_refuses_priors_as_a_build_does(priors, error, message, tmp_path):
    with pytest.raises(error, match=message):
        mistgen.sample("normal-dense-base", 20, 2, 2, 0, priors=priors)
    with pytest.raises(error, match=message):
        mistgen.build_meta_dataset(tmp_path / "s.zarr", ["normal-dense-base"], 4,
                                   priors=priors, progress=False)


def test_a_sample_with_non_finite_values_is_refused():
    with pytest.raises(MistgenError, match="drew non-finite values in x .*narrow the prior"), \
            np.errstate(all="ignore"):
        mistgen.sample("student-dense-base", 300, 2, 2, 0,
                       priors={"student-dense": {"nu": [0.01, 0.01]}})


def test_a_prior_the_dims_make_invalid_stops_a_build_before_it_starts(tmp_path):
    with pytest.raises(PriorError, match=r"for dim_x=[2-4], dim_y=[2-4], where"):
        mistgen.build_meta_dataset(tmp_path / "s.zarr", ["normal-dense-base"], 40,
                                   dim_range=(2, 4), workers=1, progress=False,
                                   priors={"normal-dense": {"off_diag": [-0.5, 0.1]}})
    assert list(tmp_path.iterdir()) == []
    narrow = mistgen.build_meta_dataset(tmp_path / "t.zarr", ["normal-dense-base"], 4,
                                        dim_range=(1, 1), workers=1, progress=False,
                                        priors={"normal-dense": {"off_diag": [-0.5, 0.1]}})
    assert len(narrow) == 4
    # checked at the dims each datapoint has: 2 + 30 and 30 + 2 allow -0.025 (not 30 + 30)
    grid = mistgen.build_meta_dataset(tmp_path / "g.zarr", ["normal-dense-base"],
                                      n_grid=[20], dim_grid=[[2, 30], [30, 2]], workers=1,
                                      progress=False,
                                      priors={"normal-dense": {"off_diag": [-0.025, 0.1]}})
    assert len(grid) == 2 and mistgen.verify_store(grid.path).ok


def test_bad_prior_stops_a_build_before_it_starts(tmp_path):
    with pytest.raises(PriorError, match="student-dense.nu"):
        mistgen.build_meta_dataset(tmp_path / "s.zarr", ["student-dense-base"], 4,
                                   priors={"student-dense": {"nu": [-3, -1]}}, progress=False)
    assert list(tmp_path.iterdir()) == []


# -- absurd shapes -------------------------------------------------------------------------

@pytest.mark.parametrize("spec, n, dim_x, dim_y, gigabytes", [
    ("normal-dense", 500, 5000, 5000, "3.4"),
    ("student-sparse-asinh", 100, 1, 20000, "12.9"),
    ("additive_noise", 10_000_000, 40, 40, "25.6"),
])
def test_absurd_shape_is_refused_up_front_with_its_cost(spec, n, dim_x, dim_y, gigabytes):
    with pytest.raises(ShapeError, match=f"would need about {gigabytes} GB of memory.*"
                                         "the limit is 2.1 GB. Pass max_bytes="):
        mistgen.sample(spec, n, dim_x, dim_y, 0)


def test_memory_limit_can_be_raised_per_call():
    with pytest.raises(ShapeError, match="would need about"):
        mistgen.sample("normal-dense", 10, 300, 300, 0, max_bytes=10**6)
    assert mistgen.sample("normal-dense", 10, 300, 300, 0, max_bytes=None).x.shape == (10, 300)


def test_absurd_design_is_refused_before_building(tmp_path):
    with pytest.raises(ShapeError, match="n=500, dim_x=5000, dim_y=5000 would need about .* "
                                         "narrow n or the dims"):
        mistgen.build_meta_dataset(tmp_path / "s.zarr", ["normal-dense-base"], 4,
                                   dim_range=(2, 5000), progress=False)
    assert list(tmp_path.iterdir()) == []


# -- a build script without the __main__ guard ---------------------------------------------

@pytest.mark.parametrize("how", [[], ["-m"]], ids=["script", "module"])
def test_unguarded_build_script_gets_one_clear_message(tmp_path, how):
    script = tmp_path / "build.py"
    script.write_text("import mistgen\n\n"
                      f"mistgen.build_meta_dataset({str(tmp_path / 'data' / 's.zarr')!r}, "
                      "['normal-dense-base'], 4, shard_size=2, workers=2, progress=False)\n")
    run = subprocess.run([sys.executable, *how, "build" if how else str(script)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode != 0
    assert f"{script}, line 3: building with several local workers" in run.stderr
    assert "if __name__ == \"__main__\":" in run.stderr
    assert len(run.stderr.splitlines()) < 25 and "Nanny" not in run.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["build.py"]  # refused before any folder


@pytest.mark.parametrize("priors, match", [
    ({"discrete-copy": {"k": [2, None]}}, "discrete-copy.k needs an upper bound"),
    ({"normal-sparse": {"k": [3, 5]}}, r"normal-sparse.k \[3, 5\] starts above 2"),
])
def test_integer_priors_the_dims_cannot_honour_are_refused(tmp_path, priors, match):
    spec = next(iter(priors))
    with pytest.raises(mistgen.PriorError, match=match):
        mistgen.build_meta_dataset(tmp_path / "s.zarr", specs=[spec], count=4, n_range=(10, 20),
                                   dim_range=(1 if spec == "discrete-copy" else 2,) * 2,
                                   seed=0, priors=priors, progress=False, workers=1)
    assert not (tmp_path / "s.zarr").exists()


def test_a_prior_invalid_at_dims_first_drawn_late_is_refused_at_the_plan():
    from mistgen.design import make_design, make_plan
    design = make_design(["normal-dense"], count=20000, n_range=(2, 3), dim_range=(2, 64),
                         dim_y_range=(2, 64))
    with pytest.raises(mistgen.PriorError, match="for dim_x=64, dim_y=64"):
        make_plan(design, 0, "train", {"normal-dense": {"off_diag": [-0.0079, 0.1]}}, 1000)


@pytest.mark.parametrize("spec", ["normal-dense-", ["normal-dense"]])
def test_a_malformed_spec_is_a_spec_error(spec):
    with pytest.raises(mistgen.SpecError):
        mistgen.parse_spec(spec)
