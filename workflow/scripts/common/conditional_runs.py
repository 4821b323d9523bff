"""Conditional runs: estimators of I(X;Y|Z) over conditional stores, as xarray.

A run's parts (one estimator on one store) are ``xarray.Dataset`` s over ``(estimator,
datapoint)`` with the variables ``estimate`` and ``seconds`` and the coordinates ``split``,
``family`` (the conditional spec), ``n``, ``dim_x``, ``dim_y``, ``dim_z``, ``true_cmi``,
``true_mi`` and ``seed``; they are merged like the I(X;Y) runs'
(:func:`common.benchmark.combine_estimates`). The summary gives the mean absolute error,
bias and count by (estimator, n-bin, columns-bin) and by (estimator, family); the figure
draws the mean absolute error against n, one panel per columns-bin, and
:func:`conditional_markdown` gives the tables the headline page shows. Warnings are
reported once per kind and store (:func:`common.warning_report.warnings_reported`; a
batched call's warning counts for every sample it read).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

import mistgen

from .outputs import atomic_output
from .summary import bin_labels
from .warning_report import warnings_reported

N_EDGES = (2, 100, 300, 1000, 3000, 1_000_000_000)
#: Bins of the total number of columns, dim_x + dim_y + dim_z (d = 1, 4, 8, 16 per group
#: fall in the first, second, third and fourth).
COLUMN_EDGES = (3, 6, 13, 25, 49, 1_000_000)


def benchmark_conditional_store(name: str, estimator, split: str, path: str | Path, *,
                                progress: bool = True) -> xr.Dataset:
    """I(X;Y|Z) estimates of every datapoint of one conditional store. ``seconds`` is the
    time of each datapoint's estimate; an estimator with ``estimate_conditional_batch``
    (MIST) gets the datapoints of a shard that share (n, dim_x, dim_y, dim_z) in one call,
    and each of them that call's time divided by their number."""
    ds = mistgen.open_meta_dataset(path)
    if not ds.conditional:
        raise ValueError(f"{path} holds (X, Y) samples; a conditional run reads conditional "
                         "stores (conditional_splits)")
    batched = callable(getattr(estimator, "estimate_conditional_batch", None))
    rows: dict[str, list] = {k: [] for k in (
        "datapoint", "family", "n", "dim_x", "dim_y", "dim_z", "true_cmi", "true_mi", "seed",
        "estimate", "seconds")}
    with tqdm(total=len(ds), desc=name, unit="sample", disable=not progress) as bar, \
            warnings_reported(f"{name}, {split}", len(ds)) as each_call:
        for k, shard in enumerate(ds.iter_shards()):
            values, seconds = [0.0] * len(shard), [0.0] * len(shard)
            groups: dict[tuple, list[int]] = {}
            for j, s in enumerate(shard):
                groups.setdefault((s.n, s.dim_x, s.dim_y, s.dim_z) if batched else (j,),
                                  []).append(j)
            for members in groups.values():
                with each_call(len(members)):
                    start = time.perf_counter()
                    if batched:
                        out = estimator.estimate_conditional_batch([shard[j] for j in members])
                    else:
                        s = shard[members[0]]
                        out = [estimator.estimate_conditional(s.x, s.y, s.z)]
                    each = (time.perf_counter() - start) / len(members)
                for j, value in zip(members, out):
                    values[j], seconds[j] = float(value), each
            first = ds.shard_bounds(k)[0]
            for i, (s, value, sec) in enumerate(zip(shard, values, seconds), start=first):
                for key, v in (("datapoint", f"{split}/{i}"), ("family", s.spec), ("n", s.n),
                               ("dim_x", s.dim_x), ("dim_y", s.dim_y), ("dim_z", s.dim_z),
                               ("true_cmi", s.cmi), ("true_mi", s.mi), ("seed", s.seed),
                               ("estimate", value), ("seconds", sec)):
                    rows[key].append(v)
            bar.update(len(shard))
    coords = {k: ("datapoint", np.asarray(rows[k], dtype=object if k == "family" else None))
              for k in ("family", "n", "dim_x", "dim_y", "dim_z", "true_cmi", "true_mi", "seed")}
    coords["split"] = ("datapoint", np.asarray([split] * len(rows["n"]), dtype=object))
    coords["datapoint"] = np.asarray(rows["datapoint"], dtype=object)
    coords["estimator"] = np.asarray([name], dtype=object)
    out = xr.Dataset({k: (("estimator", "datapoint"), np.asarray(rows[k], dtype=np.float64)[None])
                      for k in ("estimate", "seconds")}, coords=coords)
    settings = estimator.settings() if hasattr(estimator, "settings") else {}
    out["settings"] = ("estimator", np.asarray([json.dumps(settings, sort_keys=True,
                                                           default=str)], dtype=object))
    return out


def _frame(ds: xr.Dataset) -> pd.DataFrame:
    df = ds[["estimate", "seconds"]].to_dataframe().reset_index()
    df["abs_error"] = (df["estimate"] - df["true_cmi"]).abs()
    df["error"] = df["estimate"] - df["true_cmi"]
    columns = df["dim_x"] + df["dim_y"] + df["dim_z"]
    df["n_bin"] = pd.cut(df["n"], N_EDGES, right=False, labels=bin_labels(N_EDGES, False))
    df["columns_bin"] = pd.cut(columns, COLUMN_EDGES, right=False,
                               labels=bin_labels(COLUMN_EDGES, False))
    return df


def _stats(group: pd.DataFrame) -> pd.Series:
    """Over the datapoints with a finite estimate (``count``); ``failed`` counts the
    others."""
    ok = group[np.isfinite(group["error"].to_numpy(dtype=np.float64))]
    return pd.Series({"mae": float(ok["abs_error"].mean()) if len(ok) else np.nan,
                      "bias": float(ok["error"].mean()) if len(ok) else np.nan,
                      "seconds": float(group["seconds"].median()), "count": int(len(ok)),
                      "failed": int(len(group) - len(ok))})


def _table(df: pd.DataFrame, keys: list[str]) -> xr.Dataset:
    table = df.groupby(keys, observed=True).apply(_stats, include_groups=False).to_xarray()
    for key in keys:
        table[key] = table[key].astype(str)
    # counts: integers where the cell has datapoints, 0 where the grid has none
    for key in ("count", "failed"):
        table[key] = table[key].fillna(0).astype(np.int64)
    return table


def conditional_summary(ds: xr.Dataset) -> xr.Dataset:
    """Mean absolute error, bias, median seconds per estimate and count by (estimator,
    n-bin, columns-bin) (variables ``*_by_n``) and by (estimator, family)
    (``*_by_family``)."""
    df = _frame(ds)
    by_n = _table(df, ["estimator", "n_bin", "columns_bin"])
    by_family = _table(df, ["estimator", "family"])
    out = xr.merge([by_n.rename({k: f"{k}_by_n" for k in by_n.data_vars}),
                    by_family.rename({k: f"{k}_by_family" for k in by_family.data_vars})])
    out.attrs["target"] = "I(X;Y|Z) in nats"
    return out


def plot_conditional(summary: xr.Dataset, path: str | Path) -> None:
    """Mean absolute error against the n-bin, one panel per columns-bin."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [c for c in summary.columns_bin.values
              if np.isfinite(summary.mae_by_n.sel(columns_bin=c)).any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), sharey=True,
                             squeeze=False)
    bins = list(summary.n_bin.values)
    for ax, c in zip(axes[0], panels):
        for est in summary.estimator.values:
            values = summary.mae_by_n.sel(estimator=est, columns_bin=c).values
            keep = np.isfinite(values)
            ax.plot(np.arange(len(bins))[keep], values[keep], marker="o", label=str(est))
        ax.set_xticks(range(len(bins)), bins, rotation=30, fontsize=7)
        ax.set_yscale("log")
        ax.set_title(f"dx + dy + dz in {c}", fontsize=9)
        ax.set_xlabel("n")
    axes[0][0].set_ylabel("mean |error| of I(X;Y|Z) (nats)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_output(path) as out:
        fig.savefig(out, dpi=120)
    plt.close(fig)


def conditional_markdown(summary: xr.Dataset, title: str = "Conditional run") -> str:
    """Markdown: the mean absolute error of I(X;Y|Z) by n-bin (columns), one table per
    columns-bin with a row per estimator."""
    lines = [f"## {title}", "",
             "Mean absolute error of I(X;Y|Z) (nats) by sample-size bin; dx + dy + dz "
             "columns in the bin given.", ""]
    bins = [str(b) for b in summary.n_bin.values]
    for c in summary.columns_bin.values:
        table = summary.mae_by_n.sel(columns_bin=c)
        if not np.isfinite(table).any():
            continue
        lines += [f"### dx + dy + dz in {c}", "",
                  "| estimator | " + " | ".join(f"n {b}" for b in bins) + " |",
                  "|---|" + "---|" * len(bins)]
        for est in summary.estimator.values:
            row = table.sel(estimator=est).values
            lines.append(f"| {est} | " + " | ".join(
                f"{v:.3f}" if np.isfinite(v) else "-" for v in row) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
