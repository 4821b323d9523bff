"""Split-conformal calibration of MIST-QR intervals.

MIST-QR's central interval at level ``L`` is ``[q_lo, q_hi]``, its quantiles at
``(1 - L) / 2`` and ``(1 + L) / 2``.  Trained quantiles are only approximately calibrated,
so the shipped checkpoint also carries, for a few levels, a widening factor fitted on a
calibration store - samples of the training families drawn under a seed and split used
nowhere else, with known MI - by conformalised quantile regression (Romano, Patterson &
Candes, 2019) with a width-scaled score:

* score of a calibration datapoint: ``s_i = max(q_lo - I, I - q_hi) / max(q_hi - q_lo, w_min)``
  (negative inside the interval, positive outside, in units of the interval's width);
* factor at level ``L`` over ``m`` datapoints: ``s* = `` the ``ceil((m + 1) L)``-th smallest
  score;
* calibrated interval: ``[q_lo - s* w, q_hi + s* w]`` with ``w = max(q_hi - q_lo, w_min)``,
  lower end clipped at 0 (MI is non-negative).

On samples exchangeable with the calibration set this covers the true MI with probability
at least ``L``; ``s* < 0`` narrows intervals that were too wide.  Nothing is promised for
samples unlike the calibration families (out of distribution), and levels without a
fitted factor use the raw quantiles.

A pooled factor can leave some sample sizes under-covered and others over-covered (raw
quantiles tend to be too narrow at small ``n``), so the factors are also fitted per bin of
``n`` (Mondrian conformal prediction, cut points :data:`N_CUTS`): within a bin the same
guarantee holds for samples exchangeable with that bin's calibration datapoints.

A Mondrian taxonomy may use anything computed from the sample, the network's own answer
included, so each n-bin is split again by the raw median (cut points :data:`MI_CUTS`).
This matters at independence: there the true MI is exactly 0 while the raw lower end is a
little above it (1e-4 to 1e-2 nats), so such a sample scores just outside its interval; in
an n-bin where most samples are dependent and their intervals too wide, the factor is
negative and narrows those near-zero intervals further away from 0.  With their own cell,
samples whose median says "little or no dependence" get the factor that covers *them*.
A cell's factor is never below its n-bin's: cells widen where their samples need it and
otherwise leave the n-bin's intervals as they are (narrowing the dependent cells too cost
coverage out of distribution).  A cell (or bin) with too few datapoints for a level falls
back to its n-bin's factor, then to the pooled one.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .estimators.base import _check_level, as_pair

__all__ = ["MIN_WIDTH", "LEVELS", "N_CUTS", "conformal_factor", "enough_points",
           "MI_CUTS", "calibration_problem", "cell_bins", "fit_interval_calibration",
           "level_key", "n_bins",
           "sample_factors", "sample_rows", "widen"]

MIN_WIDTH = 1e-3          # nats: floor of the width that scales the score
LEVELS = (0.5, 0.8, 0.9, 0.95)
N_CUTS = (20, 50, 100, 300)   # rows: bins n < 20, [20, 50), [50, 100), [100, 300), >= 300
MI_CUTS = (0.05, 0.3)          # nats of the raw median: cells < 0.05, [0.05, 0.3), >= 0.3
LOWEST_FACTOR = -0.5           # the smallest score: the truth at the interval's middle


def _width(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return np.maximum(upper - lower, MIN_WIDTH)


def conformal_factor(lower: np.ndarray, upper: np.ndarray, truth: np.ndarray,
                     level: float) -> float:
    """The split-conformal factor ``s*`` at ``level`` from raw intervals and true values."""
    _check_level(level)
    lower, upper, truth = (np.asarray(a, dtype=np.float64) for a in (lower, upper, truth))
    if not (lower.shape == upper.shape == truth.shape) or lower.ndim != 1:
        raise ValueError("lower, upper and truth must be 1-D arrays of the same length")
    for name, a in (("lower", lower), ("upper", upper), ("truth", truth)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} holds {int(np.count_nonzero(~np.isfinite(a)))} NaN or "
                             "infinite values; a factor needs finite intervals and truths")
    m = lower.size
    if not enough_points(m, level):
        raise ValueError(f"{m} calibration datapoints are too few for level {level}: "
                         f"need at least {math.ceil(level / (1 - level))}")
    scores = np.maximum(lower - truth, truth - upper) / _width(lower, upper)
    return float(np.sort(scores)[_rank(m, level) - 1])


def _rank(m: int, level: float) -> int:
    return math.ceil((m + 1) * level)


def enough_points(m: int, level: float) -> bool:
    """Whether ``m`` calibration datapoints can give a factor at ``level``."""
    return _rank(m, level) <= m


def widen(lower: np.ndarray, upper: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Apply a factor to raw intervals: ``[lo - s w, hi + s w]``, lower end >= 0."""
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    w = _width(lower, upper)
    new_lower = np.maximum(lower - factor * w, 0.0)
    new_upper = np.maximum(upper + factor * w, new_lower)
    return new_lower, new_upper


def sample_rows(samples: list) -> list[int]:
    """Rows ``n`` of each sample (``(x, y)`` pairs or objects with ``.x`` and ``.y``)."""
    return [np.shape(as_pair(s)[0])[0] for s in samples]


def n_bins(n: Any, cuts: Any = N_CUTS) -> np.ndarray:
    """Bin index of each sample size: 0 below ``cuts[0]``, ..., ``len(cuts)`` from ``cuts[-1]``."""
    return np.searchsorted(np.asarray(cuts), np.asarray(n), side="right")


def cell_bins(median: Any, cuts: Any = MI_CUTS) -> np.ndarray:
    """Median-cell index of each raw median: 0 below ``cuts[0]``, ... (like :func:`n_bins`)."""
    return np.searchsorted(np.asarray(cuts), np.asarray(median), side="right")


def _factor_or_none(lower: np.ndarray, upper: np.ndarray, truth: np.ndarray, level: float,
                    sel: np.ndarray) -> float | None:
    if not enough_points(int(sel.sum()), level):
        return None
    return conformal_factor(lower[sel], upper[sel], truth[sel], level)


def _at_least(cell: float | None, n_bin: float | None) -> float | None:
    """A cell's factor, never narrower than its n-bin's (a wider interval keeps the
    guarantee): cells only widen where their own samples need it."""
    if cell is None or n_bin is None:
        return cell
    return max(cell, n_bin)


def fit_interval_calibration(mist: Any, samples: list, truth: np.ndarray,
                             levels: tuple[float, ...] = LEVELS,
                             n_cuts: tuple[int, ...] = N_CUTS,
                             mi_cuts: tuple[float, ...] = MI_CUTS) -> dict[str, Any]:
    """Factors for ``levels`` from a MIST-QR estimator's raw intervals on ``samples``.

    Returns ``{"method": ..., "count": m, "factors": {"0.9": s*, ...}, "n_cuts": [...],
    "factors_by_n": {"0.9": [s* of each n-bin, or None], ...}, "count_by_n": [...],
    "mi_cuts": [...], "factors_by_cell": {"0.9": [[s* of each median cell of an n-bin, or
    None], ...]}, "count_by_cell": [[...], ...], "raw_coverage": {...},
    "raw_coverage_by_n": {...}}``, ready to be stored in a checkpoint as
    ``interval_calibration``.
    """
    truth = np.asarray(truth, dtype=np.float64)
    taus = [t for level in levels for t in ((1 - level) / 2, (1 + level) / 2)] + [0.5]
    q = mist.quantiles_batch(samples, taus)            # one pass for every level
    bins = n_bins(sample_rows(samples), n_cuts)
    cells = cell_bins(q[:, -1], mi_cuts)
    n_range, cell_range = range(len(n_cuts) + 1), range(len(mi_cuts) + 1)
    factors, by_n, by_cell, raw, raw_by_n = {}, {}, {}, {}, {}
    for i, level in enumerate(levels):
        key = level_key(level)
        lower, upper = q[:, 2 * i], q[:, 2 * i + 1]
        factors[key] = conformal_factor(lower, upper, truth, level)
        covered = (truth >= lower) & (truth <= upper)
        raw[key] = float(np.mean(covered))
        by_n[key] = [_factor_or_none(lower, upper, truth, level, bins == b) for b in n_range]
        by_cell[key] = [[_at_least(_factor_or_none(lower, upper, truth, level,
                                                   (bins == b) & (cells == c)), by_n[key][b])
                         for c in cell_range] for b in n_range]
        raw_by_n[key] = [float(np.mean(covered[bins == b])) if np.any(bins == b) else None
                         for b in n_range]
    return {"method": "split-conformal CQR, width-scaled score, pooled, per n-bin and per "
                      "(n-bin, raw-median cell)",
            "count": int(truth.size), "factors": factors, "n_cuts": [int(c) for c in n_cuts],
            "factors_by_n": by_n,
            "count_by_n": [int((bins == b).sum()) for b in n_range],
            "mi_cuts": [float(c) for c in mi_cuts], "factors_by_cell": by_cell,
            "count_by_cell": [[int(((bins == b) & (cells == c)).sum()) for c in cell_range]
                              for b in n_range],
            "raw_coverage": raw, "raw_coverage_by_n": raw_by_n}


def is_finite_number(v: Any) -> bool:
    """Whether a JSON value is a finite number (not a bool; an int small enough for a
    float64 to hold exactly)."""
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2 ** 53


def _is_level_key(key: Any) -> bool:
    try:
        return isinstance(key, str) and 0.0 < float(key) < 1.0
    except ValueError:
        return False


def level_key(level: float) -> str:
    """How a card writes ``level`` as a key (``"0.9"``): the only form looked up."""
    return f"{level:g}"


def _level_key_problem(name: str, table: dict[str, Any]) -> str | None:
    """What is wrong with the level keys of one of the calibration's tables, or None."""
    bad = [k for k in table if not _is_level_key(k)]
    if bad:
        return f"{name!r} has a key {bad[0]!r} that is not a level strictly between 0 and 1"
    odd = [k for k in table if k != level_key(float(k))]
    if odd:
        return (f"{name!r} has a key {odd[0]!r} not written as {level_key(float(odd[0]))!r}: "
                "levels are looked up in that form, so its factors would never be used")
    return None


def _is_factor(v: Any, may_be_none: bool = False) -> bool:
    return (v is None and may_be_none) or (is_finite_number(v) and v >= LOWEST_FACTOR)


def _are_cuts(cuts: Any) -> bool:
    return (isinstance(cuts, list) and len(cuts) > 0 and all(is_finite_number(c) for c in cuts)
            and all(a < b for a, b in zip(cuts, cuts[1:])))


def calibration_problem(calibration: Any) -> str | None:
    """What is wrong with a card's ``interval_calibration`` (as
    :func:`fit_interval_calibration` writes it), or None: level keys strictly between 0
    and 1, written as :func:`level_key` writes them (the factors of ``"0.90"`` would never
    be used) and, in the tables by bin and by cell, levels of ``factors``; finite factors
    of at least :data:`LOWEST_FACTOR` (the smallest score), increasing cut points wherever
    per-bin or per-cell factors need them, one factor (or null) per bin and per cell."""
    if not isinstance(calibration, dict):
        return "must be a JSON object"
    factors = calibration.get("factors")
    if not isinstance(factors, dict) or not factors:
        return "needs 'factors', an object mapping levels to factors"
    for name, table in (("factors", factors), ("factors_by_n", calibration.get("factors_by_n")),
                        ("factors_by_cell", calibration.get("factors_by_cell"))):
        if table is None:
            continue
        if not isinstance(table, dict):
            return f"{name!r} must be a JSON object"
        problem = _level_key_problem(name, table)
        if problem:
            return problem
        orphans = [k for k in table if k not in factors]
        if orphans:
            return (f"{name!r} has level {orphans[0]!r}, which 'factors' lacks: a level's "
                    "factors by bin or cell are used only where it has a pooled factor")
    bad = [k for k, v in factors.items() if not _is_factor(v)]
    if bad:
        return (f"factors[{bad[0]!r}] must be a finite number >= {LOWEST_FACTOR}; got "
                f"{factors[bad[0]]!r}")
    per_bin, per_cell = calibration.get("factors_by_n"), calibration.get("factors_by_cell")
    if per_bin is None and per_cell is None:
        return None
    if not _are_cuts(calibration.get("n_cuts")):
        return "'n_cuts' must be a non-empty list of increasing numbers"
    bins = len(calibration["n_cuts"]) + 1
    for key, row in (per_bin or {}).items():
        if not (isinstance(row, list) and len(row) == bins
                and all(_is_factor(v, may_be_none=True) for v in row)):
            return (f"factors_by_n[{key!r}] must list {bins} factors (finite numbers >= "
                    f"{LOWEST_FACTOR}, or null), one per bin of n; got {row!r}")
    if per_cell is None:
        return None
    if not _are_cuts(calibration.get("mi_cuts")):
        return "'mi_cuts' must be a non-empty list of increasing numbers"
    cells = len(calibration["mi_cuts"]) + 1
    for key, rows in per_cell.items():
        if not (isinstance(rows, list) and len(rows) == bins and all(
                isinstance(r, list) and len(r) == cells
                and all(_is_factor(v, may_be_none=True) for v in r) for r in rows)):
            return (f"factors_by_cell[{key!r}] must hold {bins} rows (bins of n) of {cells} "
                    f"factors (finite numbers >= {LOWEST_FACTOR}, or null); got {rows!r}")
    return None


def sample_factors(calibration: dict[str, Any] | None, level: float,
                   n: Any, median: Any = None) -> np.ndarray | None:
    """The factor for each sample at ``level``, from its size ``n`` and (where the
    calibration has median cells and ``median`` is given) its raw median: the factor of its
    (n-bin, median cell) where fitted, else its n-bin's, else the pooled one; None when
    ``level`` has no factor."""
    calibration = calibration or {}
    key = level_key(level)
    pooled = (calibration.get("factors") or {}).get(key)
    if pooled is None:
        return None
    out = np.full(np.shape(n), float(pooled))
    per_bin = (calibration.get("factors_by_n") or {}).get(key)
    per_cell = (calibration.get("factors_by_cell") or {}).get(key) if median is not None else None
    if per_bin is None and per_cell is None:
        return out
    bins = n_bins(n, calibration["n_cuts"])
    for b, value in enumerate(per_bin or []):
        if value is not None:
            out[bins == b] = float(value)
    if per_cell is not None:
        cells = cell_bins(median, calibration["mi_cuts"])
        for b, row in enumerate(per_cell):
            for c, value in enumerate(row):
                if value is not None:
                    out[(bins == b) & (cells == c)] = float(value)
    return out

