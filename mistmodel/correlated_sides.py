"""Sides whose columns are strongly correlated with each other: beyond MIST's training.

The dependent families MIST was trained on keep the columns within X (and within Y)
moderately correlated: the mean absolute correlation between a side's columns (of their
normal scores) stays below about 0.55 (``mistgen``'s ``normal-dense`` draws its
correlations from [0, 0.5]; 0.57 was the largest over 720 samples of the release
config's dependent families, 0.51 the 99th percentile).  Only its independence families,
X independent of Y, have sides far more correlated than that, and the network learned
that lesson too well: with 8 + 8 or 16 + 16 columns all correlated 0.7 (MI 1.16 and 1.48
nats) MIST reads 0.13 and 0.001, and from 0.6 it reads low
(``benchmarks/correlated_sides.py``).  :func:`mean_correlation` is the statistic,
:func:`correlated_side` finds the first side of a sample from :data:`CORRELATION_WARN`,
and :class:`mistmodel.MIST` raises an
:class:`~mistmodel.caller_warnings.OutOfRangeWarning` naming it.  The conditional network
(``mist_cmi``) warns on X and Y alike: its training draws rarely have such sides, and
it reads such samples far off, too high or too low.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .copula import normal_scores
from .cross_check import subsample_rows

__all__ = ["MIN_COLUMNS", "CONDITIONAL_MIN_COLUMNS", "ROWS", "CORRELATION_WARN", "ADVICE", "CONDITIONAL_ADVICE",
           "mean_correlation", "correlated_side"]

# sides with fewer columns are left alone (2 + 2 at 0.95 read well).  At 3 + 3, n = 2,000,
# MIST reads 0.42 for 0.55 at r = 0.6, 0.47 for 0.73 at 0.7 and 1.81 for 1.33 at 0.9 (3
# samples each), while 4 of 600 samples of ten dependent training families at 3 + 3,
# n = 500, reach 0.55; the conditional network reads 3 + 3 (+ 2 Z) within 0.08 nats there
# (0.80 for 0.73 at 0.7, 1.41 for 1.33 at 0.9), so it is left alone below 4 columns.
MIN_COLUMNS = 3
CONDITIONAL_MIN_COLUMNS = 4
ROWS = 2000          # evenly spaced rows the statistic is computed on, at most
CORRELATION_WARN = 0.55   # a side's mean absolute correlation from which MIST warns
ADVICE = ("There MIST can read far less than the MI, down to nothing (16 + 16 columns all "
          "correlated 0.7, MI 1.48 nats, read 0.001), or more (3 + 3 at 0.9, MI 1.33, read "
          "1.81). CCA (mistmodel.estimators.CCA) reads "
          "the Gaussian part of the dependence; an invertible map of each side leaves the "
          "MI as it is, and whitening each side's columns helped on Gaussian samples of this "
          "kind up to 16 + 16 columns, but read other shapes high (see docs/mist.md).")
# the conditional network's training draws rarely have such sides: 4 of 449 reach 0.55
# (its six families, 1 to 16 columns a group, n 50-1,000;
# ``benchmarks/correlated_sides.py --conditional``)
CONDITIONAL_ADVICE = ("There the conditional MIST can be far from I(X;Y|Z), in either "
                      "direction (8 + 8 columns all correlated 0.7, I(X;Y|Z) 1.16 nats, read "
                      "1.62; 16 + 16 at 0.9, 2.14 nats, read 1.61). CCA's conditional form "
                      "(mistmodel.estimators.CCA().estimate_conditional) reads the Gaussian "
                      "part of the dependence (see docs/mist.md).")


def _score_correlations(a: np.ndarray) -> np.ndarray:
    """The correlation matrix of the normal scores of ``a``'s columns, on at most
    :data:`ROWS` evenly spaced rows."""
    rows = subsample_rows(a.shape[0], ROWS) if a.shape[0] > ROWS else slice(None)
    # a column constant on these rows (not on the whole sample) has no correlation: NaN
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(normal_scores(a[rows]).astype(np.float64), rowvar=False)


def _mean_off_diagonal(corr: np.ndarray) -> float:
    """The mean absolute entry of a square matrix off its diagonal, over the entries that
    are numbers (a column constant on the rows read has none); 0 where none is."""
    values = np.abs(corr[~np.eye(len(corr), dtype=bool)])
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else 0.0


def mean_correlation(a: np.ndarray) -> float:
    """The mean absolute correlation between the normal scores of ``a``'s columns
    (``(n, d)``, d >= 2, no constant column; at most :data:`ROWS` evenly spaced rows are
    read): 0 for uncorrelated columns, 1 for columns that move together."""
    return _mean_off_diagonal(_score_correlations(a))


def correlated_side(parts: Sequence[np.ndarray], min_columns: int = MIN_COLUMNS
                    ) -> tuple[str, int, float] | None:
    """The first side (``"x"``, ``"y"``) of a sample with at least ``min_columns``
    columns whose :func:`mean_correlation` reaches :data:`CORRELATION_WARN`, as ``(side,
    columns, correlation)``; None if there is none.  The sides it reads are scored
    together: one ranking and one correlation matrix per sample."""
    sides = [(side, a) for side, a in zip("xy", parts)
             if a.shape[1] >= min_columns and a.shape[0] > a.shape[1]]
    if not sides:
        return None
    corr = _score_correlations(np.hstack([a for _, a in sides]))
    start = 0
    for side, a in sides:
        d = a.shape[1]
        correlation = _mean_off_diagonal(corr[start:start + d, start:start + d])
        if correlation >= CORRELATION_WARN:
            return side, d, correlation
        start += d
    return None
