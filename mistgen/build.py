"""``build_meta_dataset``: generate a split into a sharded Zarr store with Dask."""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Mapping, Sequence

from .design import Plan, make_design, make_plan
from .destination import check_destination, clean_stale_builds, finalize, partial_path
from .errors import MergedValuesWarning, MistgenError, warn_caller
from .merges import MERGED_SHARE
from .execution import check_workers, run_tasks
from .user_families import load_family_files, loaded_family_files
from .conditional_design import make_conditional_design, make_conditional_plan
from .store import (
    CONDITIONAL_FORMAT,
    DTYPES,
    FORMAT,
    create_skeleton,
    record_merged,
    write_shard,
)


def build_meta_dataset(
    path: str | os.PathLike,
    specs: Sequence[str],
    count: int | None = None,
    *,
    n_range: Sequence[int] = (10, 500),
    dim_range: Sequence[int] = (2, 32),
    dim_y_range: Sequence[int] | None = None,
    n_grid: Sequence[int] | None = None,
    dim_grid: Sequence[Any] | None = None,
    repeats: int | None = None,
    seed: int = 0,
    split: str = "train",
    shard_size: int = 1000,
    priors: Mapping[str, Mapping[str, Any]] | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool = True,
    config: Mapping[str, Any] | None = None,
):
    """Write a meta-dataset split to ``path`` and return it opened.

    Parameters
    ----------
    specs : family specs, e.g. ``["normal-dense-base", "student-sparse-asinh"]``.
    count : number of datapoints (random design); specs are used in turn.
    n_range, dim_range, dim_y_range : inclusive ranges for n and dims. dim_y equals
        dim_x unless ``dim_y_range`` is given.
    n_grid, dim_grid, repeats : a grid design instead (every spec x n [x dims] cell,
        ``repeats`` datapoints each); ``count`` is then derived.
    seed, split : datapoint i is a pure function of (seed, split, i).
    shard_size : datapoints per shard (the unit of parallel work and of streaming).
    priors : per-family prior overrides, ``{"normal-dense": {"off_diag": [0, 0.3]}}``.
    dtype : "float32" (default) or "float64" for the stored samples; labels are float64.
    overwrite : replace an existing store at ``path`` (only a mistgen store or an empty
        directory, checked again at the moment of replacement; a symbolic link is refused).
    workers, scheduler : local Dask worker processes, or a ``dask.distributed``
        scheduler address / Client to run on a cluster.
    config : recorded in the store's attributes (e.g. the study config it came from).

    The store is built beside ``path`` and renamed into place only when complete, so an
    interrupted build never leaves a store that opens; what a killed build left beside
    ``path`` is cleaned up or reported by the next build (see ``mistgen.destination``).
    """
    design = make_design(
        specs, count, n_range=n_range, dim_range=dim_range, dim_y_range=dim_y_range,
        n_grid=n_grid, dim_grid=dim_grid, repeats=repeats,
    )
    plan = make_plan(design, seed, split, priors, shard_size)
    return write_store(path, plan, store_attrs(plan, dtype, config), dtype=dtype,
                       overwrite=overwrite, workers=workers, scheduler=scheduler,
                       progress=progress, desc=f"build {plan.split}")


def build_conditional_dataset(
    path: str | os.PathLike,
    specs: Sequence[str],
    count: int | None = None,
    *,
    n_range: Sequence[int] = (50, 1000),
    dim_range: Sequence[int] = (1, 16),
    dim_y_range: Sequence[int] | None = None,
    dim_z_range: Sequence[int] | None = None,
    n_grid: Sequence[int] | None = None,
    dim_grid: Sequence[Any] | None = None,
    repeats: int | None = None,
    seed: int = 0,
    split: str = "train",
    shard_size: int = 1000,
    dtype: str = "float32",
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool = True,
    config: Mapping[str, Any] | None = None,
):
    """Write a split of (X, Y, Z) samples labelled with I(X;Y|Z) and I(X;Y) to ``path``
    and return it opened (a conditional ``MetaDataset``).

    ``specs`` are conditional specs (``mistgen.conditional``), optionally with a transform
    chain: ``["normal-chain", "student-factor-halfcube-spiral"]``. The design arguments
    are those of :func:`build_meta_dataset`, with three groups: each group's columns are
    drawn from ``dim_range`` unless ``dim_y_range`` / ``dim_z_range`` are given, and
    ``dim_grid`` entries are ints (every group) or ``[dim_x, dim_y, dim_z]`` triples. The
    store, its atomic build, determinism by address and its checks are those of
    :func:`build_meta_dataset`.
    """
    design = make_conditional_design(
        specs, count, n_range=n_range, dim_range=dim_range, dim_y_range=dim_y_range,
        dim_z_range=dim_z_range, n_grid=n_grid, dim_grid=dim_grid, repeats=repeats,
    )
    plan = make_conditional_plan(design, seed, split, shard_size)
    return write_store(path, plan, store_attrs(plan, dtype, config, CONDITIONAL_FORMAT),
                       dtype=dtype, overwrite=overwrite, workers=workers,
                       scheduler=scheduler, progress=progress, desc=f"build {plan.split}")


def store_attrs(plan: Plan, dtype: str, config: Mapping[str, Any] | None = None,
                store_format: str = FORMAT) -> dict:
    """The group attributes of a store built from ``plan`` (``complete`` until finalized);
    an unknown ``dtype`` is refused here."""
    from . import __version__

    if dtype not in DTYPES:
        raise MistgenError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return {
        "mistgen": {
            "format": store_format,
            "version": __version__,
            "split": plan.split,
            "seed": plan.seed,
            "count": plan.count,
            "shard_size": plan.shard_size,
            "num_shards": plan.num_shards,
            "specs": list(plan.design.specs),
            "design": plan.design.describe(),
            "priors": plan.priors,
            "dtype": dtype,
            "complete": False,
        },
        "config": checked_config(config),
    }


def checked_config(config: Mapping[str, Any] | None) -> dict:
    """``config`` as the dict a store records, refused unless it is a mapping that JSON can
    hold (the store's attributes are JSON)."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise MistgenError(f"config must be a mapping (a dict), got {type(config).__name__}: "
                           f"{config!r}")
    config = dict(config)
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise MistgenError(
            f"config cannot be recorded in the store's attributes, which are JSON: {exc}; "
            "pass only dicts with string keys, lists, strings, numbers, booleans and None"
        ) from None
    return config


def _check_attrs(attrs: Mapping[str, Any]) -> None:
    """Refuse store attributes that JSON cannot hold, before anything is written."""
    try:
        json.dumps(dict(attrs))
    except (TypeError, ValueError) as exc:
        raise MistgenError(f"the store's attributes must be JSON-serialisable: {exc}") from None


def _with_family_files(files: tuple[str, ...], task, k: int):
    """``task(k)`` once this process has loaded the user's family files: Dask's worker
    processes start without the ones the caller loaded."""
    load_family_files(files)
    return task(k)


def write_store(path, plan, attrs, *, dtype="float32", overwrite=False, workers=None,
                scheduler=None, progress=True, desc="shards"):
    """Write every shard of ``plan`` into a new store at ``path``, atomically.

    ``plan`` is anything with ``count``, ``shard_size``, ``num_shards``,
    ``shard_bounds(k)`` and ``datapoint(i) -> Sample`` (see ``mistgen.design.Plan``);
    it must be picklable when shards run on Dask workers. ``attrs`` are the group
    attributes; ``attrs["mistgen"]`` must hold at least ``format``, ``count``,
    ``shard_size``, ``num_shards``, ``split`` and ``specs``.
    """
    from .dataset import MetaDataset

    path = Path(path)
    check_workers(plan.num_shards, workers, scheduler)
    _check_attrs(attrs)
    check_destination(path, overwrite)
    clean_stale_builds(path)
    tmp = partial_path(path)
    try:
        create_skeleton(tmp, plan, attrs)
        task = partial(write_shard, str(tmp), plan=plan, dtype=dtype)
        files = loaded_family_files()
        if files:
            task = partial(_with_family_files, tuple(files), task)
        written = run_tasks(
            task, range(plan.num_shards), workers=workers, scheduler=scheduler, progress=progress,
            desc=desc,
        )
        merged: dict[str, Counter] = {}
        for _, found in written:
            for spec, cause in found:
                merged.setdefault(cause, Counter())[spec] += 1
        if merged:
            record_merged(tmp, merged)
        finalize(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for cause, by_spec in sorted(merged.items()):
        _warn_merged(path, dtype, cause, by_spec)
    return MetaDataset(path)


def _warn_merged(path: Path, dtype: str, cause: str, by_spec: Mapping[str, int]) -> None:
    """A :class:`MergedValuesWarning` naming the specs whose values ``cause`` merged."""
    listed = ", ".join(f"{spec} ({count})" for spec, count in sorted(by_spec.items()))
    how = (f"storing the sample as {dtype}" if cause == "dtype"
           else "the spec's transforms, in float64 already (normal_cdf rounds tails beyond "
                "about 8.3 to 1.0),")
    remedy = ("dtype='float64' keeps them apart" if cause == "dtype"
              else "a transform that keeps heavy tails apart (asinh, or none) or a lighter-"
                   "tailed family keeps them apart")
    warn_caller(
        f"{path}: in {sum(by_spec.values())} datapoint(s), {how} merged distinct values in "
        f"more than {MERGED_SHARE:.0%} of a column's rows, so the stored rows no longer "
        f"have the MI of their labels: {listed}. {remedy}; the counts are in the store's "
        f"attributes (mistgen.merged_by_{cause}).", MergedValuesWarning)
