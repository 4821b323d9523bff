"""Per-column input normalisation: the empirical normal-scores copula.

Mutual information depends on a distribution only through its copula, so replacing every
column by its ranks (mapped to standard-normal quantiles) loses nothing that MI depends
on.  It makes every downstream estimate exactly invariant to strictly increasing
per-coordinate maps (asinh, halfcube, wiggly, normal_cdf, affine rescaling, ...) and puts
every column on the same scale whatever the units of the raw data.

For a column ``a`` of ``n`` values with average ranks ``r`` (ties share the mean of the
ranks they span, so ``r`` takes values in ``[1, n]``) the score is
``ndtri((r - 0.5) / n)``.  A constant column maps to all zeros.

The alternative ``standardize`` (centre and scale by the sample mean and standard
deviation) is kept for ablations (``copula: false`` in the model config).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from scipy.special import ndtri

__all__ = ["average_ranks", "normal_scores", "normal_score_index", "row_score_index",
           "score_table", "standardize", "normalize", "normal_scores_torch"]


def average_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks of each column of ``a`` (shape ``(n, d)``); ties share their mean rank.

    Equal to ``scipy.stats.rankdata(a, method="average", axis=0)``, vectorised over the
    columns: one sort per column, then (only where there are ties) the first and last
    position of each run of equal values by running maxima and minima, and a scatter
    back to the original order.
    """
    return _ranks_of_sorted(*_sorted_columns(a))


def _sorted_columns(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_sorted_rows` of the columns of ``a`` ``(n, d)``."""
    return _sorted_rows(np.ascontiguousarray(a.T))         # (d, n): one sort per row


def _sorted_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``rows`` ``(d, n)``: the sorting order, the sorted values (both
    ``(d, n)``) and where a sorted value equals the one before it ``(d, n - 1)``."""
    order = np.argsort(rows, axis=1)
    s = np.take_along_axis(rows, order, axis=1)
    return order, s, s[:, 1:] == s[:, :-1]


def _ranks_of_sorted(order: np.ndarray, s: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Average ranks ``(n, d)`` from :func:`_sorted_columns`' output."""
    d, n = s.shape
    ranks = np.empty((d, n))
    if not ties.any():
        np.put_along_axis(ranks, order, np.arange(1.0, n + 1.0)[None, :].repeat(d, 0), axis=1)
        return ranks.T
    pos = np.arange(n)[None, :]
    new_run = np.ones(s.shape, dtype=bool)
    new_run[:, 1:] = ~ties
    first = np.maximum.accumulate(np.where(new_run, pos, 0), axis=1)
    last_of_run = np.ones(s.shape, dtype=bool)
    last_of_run[:, :-1] = new_run[:, 1:]
    last = np.minimum.accumulate(np.where(last_of_run, pos, n)[:, ::-1], axis=1)[:, ::-1]
    np.put_along_axis(ranks, order, 0.5 * (first + last) + 1.0, axis=1)
    return ranks.T


def normal_scores(a: np.ndarray) -> np.ndarray:
    """Normal scores of each column of ``a`` (shape ``(n, d)``), as float32.

    ``ndtri((rank - 0.5) / n)`` with average ranks for ties.
    """
    a = _as_columns(a)
    return score_table(a.shape[0])[normal_score_index(a)]


def normal_score_index(a: np.ndarray) -> np.ndarray:
    """Where each cell's normal score sits in :func:`score_table` of its column length.

    ``normal_scores(a) == score_table(n)[normal_score_index(a)]`` exactly; the index is
    ``2 (rank - 1)`` for the average rank (an integer in ``[0, 2 n - 2]``, odd only for
    ties).  Shape ``(n, d)``, dtype ``intp``.  Every cell of a sample with ``n`` rows
    therefore takes one of ``2 n - 1`` values, whatever the data: a batch is normalised
    by ranking and then reading one table (:func:`~mistmodel.batching.collate`).
    """
    a = _as_columns(a)
    return row_score_index(np.ascontiguousarray(a.T)).T


def row_score_index(rows: np.ndarray) -> np.ndarray:
    """:func:`normal_score_index` of the transpose: ``rows`` ``(d, n)`` holds one column
    per row (many samples' columns of the same length can be ranked in one call)."""
    d, n = rows.shape
    if n == 0:
        return np.zeros((d, n), dtype=np.intp)
    order, s, ties = _sorted_rows(rows)
    if not ties.any():
        out = np.empty((d, n), dtype=np.intp)
        np.put_along_axis(out, order, np.arange(0, 2 * n, 2)[None, :], axis=1)
        return out
    return _half_steps(order, s, ties).T


def _as_columns(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a[:, None] if a.ndim == 1 else a


def _half_steps(order: np.ndarray, s: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Average ranks as table positions: rank 1, 1.5, 2, ... -> 0, 1, 2, ... ``(n, d)``."""
    return (2.0 * _ranks_of_sorted(order, s, ties) - 2.0).astype(np.intp)


@functools.lru_cache(maxsize=64)
def score_table(n: int) -> np.ndarray:
    """``ndtri((r - 0.5) / n)`` as float32 for every possible average rank
    ``r = 1, 1.5, ..., n`` (ties make half ranks), indexed by ``2 (r - 1)``: the only
    values a column of ``n`` normal scores can hold."""
    r = 1.0 + 0.5 * np.arange(2 * n - 1)
    table = ndtri((r - 0.5) / n).astype(np.float32)
    table.flags.writeable = False
    return table


def standardize(a: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Centre each column and scale it to unit standard deviation (float32).  Each column
    is first divided by its largest magnitude, so that neither its mean nor its standard
    deviation overflows or underflows: the result does not depend on the column's scale."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    largest = np.abs(a).max(axis=0, initial=0.0, keepdims=True)
    a = a / np.where(largest > 0, largest, 1.0)
    mean = a.mean(axis=0, keepdims=True)
    std = a.std(axis=0, keepdims=True)
    return ((a - mean) / np.maximum(std, eps)).astype(np.float32)


def normalize(a: np.ndarray, copula: bool = True) -> np.ndarray:
    """The model's input normalisation: normal scores if ``copula`` else standardisation."""
    return normal_scores(a) if copula else standardize(a)


def normal_scores_torch(values: torch.Tensor, row_mask: torch.Tensor) -> torch.Tensor:
    """Normal scores of padded batched samples, computed in torch.

    ``values``: ``(B, N, D)``; ``row_mask``: ``(B, N)`` bool, True for real rows.  Padded
    rows are ignored when ranking and set to 0 in the output.  Ties get average ranks,
    exactly as :func:`normal_scores` (O(N^2 D) comparisons; meant for modest N).
    """
    mask = row_mask.to(values.dtype)[:, :, None]                      # (B, N, 1)
    n = mask.sum(dim=1, keepdim=True).clamp_min(1.0)                  # (B, 1, 1)
    v = values.unsqueeze(2)                                           # (B, N, 1, D)
    w = values.unsqueeze(1)                                           # (B, 1, N, D)
    valid_other = mask.unsqueeze(1)                                   # (B, 1, N, 1)
    less = ((w < v).to(values.dtype) * valid_other).sum(dim=2)        # (B, N, D)
    equal = ((w == v).to(values.dtype) * valid_other).sum(dim=2)      # (B, N, D)
    ranks = less + 0.5 * (equal + 1.0)                                # average rank, 1-based
    p = ((ranks - 0.5) / n).clamp(1e-12, 1 - 1e-12)
    scores = torch.special.ndtri(p)
    return scores * mask
