"""A failed build on a caller's Dask scheduler leaves nothing behind; the forms of the main
guard; split names sharing a CRC; memory of the independence families; bad grids,
destinations, configs and within-side priors refused with the package's errors."""
import ast
import logging
import threading
import time
import zlib

import numpy as np
import pytest

import mistgen
from mistgen import FAMILIES, MistgenError, PriorError, ShapeError, StoreError
from mistgen.design import check_split_names, make_design, make_plan
from mistgen.execution import _is_main_guard
from mistgen.families.base import Family
from mistgen.spec import parse_spec

TINY = dict(n_range=(10, 12), dim_range=(1, 1), workers=1, progress=False)


# -- a failed build on the caller's scheduler ---------------------------------------------

@pytest.fixture
def failing_family():
    """Family ``fails_beside_slow``: n=3 takes 1.5 s; n=2 raises once n=3 has started."""
    started = threading.Event()

    class FailsBesideSlow(Family):
        name = "fails_beside_slow"
        default_prior = {}
        drawn_params = frozenset()

        def draw_params(self, rng, dim_x, dim_y, prior):
            return {}

        def mutual_information(self, params, dim_x, dim_y):
            return 0.0

        def sample(self, rng, n, dim_x, dim_y, params):
            if n == 2:
                started.wait(10)
                raise RuntimeError("shard failed")
            started.set()
            time.sleep(1.5)
            return rng.standard_normal((n, dim_x)), rng.standard_normal((n, dim_y))

    FAMILIES.register(FailsBesideSlow)
    yield FailsBesideSlow.name
    FAMILIES.unregister(FailsBesideSlow.name)


def test_failed_build_on_callers_scheduler_leaves_no_partial_store(tmp_path, failing_family):
    from distributed import Client, LocalCluster

    out = tmp_path / "out"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        with pytest.raises(RuntimeError, match="shard failed"):
            mistgen.build_meta_dataset(out / "s.zarr", [failing_family], n_grid=[2, 3],
                                       shard_size=1, dim_range=(1, 1), scheduler=client,
                                       progress=False)
        time.sleep(2.0)  # past the end of the slow shard
    assert list(out.iterdir()) == []


# -- the main guard -----------------------------------------------------------------------

def guards(test: str) -> bool:
    return _is_main_guard(ast.parse(f"if {test}:\n    pass\n").body[0])


def test_main_guard_accepts_either_order_and_a_conjunction():
    assert guards('__name__ == "__main__"')
    assert guards('"__main__" == __name__')
    assert guards('__name__ == "__main__" and True')
    assert guards('ready and "__main__" == __name__')


def test_main_guard_refuses_other_tests():
    assert not guards('__name__ == "__main__" or True')
    assert not guards('__name__ == "main"')
    assert not guards('__name__ != "__main__"')


# -- split names sharing a CRC ------------------------------------------------------------

def test_split_names_with_one_crc_are_refused_naming_both():
    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")
    check_split_names(["train", "val", "test", "train", "train.normal-dense"])
    with pytest.raises(MistgenError, match="'plumless' and 'buckeroo'.*rename one"):
        check_split_names(["train", "plumless", "val", "buckeroo"])


# -- memory of the independence families --------------------------------------------------

@pytest.mark.parametrize("spec", ["independent-normal", "independent-student",
                                  "independent-mixed"])
def test_independence_memory_counts_within_side_matrices(spec):
    family = parse_spec(spec).family
    assert family.memory_bytes(2, 20_000, 1) > 8 * 20_000 ** 2
    assert "20000 x 20000" in family.memory_use(2, 20_000, 1)
    with pytest.raises(ShapeError, match="GB of memory"):
        make_design([spec], 3, n_range=(10, 20), dim_range=(20_000, 20_000))
    uniform = parse_spec("independent-uniform").family
    assert uniform.memory_bytes(2, 20_000, 1) == 8 * 4 * 2 * 20_001


# -- bad grids, destinations and configs --------------------------------------------------

@pytest.mark.parametrize("grids, name", [
    (dict(n_grid=100), "n_grid"),
    (dict(n_grid=np.int64(100)), "n_grid"),
    (dict(n_grid=[10], dim_grid=4), "dim_grid"),
])
def test_a_number_for_a_grid_is_refused_naming_it(grids, name):
    with pytest.raises(MistgenError, match=rf"{name} must be a non-empty list.*\[.*\]"):
        make_design(["normal-dense"], **grids)


def test_destination_below_a_file_is_a_store_error(tmp_path):
    (tmp_path / "afile").write_text("user data")
    with pytest.raises(StoreError, match="afile exists and is not a folder"):
        mistgen.build_meta_dataset(tmp_path / "afile" / "x.zarr", ["normal-dense"], 2, **TINY)
    assert (tmp_path / "afile").read_text() == "user data"


@pytest.mark.parametrize("config, problem", [
    ({"a": object()}, "JSON"),
    ({"s": {1, 2}}, "JSON"),
    ([1, 2], "mapping"),
])
def test_a_config_json_cannot_hold_is_refused_before_any_folder(tmp_path, config, problem):
    path = tmp_path / "new" / "parent" / "s.zarr"
    with pytest.raises(MistgenError, match=f"config .*{problem}"):
        mistgen.build_meta_dataset(path, ["normal-dense"], 2, config=config, **TINY)
    assert list(tmp_path.iterdir()) == []
    ds = mistgen.build_meta_dataset(path, ["normal-dense"], 2, config={"n": [1, 2]}, **TINY)
    assert ds.config == {"n": [1, 2]}


# -- within-side priors -------------------------------------------------------------------

@pytest.mark.parametrize("spec, key, dims", [
    ("independent-normal", "within_x", dict(dim_range=(2, 8))),
    ("independent-student", "within_y", dict(dim_range=(2, 2), dim_y_range=(2, 8))),
])
def test_a_within_prior_the_dims_make_invalid_is_refused_at_the_plan(spec, key, dims):
    design = make_design([spec], 400, n_range=(10, 20), **dims)
    with pytest.raises(PriorError, match=rf"{spec}\.{key} \[-0.6, 0.9\].*dim_{key[-1]}="):
        make_plan(design, 0, "train", {spec: {key: [-0.6, 0.9]}}, 20)


def test_mixed_within_prior_is_checked_where_the_side_can_be_equicorrelated():
    design = make_design(["independent-mixed"], 4, n_range=(10, 20), dim_range=(2, 8))
    with pytest.raises(PriorError, match=r"independent-mixed\.within_x \[-0.6, 0.9\]"):
        make_plan(design, 0, "train", {"independent-mixed": {"within_x": [-0.6, 0.9]}}, 2)
    uniform_to_exponential = {"within_x": [-0.6, 0.9], "marginal_x": [3, 5]}
    plan = make_plan(design, 0, "train", {"independent-mixed": uniform_to_exponential}, 2)
    assert plan.datapoint(0).mi == 0.0


def test_an_invalid_within_parameter_names_family_and_parameter():
    with pytest.raises(PriorError, match="'independent-normal': within_x=-0.5 .*dim_x=8"):
        mistgen.sample("independent-normal", 10, 8, 2, 0,
                       params={"within_x": -0.5, "within_y": 0.1})
