"""Run one estimator over test stores into an ``xarray.Dataset`` (estimator x datapoint).

Variables: ``estimate``, ``lower``, ``upper`` (NaN without an interval), ``seconds`` (one
point estimate) and ``interval_seconds``; coordinates ``split``, ``family`` (the
datapoint's spec, also in a store of several families), ``n``, ``dim_x``, ``dim_y``,
``true_mi``, ``seed`` and a string ``datapoint`` id ``"<split>/<store>/<i>"`` that aligns
results of different estimators.  A bootstrap
interval that the sample cannot support (too few rows) is recorded as NaN (no interval),
as for an estimator without one; coverage is computed over the intervals given.
Warnings are gathered per store and printed once per kind
(:func:`common.warning_report.warnings_reported`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

import mistgen
from mistmodel.estimators.base import BootstrapError

from .warning_report import warnings_reported


TEXT = ("datapoint", "split", "family", "estimator")  # object dtype: no fixed-width truncation
REFUSED = (float("nan"), float("nan"))


def _as_text(ds: xr.Dataset) -> xr.Dataset:
    """Strings as Python objects, so concatenating labels of different lengths keeps them whole."""
    return ds.assign_coords({k: ds[k].astype(object) for k in TEXT if k in ds.coords})


def _interval(est, x, y, level: float | None, n_boot: int, seed: int
              ) -> tuple[float, float]:
    """The estimator's own interval (MIST-QR's quantiles), else a bootstrap one; none
    without a ``level``."""
    if level is None:
        return float("nan"), float("nan")
    if getattr(est, "is_quantile", False):
        return est.interval(x, y, level=level)
    if n_boot <= 0:
        return float("nan"), float("nan")
    try:
        return est.interval(x, y, level=level, n_boot=n_boot, seed=seed)
    except BootstrapError:
        return REFUSED


def benchmark_stores(
    name: str,
    estimator,
    stores: Sequence[tuple[str, str, str | Path]],
    *,
    level: float | None = 0.9,
    n_boot: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> xr.Dataset:
    """Estimate every datapoint of ``stores``: a list of (split, store name, path);
    intervals at ``level`` (None: none)."""
    rows: dict[str, list[Any]] = {k: [] for k in (
        "datapoint", "split", "family", "n", "dim_x", "dim_y", "true_mi", "seed",
        "estimate", "lower", "upper", "seconds", "interval_seconds")}
    opened = [(split, store, mistgen.open_meta_dataset(path)) for split, store, path in stores]
    total = sum(len(ds) for _, _, ds in opened)
    with tqdm(total=total, desc=f"{name}", unit="sample", disable=not progress) as bar:
        for split, store, ds in opened:
            with warnings_reported(f"{name}, {split}/{store}", len(ds)) as each_sample:
                for i, s in enumerate(ds):
                    with each_sample():
                        start = time.perf_counter()
                        value = float(estimator.estimate(s.x, s.y))
                        mid = time.perf_counter()
                        lo, hi = _interval(estimator, s.x, s.y, level, n_boot, seed + i)
                        end = time.perf_counter()
                    for key, v in (("datapoint", f"{split}/{store}/{i}"), ("split", split),
                                   ("family", str(s.spec)), ("n", s.n), ("dim_x", s.dim_x),
                                   ("dim_y", s.dim_y), ("true_mi", s.mi), ("seed", s.seed),
                                   ("estimate", value), ("lower", lo), ("upper", hi),
                                   ("seconds", mid - start), ("interval_seconds", end - mid)):
                        rows[key].append(v)
                    bar.update()
    coords = {k: ("datapoint", np.asarray(rows[k], dtype=object if k in TEXT else None))
              for k in ("split", "family", "n", "dim_x", "dim_y", "true_mi", "seed")}
    coords["datapoint"] = np.asarray(rows["datapoint"], dtype=object)
    coords["estimator"] = np.asarray([name], dtype=object)
    data = {k: (("estimator", "datapoint"), np.asarray(rows[k], dtype=np.float64)[None])
            for k in ("estimate", "lower", "upper", "seconds", "interval_seconds")}
    ds = xr.Dataset(data, coords=coords)
    settings = estimator.settings() if hasattr(estimator, "settings") else {}
    ds["settings"] = ("estimator", np.asarray([json.dumps(settings, sort_keys=True, default=str)],
                                              dtype=object))
    # each estimator's own bootstrap size (0: none, or an interval of its own)
    ds["n_boot"] = ("estimator", np.asarray([n_boot], dtype=np.int64))
    ds.attrs.update({} if level is None else {"level": level})
    return ds


def _with_n_boot(part: xr.Dataset) -> xr.Dataset:
    """A part with its estimator's ``n_boot`` as a variable (parts written before it was
    one held it as an attribute)."""
    if "n_boot" in part or "n_boot" not in part.attrs:
        return part
    part = part.assign(n_boot=("estimator", np.asarray([part.attrs["n_boot"]], np.int64)))
    part.attrs = {k: v for k, v in part.attrs.items() if k != "n_boot"}
    return part


#: What each datapoint's record says of it, the same in every estimator's part.
DATAPOINT_FIELDS = ("split", "family", "n", "dim_x", "dim_y", "true_mi", "seed")


def _check_same_datapoints(first: xr.Dataset, other: xr.Dataset) -> None:
    """Refuse parts that hold the same datapoint ids with other records (other stores, or
    stores rebuilt since): their errors would be taken against the first part's truth."""
    for field in DATAPOINT_FIELDS:
        a, b = first[field].values, other[field].values
        differ = np.flatnonzero(a != b)
        if differ.size:
            i = int(differ[0])
            raise ValueError(
                f"estimators {str(first.estimator.values[0])!r} and "
                f"{str(other.estimator.values[0])!r} hold datapoint "
                f"{str(first.datapoint.values[i])!r} with other {field} ({a[i]!r} and "
                f"{b[i]!r}; {differ.size} datapoints differ): their parts come from "
                "different stores; rerun them on the same ones")


def combine_estimates(parts: Sequence[xr.Dataset]) -> xr.Dataset:
    """Merge per-(estimator, store) results into one Dataset, datapoints aligned by id."""
    by_estimator: dict[str, list[xr.Dataset]] = {}
    for part in map(_with_n_boot, map(_as_text, parts)):
        by_estimator.setdefault(str(part.estimator.values[0]), []).append(part)
    merged = []
    for name, estimator_parts in by_estimator.items():
        # what each estimator has once: its settings and bootstrap size
        once = [v for v in ("settings", "n_boot") if v in estimator_parts[0]]
        for var in once:
            if len({str(p[var].values[0]) for p in estimator_parts}) > 1:
                raise ValueError(f"estimator {name!r}: its parts were run with other {var}")
        kept = {var: estimator_parts[0][var] for var in once}
        data = [p.drop_vars(once) for p in estimator_parts]
        m = xr.concat(data, dim="datapoint", data_vars="all", coords="different",
                      compat="equals", join="outer") if len(data) > 1 else data[0]
        for var, value in kept.items():
            m[var] = value
        merged.append(m)
    order = sorted(set(merged[0].datapoint.values))
    for m in merged[1:]:
        if set(m.datapoint.values) != set(order):
            raise ValueError(
                f"estimator {str(m.estimator.values[0])!r} covers different datapoints than "
                f"{str(merged[0].estimator.values[0])!r}"
            )
    merged = [m.sel(datapoint=order) for m in merged]
    for m in merged[1:]:
        _check_same_datapoints(merged[0], m)
    out = xr.concat(merged, dim="estimator", data_vars="all", coords="minimal",
                    compat="override", join="outer")
    out.attrs.update(merged[0].attrs)
    levels = {m.attrs["level"] for m in merged if "level" in m.attrs}
    if len(levels) > 1:
        raise ValueError(f"the parts' intervals are at different levels: {sorted(levels)}")
    out.attrs.pop("level", None)
    out.attrs.update({"level": levels.pop()} if levels else {})
    return out
