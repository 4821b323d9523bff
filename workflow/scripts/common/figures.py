"""Figures of a benchmark run (PNG, matplotlib's Agg backend)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from .outputs import atomic_output  # noqa: E402


def _finite_mean(values: np.ndarray) -> float:
    """The mean of the finite values (the summary's errors leave failed estimates out)."""
    ok = values[np.isfinite(values)]
    return float(ok.mean()) if ok.size else float("nan")


def _splits(ds):
    return [str(s) for s in np.unique(ds.split.values)]


def _save(fig, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_output(path) as out:
        fig.savefig(out, dpi=110)
    plt.close(fig)


def error_vs(ds: xr.Dataset, coord: str, path, label: str) -> None:
    """MSE against ``coord`` (n, or max(dim_x, dim_y)), one panel per split, a line per estimator."""
    splits = _splits(ds)
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4), squeeze=False)
    err2 = (ds.estimate - ds.true_mi) ** 2
    key = ds[coord] if coord in ds.coords else np.maximum(ds.dim_x, ds.dim_y)
    for ax, split in zip(axes[0], splits):
        mask = (ds.split == split).values
        values = np.asarray(key.values)[mask]
        for est in ds.estimator.values:
            e = err2.sel(estimator=est).values[mask]
            xs = np.unique(values)
            ys = [_finite_mean(e[values == v]) for v in xs]
            ax.plot(xs, ys, marker="o", ms=3, label=str(est))
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("mean squared error (nats$^2$)")
        ax.set_title(split)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    _save(fig, path)


def predicted_vs_true(ds: xr.Dataset, path) -> None:
    ests = list(ds.estimator.values)
    cols = min(3, len(ests))
    rows = -(-len(ests) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4 * rows), squeeze=False)
    top = float(np.nanmax(ds.true_mi.values)) * 1.05 + 0.1
    estimates = ds.estimate.values[np.isfinite(ds.estimate.values)]
    high = max(top, float(estimates.max()) * 1.05 + 0.1) if estimates.size else top
    for ax, est in zip(axes.flat, ests):
        for split in _splits(ds):
            mask = (ds.split == split).values
            ax.scatter(ds.true_mi.values[mask], ds.estimate.sel(estimator=est).values[mask],
                       s=6, alpha=0.5, label=split)
        ax.plot([0, top], [0, top], color="k", lw=0.8)
        ax.set_xlim(0, top)
        ax.set_ylim(min(0, float(np.nanmin(ds.estimate.values))), high)  # every estimate
        ax.set_title(str(est))
        ax.set_xlabel("true MI (nats)")
        ax.set_ylabel("estimate (nats)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(ests):]:
        ax.axis("off")
    _save(fig, path)


def coverage(summary: xr.Dataset, path, level: float) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    ests = [str(e) for e in summary.estimator.values]
    splits = [str(s) for s in summary.split.values]
    width = 0.8 / max(1, len(splits))
    for j, split in enumerate(splits):
        vals = np.array([summary.coverage.sel(estimator=e, split=split).item() for e in ests])
        at = np.arange(len(ests)) + j * width
        ax.bar(at, np.nan_to_num(vals, nan=0.0), width, label=split)
        for x in at[np.isnan(vals)]:           # no interval: no bar, and say so
            ax.text(x, 0.02, "no interval", rotation=90, ha="center", va="bottom", fontsize=7)
    ax.axhline(level, color="k", ls="--", lw=1, label=f"nominal {level:.2f}")
    ax.set_xticks(np.arange(len(ests)) + width * (len(splits) - 1) / 2, ests, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of intervals covering the true MI\n(datapoints with an interval)")
    ax.legend(fontsize=8)
    _save(fig, path)


def timing(summary: xr.Dataset, path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    ests = [str(e) for e in summary.estimator.values]
    ax.bar(ests, summary.seconds_median.values)
    ax.set_yscale("log")
    ax.set_ylabel("median seconds per estimate")
    ax.tick_params(axis="x", rotation=20)
    _save(fig, path)


def draw_all(ds: xr.Dataset, summary: xr.Dataset, outdir) -> dict[str, Path]:
    outdir = Path(outdir)
    paths = {name: outdir / f"{name}.png" for name in
             ("error_vs_n", "error_vs_dim", "predicted_vs_true", "coverage", "timing")}
    error_vs(ds, "n", paths["error_vs_n"], "sample size n")
    error_vs(ds, "dim", paths["error_vs_dim"], "max(dim_x, dim_y)")
    predicted_vs_true(ds, paths["predicted_vs_true"])
    coverage(summary, paths["coverage"], float(ds.attrs.get("level", 0.9)))
    timing(summary, paths["timing"])
    return paths
