"""Summaries of a benchmark run: error by n-bin, dim and family; coverage; time."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

N_BINS = (10, 100, 300, 501)  # [10, 100), [100, 300), [300, 500]: the paper's, widened
                              # to hold every n of a run (covering_edges)
DIM_BINS = (1, 2, 5, 9, 17, 33, 65, 1_000_000)


def bin_labels(edges: Sequence[int], last_inclusive: bool = True) -> list[str]:
    labels = [f"[{a},{b})" for a, b in zip(edges[:-1], edges[1:])]
    if last_inclusive:
        labels[-1] = f"[{edges[-2]},{edges[-1] - 1}]"
    return labels


def covering_edges(edges: Sequence[int], values: Sequence[int]) -> list[int]:
    """``edges`` with a bin added below and above where ``values`` fall outside them, so
    that no value is left out of a table by bin (n = 5 or 2,000 beside the paper's bins)."""
    edges = [int(e) for e in edges]
    values = np.asarray(values)
    if values.size and values.min() < edges[0]:
        edges.insert(0, int(values.min()))
    if values.size and values.max() >= edges[-1]:
        edges.append(int(values.max()) + 1)
    return edges


def _frame(ds: xr.Dataset) -> pd.DataFrame:
    df = ds[["estimate", "lower", "upper", "seconds"]].to_dataframe().reset_index()
    df["error"] = df["estimate"] - df["true_mi"]
    df["covered"] = np.where(df["lower"].notna() & df["upper"].notna(),
                             (df["lower"] <= df["true_mi"]) & (df["true_mi"] <= df["upper"]),
                             np.nan)
    df["width"] = df["upper"] - df["lower"]
    return df


def _errors(group) -> pd.Series:
    """Over the datapoints with a finite estimate (``count``); ``failed`` counts the others,
    so that an estimator that fails on its hardest datapoints does not look better."""
    e = group["error"].to_numpy(dtype=np.float64)
    ok = e[np.isfinite(e)]
    empty = ok.size == 0
    return pd.Series({"mse": np.nan if empty else float(np.mean(ok**2)),
                      "bias": np.nan if empty else float(ok.mean()),
                      "variance": np.nan if empty else float(ok.var()),
                      "count": int(ok.size), "failed": int(e.size - ok.size)})


def _table(df: pd.DataFrame, keys: list[str], fn) -> xr.Dataset:
    table = df.groupby(keys, observed=True).apply(fn, include_groups=False).to_xarray()
    for key in keys:  # plain strings, so the table can be written to netCDF
        table[key] = table[key].astype(str)
    return table


def summarize(ds: xr.Dataset, n_bins: Sequence[int] = N_BINS,
              dim_bins: Sequence[int] = DIM_BINS) -> xr.Dataset:
    """MSE / bias / variance by (split, n-bin), (split, dim-bin) and family; coverage; time.

    The dim of a datapoint is ``max(dim_x, dim_y)``. Errors are estimate - true MI.
    """
    df = _frame(ds)
    n_bins = covering_edges(n_bins, df["n"])
    df["n_bin"] = pd.cut(df["n"], n_bins, right=False, labels=bin_labels(n_bins))
    df["dim"] = np.maximum(df["dim_x"], df["dim_y"])
    df["dim_bin"] = pd.cut(df["dim"], list(dim_bins), right=False,
                           labels=bin_labels(dim_bins, last_inclusive=False))
    by_n = _table(df, ["estimator", "split", "n_bin"], _errors)
    by_dim = _table(df, ["estimator", "split", "dim_bin"], _errors)
    by_family = _table(df, ["estimator", "split", "family"], _errors)
    overall = _table(df, ["estimator", "split"], _errors)

    def coverage(g):
        c = g["covered"].dropna()
        return pd.Series({"coverage": float(c.mean()) if len(c) else np.nan,
                          "mean_width": float(g["width"].mean()) if len(c) else np.nan,
                          "interval_count": int(len(c))})

    cov = _table(df, ["estimator", "split"], coverage)

    def timing(g):
        return pd.Series({"seconds_median": float(g["seconds"].median()),
                          "seconds_mean": float(g["seconds"].mean())})

    time = _table(df, ["estimator"], timing)
    out = xr.Dataset()
    for prefix, table in (("by_n", by_n), ("by_dim", by_dim), ("by_family", by_family),
                          ("overall", overall)):
        for var in table.data_vars:
            out[f"{prefix}_{var}"] = table[var]
    for table in (cov, time):
        for var in table.data_vars:
            out[var] = table[var]
    if "n_boot" in ds:
        out["n_boot"] = ds["n_boot"]
    out.attrs.update(ds.attrs)
    out.attrs["n_bins"] = list(n_bins)
    return out


def headline_markdown(summary: xr.Dataset, title: str = "Headline results") -> str:
    """A markdown table: MSE by n-bin per split and estimator, coverage, time per estimate."""
    level = summary.attrs.get("level")
    lines = [f"# {title}", ""]
    if level is not None:
        lines += [f"Intervals at level {float(level):g}; coverage over the datapoints with an "
                  "interval (their count beside it).", ""]
    bins = [str(b) for b in summary.n_bin.values]
    failed = "overall_failed" in summary
    for split in summary.split.values:
        lines += [f"## {split}", "",
                  "| estimator | " + " | ".join(f"MSE n {b}" for b in bins)
                  + " | MSE all | bias all | coverage (intervals) | s / estimate |"
                  + (" failed |" if failed else ""),
                  "|---" * (len(bins) + 5 + failed) + "|"]
        for est in summary.estimator.values:
            at = dict(estimator=est, split=split)
            mse = [summary.by_n_mse.sel(**at, n_bin=b).item() for b in bins]
            cells = [f"{v:.3f}" if np.isfinite(v) else "-" for v in mse]
            overall = summary.overall_mse.sel(**at).item()
            bias = summary.overall_bias.sel(**at).item()
            cov = summary.coverage.sel(**at).item()
            count = (int(summary.interval_count.sel(**at).item())
                     if "interval_count" in summary else None)
            sec = summary.seconds_median.sel(estimator=est).item()
            shown = "-" if not np.isfinite(cov) else (
                f"{cov:.2f}" + (f" ({count})" if count is not None else ""))
            lines.append(f"| {est} | " + " | ".join(cells) + f" | {overall:.3f} | {bias:+.3f} | "
                         + shown + f" | {sec:.4f} |"
                         + (f" {int(summary.overall_failed.sel(**at).item())} |"
                            if failed else ""))
        lines.append("")
    return "\n".join(lines)


def headline_document(summaries: Mapping[str, xr.Dataset]) -> str:
    """The headline tables of every run (run name -> its summary) as one markdown page."""
    parts = ["# Results", "",
             "Written by the study's rule `headline` from each run's `summary.nc`. MSE in "
             "nats^2 by sample-size bin, over the datapoints with a finite estimate (failed: "
             "the others); coverage of the intervals at the run's level, over the datapoints "
             "with an interval; median seconds per point estimate.", ""]
    for run, summary in summaries.items():
        parts.append(headline_markdown(summary, title=f"Run `{run}`").replace("# ", "## ", 1)
                     .replace("\n## ", "\n### "))
    return "\n".join(parts) + "\n"
