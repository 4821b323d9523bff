"""Kraskov-Stoegbauer-Grassberger k-nearest-neighbour estimator (algorithm 1).

Kraskov, Stoegbauer & Grassberger, "Estimating mutual information",
Phys. Rev. E 69, 066138 (2004), algorithm 1::

    I(X; Y) = psi(k) + psi(N) - < psi(n_x(i) + 1) + psi(n_y(i) + 1) >_i

where, for each point ``i``, ``eps(i)`` is the distance to its k-th nearest
neighbour in the joint space under the max-norm
``d((x, y), (x', y')) = max(|x - x'|_X, |y - y'|_Y)``, and ``n_x(i)``
(``n_y(i)``) counts the other points strictly closer than ``eps(i)`` to
``x_i`` in the X space (``y_i`` in the Y space). ``|.|_X`` and ``|.|_Y`` are
the norm chosen by ``metric``: the maximum norm ("chebyshev", the original
paper, which makes the joint distance the maximum norm of the concatenated
vector) or the Euclidean norm ("euclidean", the choice of the benchmark-mi
package). The value is returned as computed (it can be slightly negative for
independent data); it is not clipped at zero.

Ties
----
The derivation assumes that no two distances are equal. Real data has ties:
rounded or discrete values, heavy tails squashed by a transform, duplicated
rows. With ``jitter > 0`` (the default, as Kraskov et al. recommend) each
column gets independent Gaussian noise of standard deviation
``jitter * std(column)`` from ``numpy.random.default_rng(seed)`` (X's columns
first, then Y's), after the optional standardisation (or, without it, after
centring each column on its median). At the default 1e-10 this changes no
distance between distinct values appreciably and breaks every exact tie in a
reproducible way. Breaking a tie does not make a copied row a distinct
observation: a row that repeats an earlier one in every column becomes its
nearest neighbour, which reads as dependence, so more than 1% of such rows
raise a :class:`~mistmodel.caller_warnings.RepeatedRowsWarning` (values on a
grid, which repeat far more often column by column than row by row, do not). With ``jitter=0`` ties are handled as
the formula says: the strict inequality excludes every point at exactly
``eps(i)``, and a point with ``eps(i) = 0`` (k or more exact duplicates) gets
``n_x(i) = n_y(i) = 0``.

Discrete and mixed data
-----------------------
With ``discrete="auto"`` (the columns that :func:`discrete_columns` finds: fewer
than ``max(20, n / 20)`` distinct values) or ``discrete=True`` (every column),
any discrete column switches :meth:`KSG.estimate` to the mixed-KSG estimator
of Gao, Kannan, Oh & Viswanath, "Estimating mutual information for
discrete-continuous mixtures" (NeurIPS 2017), and the discrete columns get no
tie-breaking noise. For each point, ``rho(i)`` is the k-th neighbour distance
in the joint space. Where ``rho(i) > 0`` the point contributes as in algorithm
1. Where ``rho(i) = 0`` (point i coincides with k or more others) it
contributes ``psi(k_i) - psi(n_x(i) + 1) - psi(n_y(i) + 1)`` with ``k_i`` the
number of coincident points (i included) and ``n_x(i)``, ``n_y(i)`` the other
points at distance 0 in each space; the estimate adds ``psi(N)`` to the mean
(see :func:`mixed_counts`). This is the digamma form of the authors' released
implementation; on continuous data it equals algorithm 1.

The two settings give a discrete column different distances:

* "auto" takes its values as categories (:func:`as_categories`): distance 0
  between rows that share the value, and more than any continuous distance
  between rows that do not. A row's neighbours are then the rows that share
  all its discrete values (its stratum): its k-th, or in a stratum of
  ``s <= k`` rows the farthest of the ``s - 1`` others. Where there are
  continuous columns, rows alone in their stratum have no neighbour and are
  left out (``last_info["rows_alone_in_stratum"]``; a
  :class:`~mistmodel.caller_warnings.SmallSampleWarning` from 5% of the rows)
  and ``N`` counts the others (``last_info["rows_used"]``); a
  :class:`~mistmodel.estimators.base.TooFewRowsError` where fewer than k + 2
  are left. Where X and Y both have discrete columns (Xd, Yd) and one side or
  both also has continuous ones (Xc, Yc), the strata would be the cells of the
  Xd-Yd table, and where many held few rows one search read far high or low
  (rows alone in a cell are those of the rarest combinations); so I(X;Y) is
  then the chain rule's ``I(Xd;Yd) + I(Xd;Yc|Yd) + I(Xc;Yc|Xd) +
  I(Xc;Yd|Xd,Yc)``, the terms with an empty side left out (9 independent
  labels against 9 more and a normal column at n = 100: +0.865 nats in one
  search, +0.155 so; ``last_info["chain_rule"]``). Where X and Y both have
  continuous columns, the side whose discrete columns take fewer values comes
  first (I(Xc;Yc|Xd) is then searched within fewer, larger groups), and with
  as many on each side the estimate is the mean of both orders, so it does not
  depend on which side is X. With few rows per stratum the estimate
  errs: high or low where the strata are cells of a table of X's and Y's
  columns, low where they are one side's classes, and low sooner
  where only Z is discrete (I(X;Y|Z) = 0.223 read 0.134 at 15.8 rows per
  stratum, 0.211 at 52.6; ``benchmarks/ksg_categories.py``). The estimate then
  raises a :class:`~mistmodel.caller_warnings.DiscreteBiasWarning` (below
  :data:`ROWS_PER_CELL_WARN` rows per stratum, :data:`ROWS_PER_Z_GROUP_WARN`
  where only Z is discrete) instead. The estimate does not depend on how the
  categories are coded, as MI does not. With a discrete X and a continuous Y
  it is a form of Ross's estimator ("Mutual information between discrete and
  continuous data sets", PLoS ONE 9, e87357, 2014); given a discrete Z, the
  conditional estimate is Frenzel-Pompe's within each value of Z, averaged
  over the rows.
* True takes the values as numbers: Gao et al.'s rule as published, for
  columns that mix point masses with continuous values (zero-inflated ones,
  say). A discrete column with many values then reads dependence where there
  is none, as its neighbours straddle neighbouring values: 15 labels
  independent of a Gaussian column read 0.17 nats at n = 100 and 0.26 at
  n = 300, a Gaussian column rounded to 0.1 (65 values at n = 2,000) 0.18; as
  categories, within 0.03 of 0 (``tests/test_mixed_ksg.py``).

A column of integers with too many values for ``"auto"`` to take as categories, yet
heavily tied (:func:`many_valued_ties`: 20 labels in 100 to 400 rows), is read by
neither setting well if its values are labels: with ``False`` or ``"auto"`` the
estimate raises a :class:`~mistmodel.caller_warnings.TiedDataWarning` naming it
(``benchmarks/ksg_discrete.py --channels-only``).

On fully discrete data the mixed rule is the plug-in estimate up to terms of
order 1 / (cell count); as categories those terms are the digamma form's, which
take off the plug-in estimate's first-order upward bias (Miller-Madow's
``(K_xy - K_x - K_y + 1) / (2 N)``, ``K`` the observed cells of the joint and
of each side), and as numbers a cell of k rows or fewer also counts its
neighbouring cells. What remains grows fast as the rows per cell fall, so
where every column is discrete :meth:`KSG.estimate` raises a
:class:`~mistmodel.caller_warnings.DiscreteBiasWarning`: as categories below
:data:`ROWS_PER_CELL_WARN` rows per observed joint cell (the rule above, whose
strata are then the cells), as numbers where
Miller-Madow's estimate (``last_info["plugin_bias"]``) reaches
:data:`DISCRETE_BIAS_WARN` nats. Both also warn where many rows are alone
in their joint cell at a high estimate (:data:`ALONE_IN_CELL_WARN`): on a
table with a few full cells beside many near-empty ones (12 labels, Y = X's
label kept with probability 0.9, n = 100: 5 rows per cell, +0.17 nats as
categories) the rows-per-cell rule does not see them. Where X, Y and Z are all discrete,
:meth:`KSG.estimate_conditional` reads high sooner and warns below
:data:`ROWS_PER_CONDITIONAL_CELL_WARN` rows per observed joint cell as
categories, :data:`ROWS_PER_CONDITIONAL_CELL_NUMBERS_WARN` as numbers
(I(X;Y|Z) = 0 on 8 x 8 x 8 values: +0.065 nats as categories at 4.2 rows per
cell, +0.076 as numbers at 9.2; all measured in
``benchmarks/ksg_discrete.py``). The
log form stated in the paper, ``psi(k_i) + log N - log(n_x + 1) - log(n_y +
1)`` with counts inclusive of ``rho(i)``, is consistent only as ``k`` grows:
at ``k = 5`` it measured 0.18 to 0.26 nats below the truth on a discrete X
with a Gaussian Y | X (n = 2,000).

Computation
-----------
Two exact strategies, chosen by ``algorithm``:

* "tree": k-d trees (``scipy.spatial.cKDTree``). For the Chebyshev metric the
  k-th neighbour comes from a max-norm query on the joint tree. For the
  Euclidean metric the joint distance is not a Minkowski norm, so the k-th
  neighbour is found from Euclidean candidates on the joint tree: since
  ``d <= |z - z'|_2 <= sqrt(2) d``, once the k-th smallest ``d`` among the
  first K Euclidean neighbours is at most (K-th Euclidean distance)/sqrt(2)
  no other point can come closer; K doubles for the points where that does
  not yet hold. Marginal counts are radius queries on the X and Y trees.
  Best when ``dx + dy`` is small.
* "brute": row blocks of the full distance matrices, the k-th smallest joint
  distance by repeated row minima, and the counts by comparison with the same
  matrices. For the Chebyshev metric, and for the Euclidean one below
  ``dx + dy = 20``, the distances come from ``scipy.spatial.distance.cdist``
  (squared for the Euclidean metric, which keeps their order), computed from
  coordinate differences, so the strict inequality is applied to the very
  numbers that defined ``eps``. From ``dx + dy = 20`` the Euclidean distances
  come from one matrix product per space (``|a|^2 + |b|^2 - 2 a.b`` as the
  product of ``[a, |a|^2, 1]`` and ``[-2 b, 1, |b|^2]``), which is faster but
  can round a near-duplicate pair badly; every decision
  within that form's rounding bound (the k-th neighbour when another point is
  that close to it, and each count entry that close to ``eps``) is made on
  distances from differences instead, so the counts equal those of the
  difference form; a block whose k-th neighbours are tied beyond the bound
  (exact ties, e.g. discrete data without jitter) is done wholly by
  differences. Memory stays bounded by the block size (a few work arrays of
  at most 8 MiB are kept per thread between calls: at n of a few hundred,
  fresh arrays cost more in page faults than the arithmetic). Best in high
  dimension.

"auto" takes the tree for ``dx + dy <= 2`` from ``n = 300``, for
``dx + dy <= 4`` from ``n = 1000`` and for ``dx + dy <= 6`` from ``n = 5000``,
and brute force otherwise (crossovers measured on a 2-core machine). Radius queries
on a tree use the radius ``nextafter(eps, 0)`` for the Chebyshev metric, where
tree and query compute the same floating-point distance, and
``eps * (1 - 1e-12)`` for the Euclidean metric, where the tree's sum of
squares may round differently; only a distance within a relative 1e-12 of
``eps`` could be classified differently from exact arithmetic.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
from scipy.special import digamma

from ..per_thread import PerThread
from ..caller_warnings import (DiscreteBiasWarning, SmallSampleWarning, TiedDataWarning,
                               silenced, warn)
from .base import (Estimator, TooFewRowsError, _distinct_per_column, column_number,
                   constant_columns, kept_columns, numbered_as_given, scale_to_unit,
                   check_flag, standardize_columns, warn_copied_rows)

__all__ = ["KSG", "as_categories", "conditional_counts", "discrete_columns", "ksg_counts",
           "mixed_counts"]

METRICS = ("chebyshev", "euclidean")
ALGORITHMS = ("auto", "tree", "brute")
_EUCLIDEAN_SHRINK = 1.0 - 1e-12
# "auto" uses the tree for dx + dy <= max_dim once n >= min_n (measured).
_TREE_FROM = ((2, 300), (4, 1000), (6, 5000))
# Entries of one block of the brute-force distance matrices (8 MiB each).
_BLOCK_ENTRIES = 1 << 20
# The Euclidean brute force uses matrix products from dx + dy >= this (measured).
_GRAM_FROM_DIM = 20


class _Scratch(threading.local):
    """Work arrays kept between calls, one set per thread.

    At the sizes KSG meets most (n of a few hundred), a fresh n x n array costs more in
    page faults than the arithmetic done on it; reusing a few buffers removes that cost.
    Buffers above ``_SCRATCH_MAX_BYTES`` are not kept (there the arithmetic dominates).
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
        size = int(np.prod(shape))
        buf = self.buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(size, dtype=dtype)
            if buf.nbytes <= _SCRATCH_MAX_BYTES:
                self.buffers[name] = buf
        return buf[:size].reshape(shape)


_SCRATCH_MAX_BYTES = 8 << 20
_scratch = _Scratch()


def _smallest_rows(d: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the ``count`` smallest entries of each row, in order;
    ``d`` is overwritten."""
    rows = np.arange(d.shape[0])
    idx = np.empty((d.shape[0], count), dtype=np.intp)
    val = np.empty((d.shape[0], count))
    for j in range(count):
        idx[:, j] = d.argmin(axis=1)
        val[:, j] = d[rows, idx[:, j]]
        d[rows, idx[:, j]] = np.inf
    return idx, val


def _kth_smallest_rows(d: np.ndarray, k: int) -> np.ndarray:
    """k-th smallest entry (1-based) of each row; ``d`` is overwritten."""
    if k > 16:
        return np.partition(d, k - 1, axis=1)[:, k - 1]
    return _smallest_rows(d, k)[1][:, k - 1]


def _each_smallest_rows(d: np.ndarray, k_each: np.ndarray) -> np.ndarray:
    """The ``k_each[i]``-th smallest entry (1-based) of row i, 0 where ``k_each`` is 0;
    ``d`` is overwritten."""
    k = max(int(k_each.max()), 1)
    if k > 16:
        ordered = np.sort(np.partition(d, k - 1, axis=1)[:, :k], axis=1)
    else:
        ordered = _smallest_rows(d, k)[1]
    picked = ordered[np.arange(d.shape[0]), np.maximum(k_each, 1) - 1]
    return np.where(k_each > 0, picked, 0.0)


def _distances(block: np.ndarray, full: np.ndarray, metric: str,
               out: np.ndarray | None = None) -> np.ndarray:
    """Block of distances; squared ones for the Euclidean metric (same order)."""
    return cdist(block, full, "sqeuclidean" if metric == "euclidean" else "chebyshev", out=out)


def _pair_sq_distances(a: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of the pairs ``(rows[m], cols[m])``, from differences."""
    diff = a[rows] - a[cols]
    return np.einsum("ij,ij->i", diff, diff)


class _GramFactors:
    """Both factors of the one-product form of squared Euclidean distances.

    With ``left = [a, |a|^2, 1]`` and ``right = [-2 b, 1, |b|^2]`` (rows of ``(n, d + 2)``
    matrices), ``left_i . right_j = |a_i|^2 + |a_j|^2 - 2 a_i . a_j``: the whole distance
    matrix is one matrix product, with no pass over it afterwards.
    """

    def __init__(self, a: np.ndarray) -> None:
        n = a.shape[0]
        self.sq = np.einsum("ij,ij->i", a, a)
        ones = np.ones((n, 1))
        self.left = np.hstack([a, self.sq[:, None], ones])
        self.right = np.hstack([-2.0 * a, ones, self.sq[:, None]])

    def distances(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` of the squared distance matrix (BLAS thread counts are left
        as the caller set them)."""
        return np.matmul(self.left[start:stop], self.right.T, out=out)


def _gram_bound(dim: int) -> float:
    """Relative rounding bound of :meth:`_GramFactors.distances`, with a safety factor of 4.

    Each squared norm is off by at most ``dim u |a|^2`` (``u = 2^-53``); the dot product
    of the ``dim + 2``-vectors by at most ``(dim + 2) u`` times the sum of the absolute
    values of its terms, ``<= 2 (|a|^2 + |b|^2)``, whatever the summation order: in all
    at most ``(3 dim + 6) u (|a|^2 + |b|^2)``.
    """
    return 4.0 * (3 * dim + 6) * 2.0**-53


class _Ambiguous(Exception):
    """A k-th neighbour too close to another to call in the matrix-product form: use differences."""


def _block_gram(x: np.ndarray, y: np.ndarray, factors: tuple, bounds: tuple, start: int,
                stop: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """eps^2, n_x, n_y of the rows ``start:stop`` for the Euclidean metric.

    Distances come from matrix products, off by at most a known rounding bound; every
    decision that this rounding could change is made on distances computed from
    coordinate differences instead, so the result is that of exact-difference distances:

    * the k-th neighbour: when the k-th smallest joint distance is further than twice the
      bound from the (k-1)-th and the (k+1)-th, the k-th neighbour is the same point
      exactly, and eps is its distance computed from differences;
    * the counts: entries within the bound of eps are compared on exact distances (the
      k-th neighbour itself, at eps in one space, is always decided exactly).

    Raises :class:`_Ambiguous` when the k-th neighbour is not isolated in this sense
    (exact ties, e.g. discrete data without jitter), for the exact path to take over.
    """
    (gx, gy), (bx, by) = factors, bounds
    m = stop - start
    local = np.arange(m)
    shape = (m, x.shape[0])
    dx = gx.distances(start, stop, _scratch.get("dx", shape))
    dy = gy.distances(start, stop, _scratch.get("dy", shape))
    dx[local, local + start] = np.inf  # a point is not its own neighbour
    dy[local, local + start] = np.inf
    tx, ty = bx[start:stop], by[start:stop]
    joint = np.maximum(dx, dy, out=_scratch.get("joint", shape))
    idx, val = _smallest_rows(joint, min(k + 1, x.shape[0] - 1))
    mask = _scratch.get("mask", shape, bool)
    t2 = 2.0 * np.maximum(tx, ty)       # |joint - exact joint| <= t, twice for a gap
    isolated = np.ones(m, dtype=bool)
    if k > 1:
        isolated &= val[:, k - 2] < val[:, k - 1] - t2
    if val.shape[1] > k:
        isolated &= val[:, k] > val[:, k - 1] + t2
    if not isolated.all():
        raise _Ambiguous
    kth = idx[:, k - 1]
    pair_x = _pair_sq_distances(x, local + start, kth)
    pair_y = _pair_sq_distances(y, local + start, kth)
    eps = np.maximum(pair_x, pair_y)
    counts = []
    for a, d, b, pair in ((x, dx, tx, pair_x), (y, dy, ty, pair_y)):
        d[local, kth] = np.inf          # the k-th neighbour: counted below, exactly
        lo, hi = (eps - b)[:, None], (eps + b)[:, None]
        surely = np.count_nonzero(np.less(d, lo, out=mask), axis=1)
        up_to_hi = np.count_nonzero(np.less_equal(d, hi, out=mask), axis=1)
        unsure = np.flatnonzero(up_to_hi > surely)
        count = surely + (pair < eps)
        if unsure.size:                 # entries within the bound of eps: exact distances
            r, c = np.nonzero((d[unsure] >= lo[unsure]) & (d[unsure] <= hi[unsure]))
            exact = _pair_sq_distances(a, unsure[r] + start, c)
            count += np.bincount(unsure[r][exact < eps[unsure[r]]], minlength=m)
        counts.append(count)
    return eps, counts[0], counts[1]


def _block_exact(x: np.ndarray, y: np.ndarray, metric: str, start: int, stop: int,
                 k: int, rows: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """eps (squared for the Euclidean metric), n_x, n_y of rows ``start:stop`` (or of the
    rows ``rows``), by cdist."""
    rows = np.arange(start, stop) if rows is None else rows
    local = np.arange(rows.size)
    shape = (rows.size, x.shape[0])
    dx = _distances(x[rows], x, metric, _scratch.get("dx", shape))
    dy = _distances(y[rows], y, metric, _scratch.get("dy", shape))
    dx[local, rows] = np.inf  # a point is not its own neighbour
    dy[local, rows] = np.inf
    e = _kth_smallest_rows(np.maximum(dx, dy, out=_scratch.get("joint", shape)), k)
    return (e, np.count_nonzero(dx < e[:, None], axis=1),
            np.count_nonzero(dy < e[:, None], axis=1))


def _counts_brute(
    x: np.ndarray, y: np.ndarray, k: int, metric: str, block_rows: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = x.shape[0]
    if block_rows is None:
        block_rows = max(1, min(n, _BLOCK_ENTRIES // max(n, 1)))
    eps = np.empty(n)
    nx = np.empty(n, dtype=np.int64)
    ny = np.empty(n, dtype=np.int64)
    gram = metric == "euclidean" and x.shape[1] + y.shape[1] >= _GRAM_FROM_DIM
    if gram:
        factors = (_GramFactors(x), _GramFactors(y))
        bounds = tuple(_gram_bound(a.shape[1]) * (f.sq + f.sq.max())
                       for a, f in zip((x, y), factors))
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        block = None
        if gram:
            try:
                block = _block_gram(x, y, factors, bounds, start, stop, k)
            except _Ambiguous:
                pass
        if block is None:
            block = _block_exact(x, y, metric, start, stop, k)
        eps[start:stop], nx[start:stop], ny[start:stop] = block
    if metric == "euclidean":
        eps = np.sqrt(eps)
    return eps, nx, ny


def _joint_radius_tree_euclidean(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """k-th neighbour distance under max(|dx|_2, |dy|_2), from a Euclidean tree."""
    n = x.shape[0]
    z = np.hstack([x, y])
    tree = cKDTree(z)
    eps = np.empty(n)
    pending = np.arange(n)
    n_cand = min(n, 2 * k + 2)
    width = max(x.shape[1], y.shape[1])
    while pending.size:
        # Bound the (rows, n_cand, width) difference arrays like a brute block.
        step = max(1, _BLOCK_ENTRIES // (n_cand * width))
        still = []
        for start in range(0, pending.size, step):
            rows = pending[start : start + step]
            dist, idx = tree.query(z[rows], k=n_cand)
            dist = dist.reshape(rows.size, n_cand)
            idx = idx.reshape(rows.size, n_cand)
            dxn = np.sqrt(((x[rows, None, :] - x[idx]) ** 2).sum(axis=-1))
            dyn = np.sqrt(((y[rows, None, :] - y[idx]) ** 2).sum(axis=-1))
            joint = np.maximum(dxn, dyn)
            joint[idx == rows[:, None]] = np.inf  # drop the point itself
            cand = np.partition(joint, k - 1, axis=1)[:, k - 1]
            if n_cand >= n:
                done = np.ones(rows.size, dtype=bool)
            else:
                done = cand * math.sqrt(2.0) * (1.0 + 1e-12) <= dist[:, -1]
            eps[rows[done]] = cand[done]
            still.append(rows[~done])
        pending = np.concatenate(still)
        n_cand = min(n, 2 * n_cand)
    return eps


def _ball_counts(spaces: tuple[np.ndarray, ...], radius: np.ndarray, p: float,
                 zero: np.ndarray) -> list[np.ndarray]:
    """For each space, the number of other points within ``radius`` (inclusive) of each
    point; 0 where ``zero`` is set."""
    counts = []
    for side in spaces:
        c = cKDTree(side).query_ball_point(side, r=radius, p=p, return_length=True)
        c = np.asarray(c, dtype=np.int64) - 1  # the point itself
        c[zero] = 0
        counts.append(c)
    return counts


def _kth_max_norm_tree(joint: np.ndarray, k: int,
                       k_each: np.ndarray | None = None) -> np.ndarray:
    """Max-norm distance of each point to its k-th nearest neighbour (its ``k_each[i]``-th
    where given, ``k_each <= k``; 0 for 0), from a k-d tree."""
    dist, _ = cKDTree(joint).query(joint, k=k + 1, p=np.inf)
    dist = np.asarray(dist).reshape(joint.shape[0], k + 1)
    if k_each is None:
        return dist[:, k]
    return dist[np.arange(joint.shape[0]), k_each]


def _counts_tree(
    x: np.ndarray, y: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if metric == "chebyshev":
        p = np.inf
        eps = _kth_max_norm_tree(np.hstack([x, y]), k)
        radius = np.nextafter(eps, 0.0)
    else:
        p = 2.0
        eps = _joint_radius_tree_euclidean(x, y, k)
        radius = eps * _EUCLIDEAN_SHRINK
    zero = eps <= 0.0
    radius = np.where(zero, 0.0, radius)
    nx, ny = _ball_counts((x, y), radius, p, zero)
    if metric == "euclidean":
        # a point within a relative 1e-12 of eps is in or out by rounding: the points with
        # any such neighbour are counted again on exact differences, as the brute force
        # counts them, so that both give the same counts
        wide = _ball_counts((x, y), np.where(zero, 0.0, eps / _EUCLIDEAN_SHRINK), p, zero)
        unsure = np.flatnonzero(((wide[0] != nx) | (wide[1] != ny)) & ~zero)
        for start in range(0, unsure.size, max(1, _BLOCK_ENTRIES // max(x.shape[0], 1))):
            rows = unsure[start:start + (_BLOCK_ENTRIES // max(x.shape[0], 1) or 1)]
            e2, nx[rows], ny[rows] = _block_exact(x, y, metric, 0, 0, k, rows=rows)
            eps[rows] = np.sqrt(e2)
    return eps, nx, ny


def ksg_counts(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    metric: str = "chebyshev",
    algorithm: str = "brute",
    block_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-point ``eps(i)``, ``n_x(i)`` and ``n_y(i)`` of KSG algorithm 1.

    No preprocessing: standardisation and tie-breaking noise are the job of
    :class:`KSG`. ``algorithm`` is "tree" or "brute" (see module docs).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    if algorithm == "tree":
        return _counts_tree(x, y, k, metric)
    if algorithm == "brute":
        return _counts_brute(x, y, k, metric, block_rows)
    raise ValueError(f"algorithm must be 'tree' or 'brute' here; got {algorithm!r}")


def _brute_blocks(n: int, block_rows: int | None) -> tuple[range, int]:
    """Start rows of the blocks of the brute-force strategies, and the block height."""
    if block_rows is None:
        block_rows = max(1, min(n, _BLOCK_ENTRIES // max(n, 1)))
    return range(0, n, block_rows), block_rows


def _space_distances(spaces: tuple[np.ndarray, ...], metric: str, start: int,
                     stop: int) -> list[np.ndarray]:
    """Rows ``start:stop`` of each space's distance matrix (squared for the Euclidean
    metric), with each point's distance to itself set to infinity."""
    local = np.arange(stop - start)
    shape = (stop - start, spaces[0].shape[0])
    blocks = []
    for number, a in enumerate(spaces):
        d = _distances(a[start:stop], a, metric, _scratch.get(f"space{number}", shape))
        d[local, local + start] = np.inf
        blocks.append(d)
    return blocks


def _check_search(metric: str, algorithm: str, what: str) -> None:
    """Refuse a metric or neighbour search that the ``what`` counts do not take."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    if algorithm not in ("tree", "brute"):
        raise ValueError(f"algorithm must be 'tree' or 'brute' here; got {algorithm!r}")
    if algorithm == "tree" and metric != "chebyshev":
        raise ValueError(f"the {what} counts take algorithm='tree' only with the "
                         "Chebyshev metric; use algorithm='brute'")


def conditional_counts(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    k: int,
    metric: str = "chebyshev",
    algorithm: str = "brute",
    block_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-point ``eps(i)``, ``n_xz(i)``, ``n_yz(i)`` and ``n_z(i)`` of the Frenzel-Pompe
    estimator of ``I(X; Y | Z)``.

    ``eps(i)`` is the distance to the k-th neighbour under ``max(|dx|, |dy|, |dz|)``, the
    counts are the other points strictly closer than ``eps(i)`` under ``max(|dx|, |dz|)``,
    ``max(|dy|, |dz|)`` and ``|dz|``. "tree" needs the Chebyshev metric (every distance is
    then the maximum norm of the concatenated coordinates); "brute" takes either.
    """
    _check_search(metric, algorithm, "conditional")
    if algorithm == "tree":
        eps = _kth_max_norm_tree(np.hstack([x, y, z]), k)
        zero = eps <= 0.0
        radius = np.where(zero, 0.0, np.nextafter(eps, 0.0))
        nxz, nyz, nz = _ball_counts((np.hstack([x, z]), np.hstack([y, z]), z), radius,
                                    np.inf, zero)
        return eps, nxz, nyz, nz
    n = x.shape[0]
    eps = np.empty(n)
    nxz, nyz, nz = (np.empty(n, dtype=np.int64) for _ in range(3))
    starts, rows = _brute_blocks(n, block_rows)
    for start in starts:
        stop = min(n, start + rows)
        dx, dy, dz = _space_distances((x, y, z), metric, start, stop)
        dxz = np.maximum(dx, dz, out=dx)
        dyz = np.maximum(dy, dz, out=dy)
        joint = np.maximum(dxz, dyz, out=_scratch.get("joint", dx.shape))
        e = _kth_smallest_rows(joint, k)[:, None]
        eps[start:stop] = e[:, 0]
        nxz[start:stop] = np.count_nonzero(dxz < e, axis=1)
        nyz[start:stop] = np.count_nonzero(dyz < e, axis=1)
        nz[start:stop] = np.count_nonzero(dz < e, axis=1)
    if metric == "euclidean":
        eps = np.sqrt(eps)
    return eps, nxz, nyz, nz


def _fold_maximum(blocks: list[np.ndarray], out: np.ndarray) -> np.ndarray:
    """The elementwise maximum of two or more equal-shape blocks, written into ``out``."""
    np.maximum(blocks[0], blocks[1], out=out)
    for block in blocks[2:]:
        np.maximum(out, block, out=out)
    return out


def _mixed_rule(
    parts: tuple[np.ndarray, ...],
    groups: tuple[tuple[int, ...], ...],
    k: int,
    metric: str,
    algorithm: str,
    block_rows: int | None,
    what: str,
    k_each: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """``rho(i)``, ``k_i`` and one count per space of the mixed rule (see
    :func:`mixed_counts`): the joint space is all of ``parts``; each counted space is the
    parts of one entry of ``groups``, under the maximum of their distances. With
    ``k_each`` (one value per point, at most ``k``), point i's neighbour is its
    ``k_each[i]``-th instead of its k-th (``rho(i) = 0`` for 0)."""
    _check_search(metric, algorithm, what)
    n = parts[0].shape[0]
    no_zero = np.zeros(n, dtype=bool)
    k_used = np.full(n, k) if k_each is None else k_each
    if algorithm == "tree":
        joint = np.hstack(parts)
        rho = _kth_max_norm_tree(joint, k, k_each)
        radius = np.nextafter(rho, 0.0)       # strictly inside rho; 0 where rho = 0
        spaces = tuple(np.hstack([parts[i] for i in g]) for g in groups)
        counts = _ball_counts(spaces, radius, np.inf, no_zero)
        (coincident,) = _ball_counts((joint,), np.zeros_like(rho), np.inf, no_zero)
        return (rho, np.where(rho > 0.0, k_used, coincident + 1), *counts)
    rho = np.empty(n)
    k_i = np.empty(n, dtype=np.int64)
    counts = [np.empty(n, dtype=np.int64) for _ in groups]
    starts, rows = _brute_blocks(n, block_rows)
    for start in starts:
        stop = min(n, start + rows)
        dists = _space_distances(parts, metric, start, stop)
        joint = _fold_maximum(dists, _scratch.get("joint", dists[0].shape))
        coincident = np.count_nonzero(joint <= 0.0, axis=1)
        r = (_kth_smallest_rows(joint, k) if k_each is None
             else _each_smallest_rows(joint, k_each[start:stop]))
        k_i[start:stop] = np.where(r > 0.0, k_used[start:stop], coincident + 1)
        radius = np.nextafter(r, 0.0)[:, None]
        rho[start:stop] = r
        for number, (count, g) in enumerate(zip(counts, groups)):
            space = dists[g[0]] if len(g) == 1 else _fold_maximum(
                [dists[i] for i in g], _scratch.get(f"group{number}", dists[0].shape))
            count[start:stop] = np.count_nonzero(space <= radius, axis=1)
    if metric == "euclidean":
        rho = np.sqrt(rho)
    return (rho, k_i, *counts)


def mixed_conditional_counts(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    k: int,
    metric: str = "chebyshev",
    algorithm: str = "brute",
    block_rows: int | None = None,
    k_each: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-point ``rho(i)``, ``k_i``, ``n_xz(i)``, ``n_yz(i)`` and ``n_z(i)`` of the mixed
    conditional estimator: :func:`mixed_counts`'s rule in the spaces of
    :func:`conditional_counts`.

    ``rho(i)`` is the k-th neighbour distance under ``max(|dx|, |dy|, |dz|)``. Where
    ``rho(i) > 0``, ``k_i = k`` and the counts are of the other points strictly closer than
    ``rho(i)`` in the XZ, YZ and Z spaces; where ``rho(i) = 0``, ``k_i`` is the number of
    points at joint distance 0 (point i included) and the counts are of the other points
    at distance 0. ``k_each`` as in :func:`mixed_counts`.
    """
    return _mixed_rule((x, y, z), ((0, 2), (1, 2), (2,)), k, metric, algorithm, block_rows,
                       "mixed conditional", k_each)


def mixed_counts(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    metric: str = "chebyshev",
    algorithm: str = "brute",
    block_rows: int | None = None,
    k_each: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-point ``rho(i)``, ``k_i``, ``n_x(i)`` and ``n_y(i)`` of the mixed-KSG estimator.

    ``rho(i)`` is the k-th neighbour distance in the joint space. Where ``rho(i) > 0``,
    ``k_i = k`` and ``n_x(i)`` (``n_y(i)``) counts the other points strictly closer than
    ``rho(i)`` in the X (Y) space, as in :func:`ksg_counts`. Where ``rho(i) = 0`` (more
    than k points coincide with point i), ``k_i`` is the number of points at joint
    distance 0, point i included, and the counts are of the other points at distance 0.
    "tree" needs the Chebyshev metric; "brute" takes either. With ``k_each`` (one integer
    per point, from 0 to ``k``) point i's neighbour is its ``k_each[i]``-th instead of its
    k-th (for 0, ``rho(i) = 0``).
    """
    return _mixed_rule((x, y), ((0,), (1,)), k, metric, algorithm, block_rows, "mixed-KSG",
                       k_each)


DISCRETE_BIAS_WARN = 0.05   # discrete=True: nats of plug-in bias from which estimate warns
ROWS_PER_CELL_WARN = 4      # discrete="auto": rows per stratum (cell) below which it warns
ROWS_PER_CONDITIONAL_CELL_WARN = 5  # the same for a fully discrete X, Y and Z
ROWS_PER_CONDITIONAL_CELL_NUMBERS_WARN = 12  # discrete=True, a fully discrete X, Y and Z
ROWS_PER_Z_GROUP_WARN = 20  # the same where only Z has discrete columns
# X and Y discrete: (share of rows alone in their joint cell) x (the table's estimate), in
# nats, from which it warns (benchmarks/ksg_discrete.py --channels-only)
ALONE_IN_CELL_WARN = 0.05


def _tables(*parts: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """For fully discrete ``x, y`` (or ``x, y, z``): each row's cell size in every space the
    mixed rule counts in (``xy``, ``x``, ``y``; given ``z``: ``xyz``, ``xz``, ``yz``,
    ``z``), and the run information about the table: ``discrete_cells`` (observed values
    of each side and of the joint table, and ``n``), ``plugin_bias``, Miller-Madow's
    estimate of the plug-in estimate's upward bias, ``(K_xy - K_x - K_y + 1) / (2 n)``
    or, given ``z``, ``(K_xyz - K_xz - K_yz + K_z) / (2 n)``, from the observed cells;
    without ``z``, also ``rows_alone_in_cell``, the rows whose joint cell holds no other
    row, and ``rows_alone_in_value``, those whose X value or Y value no other row has."""
    named = dict(zip("xyz", parts))
    spaces = ("xy", "x", "y") if len(parts) == 2 else ("xyz", "xz", "yz", "z", "x", "y")
    sizes, counts = {}, {}
    for space in spaces:
        inverse, per_cell = np.unique(np.hstack([named[side] for side in space]), axis=0,
                                      return_inverse=True, return_counts=True)[1:]
        sizes[space], counts[space] = per_cell[inverse.reshape(-1)], per_cell.size
    n = parts[0].shape[0]
    excess = (counts["xy"] - counts["x"] - counts["y"] + 1 if len(parts) == 2
              else counts["xyz"] - counts["xz"] - counts["yz"] + counts["z"])
    joint = "".join(named)
    cells = {**{side: counts[side] for side in named}, joint: counts[joint], "n": n}
    info = {"discrete_cells": cells, "plugin_bias": excess / (2.0 * n)}
    if len(parts) == 2:
        info["rows_alone_in_cell"] = int(np.count_nonzero(sizes["xy"] == 1))
        info["rows_alone_in_value"] = int(np.count_nonzero((sizes["x"] == 1)
                                                           | (sizes["y"] == 1)))
    return sizes, info


def _rows_alone(cells: dict[str, int], alone: int, estimate: float, effect: str,
                left_out: str = "", of: str = "") -> str | None:
    """The :class:`DiscreteBiasWarning` for a table of X's and Y's discrete values
    (``cells``: their observed values, joint cells and ``n``) in which ``alone`` rows are
    alone in their joint cell, or None where it need not warn.  A combination seen once is
    weighed as if it were about as common as its values make it look; on tables with a few
    full cells and many near-empty ones (a strong dependence with some noise) those rows
    are the rarest combinations, and on K-ary symmetric channels the mean error was 0.2 to
    1.1 times their share times the estimate as categories, and from -1.6 to +2.1 times it
    as numbers (``benchmarks/ksg_discrete.py --channels-only``), whatever the mean rows
    per cell.  It
    warns from :data:`ALONE_IN_CELL_WARN` nats of that product; ``left_out`` names the
    terms that left those rows out, if any, and ``of`` what ``estimate`` is of, where it
    is not the estimate returned."""
    n = cells["n"]
    product = alone / n * max(estimate, 0.0)
    if product < ALONE_IN_CELL_WARN:
        return None
    return (f"KSG: the table of X's and Y's discrete values ({cells['x']} and {cells['y']} "
            f"values, {cells['xy']} joint cells at n = {n}) has {alone} rows "
            f"({alone / n:.0%}) alone in their cell, at an estimate of {estimate:.3f} nats{of}: "
            "combinations seen once are weighed as if they were common, and the estimate "
            f"{effect}, on the order of their share times the estimate ({product:.3f} nats "
            "here). " + (f"They were left out of {left_out}. " if left_out else "")
            + "More rows shrink the error.")


def as_categories(parts: tuple[np.ndarray, ...], flags: tuple[np.ndarray, ...], k: int,
                  ) -> tuple[tuple[np.ndarray, ...], np.ndarray, dict[str, int]]:
    """The discrete columns of ``parts`` (``flags``, one boolean array per part) as
    categories, for the mixed rule: each one's values are replaced by their rank times a
    gap wider than any distance within the continuous columns, so that two rows are at
    distance 0 in it when they share the value and farther apart than any continuous
    neighbour when they do not. A *stratum* is a set of rows that share every discrete
    value; a row's neighbours are then taken within its stratum: ``k_each`` is ``k`` or, in
    a stratum of ``s <= k`` rows, ``s - 1``. Where there are continuous columns, rows alone
    in their stratum have no neighbour and are left out (returned parts hold the rest);
    where there are none, every row is kept (the mixed rule's coincidence counts apply)."""
    continuous = [a[:, ~f] for a, f in zip(parts, flags)]
    dims = sum(c.shape[1] for c in continuous)
    width = max((float(np.ptp(c, axis=0).max()) for c in continuous if c.shape[1]),
                default=0.0)
    gap = 2.0 * math.sqrt(max(dims, 1)) * width + 1.0
    encoded, codes = [], []
    for a, f in zip(parts, flags):
        a = np.array(a, dtype=np.float64, copy=True)
        for j in np.flatnonzero(f):
            inverse = np.unique(a[:, j], return_inverse=True)[1].reshape(-1)
            a[:, j] = inverse * gap
            codes.append(inverse)
        encoded.append(a)
    stratum, counts = np.unique(np.column_stack(codes), axis=0, return_inverse=True,
                                return_counts=True)[1:]
    size = counts[stratum.reshape(-1)]
    keep = size > 1 if dims else np.ones(size.shape[0], dtype=bool)
    info = {"discrete_strata": int(counts.size),
            "rows_alone_in_stratum": int(size.shape[0] - np.count_nonzero(keep))}
    k_each = np.minimum(k, size[keep] - 1)
    return tuple(a[keep] for a in encoded), k_each, info


def discrete_columns(a: np.ndarray) -> np.ndarray:
    """Which columns of ``a`` (n, d) look discrete: fewer than ``max(20, n / 20)`` distinct
    values, and at most ``n / 2`` (each value seen twice on average)."""
    n = a.shape[0]
    return _distinct_per_column(a) < min(max(20.0, n / 20.0), n / 2.0 + 1.0)


def warn_copied_continuous_rows(who: str, effect: str, *sides: np.ndarray) -> None:
    """:func:`~.base.warn_copied_rows` on the columns of ``sides`` that neither
    :func:`discrete_columns` nor :func:`many_valued_ties` finds: rows of discrete values
    repeat by nature, and the latter have a warning of their own."""
    warn_copied_rows(who, effect, *(a[:, ~(discrete_columns(a) | many_valued_ties(a))]
                                    for a in sides))


# A column in which this share of the rows or more repeat an earlier value is heavily tied
HEAVY_TIES = 0.5


def many_valued_ties(a: np.ndarray) -> np.ndarray:
    """Which columns of ``a`` (n, d) hold integers only, heavily tied (:data:`HEAVY_TIES`
    of the rows or more repeat an earlier value), yet too many distinct ones for
    :func:`discrete_columns`: 20 labels in 100 to 400 rows, say.  Neither setting of
    ``discrete`` reads them well if they are labels: as numbers their ties are broken by
    noise and their codes' order counts; as categories their table has too few rows per
    cell.  Measurements on a decimal grid are left out: the noise reads them well (a
    bivariate Gaussian rounded to 0.01-0.1, n >= 1,000: within 0.02 nats of its MI).  The
    test is of the values as given, so the same grid in whole units (counts, or a
    measurement in mmHg) is taken for integers and warns."""
    n = a.shape[0]
    repeated = 1.0 - _distinct_per_column(a) / max(n, 1)
    integers = np.all(a == np.round(a), axis=0)
    return (repeated >= HEAVY_TIES) & integers & ~discrete_columns(a)


# In this thread or task, while copies of a sample are estimated (bootstrap replicates,
# permuted copies): the discrete flags of the sample's columns, per side ("x", "y", "z"),
# numbered as the sample's; a copy's estimate takes these rather than its own.
_SAMPLE_FLAGS: ContextVar[dict[str, np.ndarray] | None] = ContextVar(
    "ksg_sample_flags", default=None)


class KSG(Estimator):
    """KSG estimator, algorithm 1 of Kraskov et al. (2004).

    Intervals use the "subsample" bootstrap of :mod:`.base` (subsamples of
    ``n // 2`` distinct rows, rescaled and recentred): resampling with
    replacement would put duplicated rows at distance zero from each other,
    and the tie-breaking noise cannot repair that (a duplicate stays the
    nearest neighbour of its copy), so every replicate would be biased far
    upwards.

    Parameters
    ----------
    k
        Number of neighbours; needs ``n > k + 1`` rows.
    metric
        Norm inside the X space and inside the Y space: "chebyshev" (maximum
        norm, the original) or "euclidean" (as in benchmark-mi). The joint
        space always uses the maximum of the two.
    standardize
        Centre each column and divide it by its standard deviation first
        (KSG is not invariant to rescaling a column). Without it the columns
        keep their relative scale; both sides are divided by one common power
        of two, which leaves the estimate unchanged and keeps distances finite
        at any magnitude.
    jitter
        Standard deviation of the tie-breaking noise relative to each
        column's standard deviation; 0 turns it off (see module docs).
    seed
        Seed of the tie-breaking noise.
    algorithm
        "auto", "tree" or "brute"; all give the same counts.
    discrete
        False (default): every column is continuous (algorithm 1, ties broken by the
        noise). "auto": the columns that :func:`discrete_columns` finds discrete (few
        distinct values) are categories; True: every column is discrete, its values
        taken as numbers (see "Discrete and mixed data" above). When any column is
        discrete, :meth:`estimate` uses the mixed-KSG estimator of Gao, Kannan, Oh &
        Viswanath (2017) with no noise on the discrete columns; ``last_info``
        records ``estimator_used``, ``discrete_as`` ("categories" or "numbers") and
        the discrete columns (``discrete_x``, ``discrete_y``: indices among the
        non-constant columns).

    Conditional mutual information
    ------------------------------
    :meth:`estimate_conditional` uses the Frenzel-Pompe estimator (Frenzel & Pompe,
    Phys. Rev. Lett. 99, 204101, 2007)::

        I(X; Y | Z) = psi(k) - < psi(n_xz(i) + 1) + psi(n_yz(i) + 1) - psi(n_z(i) + 1) >_i

    with ``eps(i)`` the k-th neighbour distance under ``max(|dx|, |dy|, |dz|)`` and the
    counts strictly inside ``eps(i)`` in the XZ, YZ and Z spaces (see
    :func:`conditional_counts`); z gets the same standardisation and noise as x and y
    (noise drawn for x, then y, then z). "auto" chooses the strategy from
    ``dx + dy + dz``; with the Euclidean metric it is always "brute". With a discrete
    column found (``discrete`` set), the conditional form of the mixed estimator is used
    (:func:`mixed_conditional_counts`).
    """

    name = "KSG"
    bootstrap = "subsample"
    # what a TiedDataWarning advises, after naming the column: with discrete=False about
    # a column that discrete_columns finds (tie_advice), and with False or "auto" about
    # one of many_valued_ties (many_values_advice)
    tie_advice = ("with discrete=False its ties are broken by random noise, so the estimate "
                  "moves with the noise's seed and is less accurate on discrete data. "
                  "KSG(discrete='auto') uses the mixed-KSG estimator on such columns.")
    many_values_advice = (
        "too many values for discrete='auto' to take as categories, so its ties are broken "
        "by random noise and its values read as numbers. That suits counts and "
        "measurements in whole units; if they are labels, KSG can be off by tenths of a nat "
        "or more (K-ary symmetric channels of 20 to 50 labels, n = 100 to 800: from -1.0 to "
        "+0.12 nats). More rows, or fewer values (rare labels merged), make it reliable.")

    #: What the calling thread's latest estimate used.
    _info = PerThread(dict)

    def __init__(
        self,
        k: int = 5,
        metric: str = "chebyshev",
        standardize: bool = True,
        jitter: float = 1e-10,
        seed: int = 0,
        algorithm: str = "auto",
        discrete: bool | str = False,
    ) -> None:
        if isinstance(k, (bool, np.bool_)) or not (
                isinstance(k, (int, np.integer))
                or (isinstance(k, (float, np.floating)) and float(k).is_integer())) or k < 1:
            raise ValueError(f"k must be a positive integer; got {k!r}")
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) \
                or seed < 0:
            raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
        if isinstance(jitter, (bool, str)) or not isinstance(jitter, (int, float, np.number)):
            raise ValueError(f"jitter must be a finite number >= 0; got {jitter!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}")
        if not (jitter >= 0.0 and math.isfinite(jitter)):
            raise ValueError(f"jitter must be a finite number >= 0; got {jitter!r}")
        self.k = int(k)
        self.metric = metric
        self.standardize = check_flag(standardize, "standardize")
        self.jitter = float(jitter)
        self.seed = int(seed)
        if not (isinstance(discrete, bool) or discrete == "auto"):
            raise ValueError(f"discrete must be False, True or 'auto'; got {discrete!r}")
        self.algorithm = algorithm
        self.discrete = discrete

    def settings(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "metric": self.metric,
            "standardize": self.standardize,
            "jitter": self.jitter,
            "seed": self.seed,
            "algorithm": self.algorithm,
            "discrete": self.discrete,
        }

    @property
    def min_rows(self) -> int:
        # with k + 1 rows every row is among the k nearest neighbours of every other, and
        # the estimate is 0 whatever the data
        return self.k + 2

    def _who(self) -> str:
        return (f"KSG with k={self.k} (n must exceed k + 1: with k + 1 rows every row is a "
                "neighbour of every other)")

    def choose_algorithm(self, n: int, dim: int) -> str:
        """The strategy "auto" picks for ``n`` rows and ``dim = dx + dy``."""
        if self.algorithm != "auto":
            return self.algorithm
        for max_dim, min_n in _TREE_FROM:
            if dim <= max_dim:
                return "tree" if n >= min_n else "brute"
        return "brute"

    def _scaled(self, *sides: np.ndarray) -> tuple[np.ndarray, ...]:
        """Standardised columns, or without ``standardize`` (with ``jitter``) each column
        less its median (the distances are unchanged but for rounding), then all sides
        divided by one power of two (exact) so that no distance overflows or underflows
        (see :mod:`.base`, "Scale").
        Centring keeps the tie-breaking noise, relative to a column's spread, above the
        rounding step of its values: on a column of 0.1-steps offset by 1e9 it rounded
        away, and ties stayed unbroken (0.768 nats for 0.539 at offset 0, n = 1,000,
        correlation 0.8)."""
        if self.standardize:
            return tuple(standardize_columns(a, name) for a, name in zip(sides, "xyz"))
        together = np.hstack(sides)
        if self.jitter > 0.0:         # without noise, the values are used as they are
            together = together - np.median(together, axis=0)
        together = scale_to_unit(together, axis=None)
        edges = np.cumsum([a.shape[1] for a in sides])[:-1]
        return tuple(np.split(together, edges, axis=1))

    def _jittered(self, a: np.ndarray, rng: np.random.Generator,
                  exact: np.ndarray | None = None) -> np.ndarray:
        """``a`` with the tie-breaking noise, none on the columns flagged in ``exact``."""
        if self.jitter > 0.0:
            noise = rng.standard_normal(a.shape) * (self.jitter * a.std(axis=0))
            if exact is not None:
                noise[:, exact] = 0.0
            a = a + noise
        return a

    def _discrete_flags(self, a: np.ndarray, side: str | None = None) -> np.ndarray:
        """Which columns of ``a`` are discrete; for a copy of a sample, those of the sample
        (:meth:`discreteness_of`), its columns numbered as the sample's (``side``)."""
        if self.discrete != "auto":
            return np.full(a.shape[1], bool(self.discrete))
        sample = _SAMPLE_FLAGS.get()
        if sample is None or side not in sample:
            return discrete_columns(a)
        return sample[side][[column_number(side, j) for j in range(a.shape[1])]]

    @contextmanager
    def discreteness_of(self, **sides: ArrayLike) -> Iterator[None]:
        """Inside the block (this thread or task only), estimates of copies of a sample
        (its rows resampled or permuted, constant columns dropped or not) take as discrete
        the columns this estimator finds discrete in the sample's own ``x``, ``y`` (and
        ``z``), however few distinct values a copy keeps: :func:`discrete_columns` on a
        copy can decide otherwise, and its estimate would then use another estimator than
        the sample's (65 values of a column rounded to 0.1 at n = 2,000 were categories for
        the estimate and continuous for its half-size replicates; a column of 20 values,
        continuous at n = 400, became discrete in 6 of 100 local permutations)."""
        flags = {side: discrete_columns(np.asarray(a, dtype=np.float64))
                 for side, a in sides.items()} if self.discrete == "auto" else None
        token = _SAMPLE_FLAGS.set(flags)
        try:
            yield
        finally:
            _SAMPLE_FLAGS.reset(token)

    def _bootstrap_values(self, x: np.ndarray, y: np.ndarray, n_boot: int, seed: int,
                          center: float | None) -> np.ndarray:
        """The base class's replicates, each taking as discrete the columns the sample's own
        estimate does (:meth:`discreteness_of`)."""
        with self.discreteness_of(x=x, y=y):
            return super()._bootstrap_values(x, y, n_boot, seed, center)

    def tie_advice_for(self, a: np.ndarray) -> str:
        """What a :class:`TiedDataWarning` about the columns ``a`` advises (for callers
        that name the tied variables themselves, such as ``mi_matrix``)."""
        if self.discrete is False and discrete_columns(a).any():
            return self.tie_advice
        return self.many_values_advice

    def _warn_sample_ties(self, x: np.ndarray, y: np.ndarray) -> None:
        kept = [kept_columns(a.shape[1], constant_columns(a)) for a in (x, y)]
        with numbered_as_given(x=kept[0], y=kept[1]):
            self._warn_discrete(x[:, kept[0]], y[:, kept[1]])

    def tie_flags(self, a: np.ndarray) -> np.ndarray:
        """Which columns of ``a`` a :class:`TiedDataWarning` is about: with
        ``discrete=False``, those :func:`discrete_columns` finds (other settings handle
        them, and do not warn); with ``False`` or ``"auto"``, those of
        :func:`many_valued_ties`."""
        if self.discrete is True:
            return np.zeros(np.shape(a)[1], dtype=bool)
        flags = many_valued_ties(a)
        return flags | discrete_columns(a) if self.discrete is False else flags

    def _warn_discrete(self, *sides: np.ndarray) -> None:
        """One :class:`TiedDataWarning` at most.  With ``discrete=False``, it names the
        first column that :func:`discrete_columns` finds discrete: the noise breaks its
        ties, so the estimate moves with the noise's seed and errs more than the mixed rule
        (on the discrete check families at n = 300, a mean absolute error 1.3 to 6 times
        the mixed rule's; ``benchmarks/ksg_discrete.py``).  Otherwise, with ``False`` or
        ``"auto"``, it names the first column of :func:`many_valued_ties`."""
        if self.discrete is True:
            return
        if self.discrete is False:
            for side, a in zip("xyz", sides):
                found = np.flatnonzero(discrete_columns(a))
                if found.size:
                    warn(f"KSG: {side} column {column_number(side, int(found[0]))} has "
                         f"few distinct values; {self.tie_advice}", TiedDataWarning)
                    return
        for side, a in zip("xyz", sides):
            found = np.flatnonzero(many_valued_ties(a))
            if found.size:
                j = int(found[0])
                distinct = int(_distinct_per_column(a[:, j:j + 1])[0])
                warn(f"KSG: {side} column {column_number(side, j)} holds integers that "
                     f"repeat in {1.0 - distinct / a.shape[0]:.0%} of its {a.shape[0]} rows, "
                     f"with {distinct} distinct values: {self.many_values_advice}",
                     TiedDataWarning)
                return

    def _warn_sparse_table(self, info: dict[str, Any], n: int, estimate: float) -> None:
        """With discrete columns, a :class:`DiscreteBiasWarning` where their combinations
        (strata; for a fully discrete sample, the joint table's cells) hold few rows each,
        or, for a table of X's and Y's values, where many rows are alone in their cell at
        a high estimate (:func:`_rows_alone`; as numbers, only where few rows are alone in
        their X or Y value: a zero-inflated column is no table), else a
        :class:`SmallSampleWarning` where 5% of the rows or more were alone in theirs and
        left out (see "Discrete and mixed data"): ``info`` is the estimate's run
        information, ``n`` the rows given, ``estimate`` its value."""
        if info.get("discrete_as") == "numbers":
            cells = info.get("discrete_cells")
            if cells is None:
                return
            if "z" not in cells and info["plugin_bias"] >= DISCRETE_BIAS_WARN:
                warn(f"KSG: X and Y are both discrete ({cells['x']} and {cells['y']} values, "
                     f"{cells['xy']} joint cells at n = {cells['n']}): the mixed rule's "
                     "estimate is then about the plug-in one, biased up by about "
                     f"(K_xy - K_x - K_y + 1) / (2n) = {info['plugin_bias']:.3f} nats here. "
                     "More rows shrink it; KSG() (discrete=False) errs less on such tables.",
                     DiscreteBiasWarning)
            elif "z" in cells and n < ROWS_PER_CONDITIONAL_CELL_NUMBERS_WARN * cells["xyz"]:
                warn(f"KSG: X, Y and Z are all discrete ({cells['x']}, {cells['y']} and "
                     f"{cells['z']} values, {cells['xyz']} joint cells at n = {cells['n']}, "
                     f"{n / cells['xyz']:.1f} rows per cell): with the values as numbers and "
                     f"fewer than {ROWS_PER_CONDITIONAL_CELL_NUMBERS_WARN} rows per cell, the "
                     "estimate of I(X;Y|Z) reads high, the more so the fewer (Miller-Madow's "
                     "estimate of the plug-in bias, (K_xyz - K_xz - K_yz + K_z) / (2n), is "
                     f"{info['plugin_bias']:.3f} nats here). More rows shrink it; from about 4 "
                     'rows per cell KSG(discrete="auto") errs less on such tables (below that '
                     "neither is right).", DiscreteBiasWarning)
            elif ("z" not in cells and max(cells["x"], cells["y"]) <= n / 2
                  and info["rows_alone_in_value"] < 0.05 * n and (message := _rows_alone(
                      cells, info["rows_alone_in_cell"], estimate, "can err high or low"))):
                warn(message, DiscreteBiasWarning)
            return
        if info.get("discrete_as") != "categories":
            return
        strata, left = info["discrete_strata"], info["rows_alone_in_stratum"]
        cells = info.get("discrete_cells")
        sides = [side.upper() for side in "xyz" if info.get(f"discrete_{side}")]
        table = "X" in sides and "Y" in sides     # groups are cells of an X-Y table
        if sides == ["Z"] and n < ROWS_PER_Z_GROUP_WARN * strata:
            warn(f"KSG: Z's discrete columns split the n = {n} rows into {strata} groups of "
                 f"equal values ({n / strata:.1f} rows per group, {left} alone and left out), "
                 "and I(X;Y|Z) is estimated within each group: with fewer than "
                 f"{ROWS_PER_Z_GROUP_WARN} rows per group it sees little of the dependence "
                 "and can read far low, the more so the fewer. More rows shrink the error; "
                 "KSG() (discrete=False), which takes Z's values as numbers, read such "
                 "samples closer.", DiscreteBiasWarning)
        elif n < (threshold := ROWS_PER_CONDITIONAL_CELL_WARN if cells is not None
                  and "z" in cells else ROWS_PER_CELL_WARN) * strata:
            if cells is not None:
                names = [side for side in "xyz" if side in cells]
                counts = [str(cells[side]) for side in names]
                what = (f"{', '.join(s.upper() for s in names[:-1])} and {names[-1].upper()} "
                        f"are {'both' if len(names) == 2 else 'all'} discrete "
                        f"({', '.join(counts[:-1])} and {counts[-1]} values, {strata} joint "
                        f"cells at n = {n}, {n / strata:.1f} rows per cell)")
                effect = ("the estimate reads high, the more so the fewer. More rows shrink "
                          "it; KSG() (discrete=False) reads lower on such tables.")
            else:
                what = (f"the discrete columns of {' and '.join(sides)} split the n = {n} rows "
                        f"into {strata} groups of equal values ({n / strata:.1f} rows per "
                        f"group, {left} alone and left out), and neighbours are searched "
                        "within a group")
                effect = (
                    "the estimate reads high, the more so the fewer (the groups are cells of "
                    "a table of X's and Y's discrete columns). More rows shrink it; KSG() "
                    "(discrete=False) read such samples far closer." if table
                    else "the estimate sees little of the dependence within a group and can "
                    "read far low. More rows shrink the error.")
            unit = "cell" if cells is not None else "group"
            warn(f"KSG: {what}: with fewer than {threshold} rows per {unit} {effect}",
                 DiscreteBiasWarning)
        elif (cells is not None and "z" not in cells and (message := _rows_alone(
                cells, info["rows_alone_in_cell"], estimate, "reads high"))):
            warn(message, DiscreteBiasWarning)
        elif left >= 0.05 * n:
            warn(f"KSG: {left} of {n} rows are alone in their combination of discrete values "
                 f"({strata} combinations) and were left out of the estimate; more rows per "
                 "value, or fewer discrete columns, keep them in.", SmallSampleWarning)

    def _estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        n = x.shape[0]
        rng = np.random.default_rng(seed)
        self._warn_discrete(x, y)
        warn_copied_continuous_rows("KSG", "each copy is its own nearest neighbour", x, y)
        flags_x, flags_y = self._discrete_flags(x, "x"), self._discrete_flags(y, "y")
        if self.discrete == "auto" and flags_x.all() and flags_y.all():
            value, self._info = self._table_estimate((x, y), (flags_x, flags_y))
            return value
        if self.discrete == "auto" and flags_x.any() and flags_y.any():
            value, self._info = self._chain_rule(x, y, flags_x, flags_y, seed)
            return value
        x, y = self._scaled(x, y)
        x = self._jittered(x, rng, flags_x)
        y = self._jittered(y, rng, flags_y)
        algorithm = self.choose_algorithm(n, x.shape[1] + y.shape[1])
        if not (flags_x.any() or flags_y.any()):
            _, nx, ny = ksg_counts(x, y, self.k, self.metric, algorithm)
            self._info = {"algorithm_used": algorithm, "estimator_used": "KSG-1"}
            value = digamma(self.k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1))
            return float(value)
        if self.metric != "chebyshev":
            algorithm = "brute"
        (x, y), k_each, strata = self._strata((x, y), (flags_x, flags_y))
        rho, k_i, nx, ny = mixed_counts(x, y, self.k, self.metric, algorithm, k_each=k_each)
        info = {
            "algorithm_used": algorithm,
            "estimator_used": "mixed-KSG",
            "discrete_x": np.flatnonzero(flags_x).tolist(),
            "discrete_y": np.flatnonzero(flags_y).tolist(),
            "points_at_distance_zero": int(np.count_nonzero(rho <= 0.0)),
            **strata,
        }
        if flags_x.all() and flags_y.all():
            info.update(_tables(x, y)[1])
        self._info = info
        value = float(digamma(rho.shape[0]) + np.mean(digamma(k_i) - digamma(nx + 1)
                                                      - digamma(ny + 1)))
        self._warn_sparse_table(info, n, value)
        return value

    def _table_estimate(self, parts: tuple[np.ndarray, ...], flags: tuple[np.ndarray, ...]
                        ) -> tuple[float, dict[str, Any]]:
        """The mixed rule as categories where every column is discrete, from the rows
        sharing each row's cell: every row's k-th neighbour is then at distance 0, so it
        is ``psi(n) + mean(psi(c_xy) - psi(c_x) - psi(c_y))`` for I(X;Y) and
        ``mean(psi(c_xyz) - psi(c_xz) - psi(c_yz) + psi(c_z))`` for I(X;Y|Z), ``c`` the
        rows of each row's cell in that space: equal to the neighbour search's value
        (``tests/test_mixed_ksg.py``) at a fraction of its cost (about n log n)."""
        n = parts[0].shape[0]
        sizes, tables = _tables(*parts)
        if len(parts) == 2:
            value = digamma(n) + np.mean(digamma(sizes["xy"]) - digamma(sizes["x"])
                                         - digamma(sizes["y"]))
        else:
            value = np.mean(digamma(sizes["xyz"]) - digamma(sizes["xz"])
                            - digamma(sizes["yz"]) + digamma(sizes["z"]))
            del tables["plugin_bias"]             # reported for the numbers only, given Z
        joint = tables["discrete_cells"]["xy" if len(parts) == 2 else "xyz"]
        info = {"algorithm_used": "cell counts", "estimator_used": "mixed-KSG" + (
                    "" if len(parts) == 2 else " (conditional)"),
                **{f"discrete_{side}": np.flatnonzero(f).tolist()
                   for side, f in zip("xyz", flags)},
                "points_at_distance_zero": n, "discrete_as": "categories", "rows_used": n,
                "discrete_strata": joint, "rows_alone_in_stratum": 0, **tables}
        self._warn_sparse_table(info, n, float(value))
        return float(value), info

    def _chain_rule(self, x: np.ndarray, y: np.ndarray, flags_x: np.ndarray,
                    flags_y: np.ndarray, seed: int) -> tuple[float, dict[str, Any]]:
        """I(X;Y) and its run information where X and Y both have discrete columns (Xd, Yd)
        and continuous ones (Xc, Yc) sit beside them on one side or both, by the chain rule
        (see "Discrete and mixed data"): ``I(Xd;Yd) + I(Xd;Yc|Yd) + I(Xc;Yc|Xd) +
        I(Xc;Yd|Xd,Yc)``, the terms with an empty side left out.  The side whose discrete
        columns take fewer values comes first (so I(Xc;Yc|Xd) is searched within the fewer,
        larger groups); with as many values on each side, the estimate is the mean of both
        orders, so that it does not depend on which side is called X.  In one search the
        rows' neighbours would be sought within the cells of the Xd-Yd table, and where many
        cells held few rows the estimate read far high or low (rows alone in a cell, left
        out, are those of the rarest combinations).  One :class:`DiscreteBiasWarning` below
        :data:`ROWS_PER_CELL_WARN` rows per cell, or where the rows alone in theirs are
        many for the table term's value (:func:`_rows_alone`), else a
        :class:`SmallSampleWarning` where 5% of the rows or more are alone in theirs (left
        out of the terms searched within the cells)."""
        values_x, values_y = (len(np.unique(a[:, f], axis=0)) for a, f in
                              ((x, flags_x), (y, flags_y)))
        if flags_x.all() or flags_y.all():
            orders = [bool(flags_y.all())]          # the wholly discrete side first
        else:
            orders = [values_x > values_y] if values_x != values_y else [False, True]
        terms, within, sums = {}, {}, []
        for swap in orders:                          # swap: Y's side is written first
            names = str.maketrans("XY", "YX") if swap else str.maketrans("", "")
            parts = (y, x, flags_y, flags_x) if swap else (x, y, flags_x, flags_y)
            got, table, searched = self._chain_rule_terms(*parts, seed)
            sums.append(sum(got.values()))           # the same sum whichever side is X
            terms.update({term.translate(names): value for term, value in got.items()})
            within.update({term.translate(names): info for term, info in searched.items()})
        cells = {"x": values_x, "y": values_y, "xy": table["xy"], "n": table["n"]}
        alone, table_estimate = table["alone"], table["estimate"]
        info = next(iter(within.values()))
        n = x.shape[0]
        run = {
            "algorithm_used": info["algorithm_used"],
            "estimator_used": "mixed-KSG (chain rule)",
            "discrete_x": np.flatnonzero(flags_x).tolist(),
            "discrete_y": np.flatnonzero(flags_y).tolist(),
            "discrete_as": "categories",
            "chain_rule": terms,
            "chain_rule_orders": len(orders),
            "discrete_cells": cells,
            "discrete_strata": info["discrete_strata"],
            "rows_alone_in_stratum": info["rows_alone_in_stratum"],
            "rows_alone_in_cell": alone,
            "rows_used": info["rows_used"],
            "rows_used_in": " and ".join(within),
        }
        sides = [f"{side} {'is discrete' if flags.all() else 'has discrete columns'} "
                 f"({cells[side.lower()]} values"
                 + (")" if flags.all() else " beside continuous ones)")
                 for side, flags in (("X", flags_x), ("Y", flags_y))]
        shown = " + ".join(list(terms)[:4]) + (", and the mean with the other order"
                                               if len(orders) == 2 else "")
        if n < ROWS_PER_CELL_WARN * cells["xy"]:
            warn(f"KSG: {sides[0]} and {sides[1]}: their table has {cells['xy']} cells at "
                 f"n = {n} ({n / cells['xy']:.1f} rows per cell). The estimate is {shown}, and "
                 f"with fewer than {ROWS_PER_CELL_WARN} rows per cell it can err by tenths of a "
                 "nat, high or low. More rows shrink the error.", DiscreteBiasWarning)
        elif message := _rows_alone(cells, alone, table_estimate, "can err high or low",
                                    run["rows_used_in"], " from the table alone"):
            warn(message, DiscreteBiasWarning)
        elif run["rows_alone_in_stratum"] >= 0.05 * n:
            warn(f"KSG: {run['rows_alone_in_stratum']} of {n} rows are alone in their cell "
                 f"of the table of X's and Y's discrete columns ({cells['xy']} cells) and were "
                 f"left out of {run['rows_used_in']}; more rows per cell keep them in.",
                 SmallSampleWarning)
        return float(sum(sums) / len(sums)), run

    def _chain_rule_terms(self, x: np.ndarray, y: np.ndarray, flags_x: np.ndarray,
                          flags_y: np.ndarray, seed: int
                          ) -> tuple[dict[str, float], dict[str, Any], dict[str, dict]]:
        """The terms of :meth:`_chain_rule` in the order written there (Y has continuous
        columns), by name; the observed values of Xd, Yd and their table (``x``, ``y``,
        ``xy``, ``n``), with the rows alone in their cell of it (``alone``) and the table
        term's value (``estimate``); and the run information of each term searched within
        the cells of that table."""
        xd, xc, yd, yc = x[:, flags_x], x[:, ~flags_x], y[:, flags_y], y[:, ~flags_y]
        def on(a): return np.ones(a.shape[1], dtype=bool)
        def off(a): return np.zeros(a.shape[1], dtype=bool)
        d = "Xd" if xc.shape[1] else "X"
        with silenced(DiscreteBiasWarning, SmallSampleWarning):
            table, info = self._table_estimate((xd, yd), (on(xd), on(yd)))
            terms = {f"I({d};Yd)": table}
            cells = {**info["discrete_cells"], "alone": info["rows_alone_in_cell"],
                     "estimate": table}
            terms[f"I({d};Yc|Yd)"], first = self._mixed_conditional(
                xd, yc, yd, [on(xd), off(yc), on(yd)], seed)
            within = {f"I({d};Yc|Yd)": first}
            if xc.shape[1]:
                terms["I(Xc;Yc|Xd)"] = self._mixed_conditional(
                    xc, yc, xd, [off(xc), off(yc), on(xd)], seed)[0]
                terms["I(Xc;Yd|Xd,Yc)"], last = self._mixed_conditional(
                    xc, yd, np.hstack([xd, yc]),
                    [off(xc), on(yd), np.concatenate([on(xd), off(yc)])], seed)
                within["I(Xc;Yd|Xd,Yc)"] = last
        return terms, cells, within

    def _strata(self, parts: tuple[np.ndarray, ...], flags: tuple[np.ndarray, ...],
                ) -> tuple[tuple[np.ndarray, ...], np.ndarray | None, dict[str, Any]]:
        """The parts the mixed rule searches: with ``discrete="auto"`` the discrete
        columns become categories (:func:`as_categories`; a warning where 5% of the rows or
        more are alone in their stratum and left out); with ``discrete=True`` the values
        are kept as numbers (Gao et al.'s rule on every column)."""
        if self.discrete is True:
            return parts, None, {"discrete_as": "numbers"}
        n = parts[0].shape[0]
        parts, k_each, info = as_categories(parts, flags, self.k)
        kept = parts[0].shape[0]
        if kept < self.min_rows:
            raise TooFewRowsError(
                f"KSG: {info['rows_alone_in_stratum']} of {n} rows are alone in their "
                f"combination of discrete values ({info['discrete_strata']} combinations), "
                f"which leaves {kept} to estimate from, fewer than k + 2 = {self.min_rows}; "
                "use more rows, fewer discrete columns, or KSG() (discrete=False)")
        return parts, k_each, {"discrete_as": "categories", "rows_used": kept, **info}

    def _estimate_conditional(self, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                              seed: int) -> float:
        self._warn_discrete(x, y, z)
        warn_copied_continuous_rows("KSG", "each copy is its own nearest neighbour", x, y, z)
        flags = [self._discrete_flags(a, side) for a, side in zip((x, y, z), "xyz")]
        if self.discrete == "auto" and all(f.all() for f in flags):
            value, self._info = self._table_estimate((x, y, z), tuple(flags))
            return value
        if any(f.any() for f in flags):
            value, self._info = self._mixed_conditional(x, y, z, flags, seed)
            return value
        n = x.shape[0]
        rng = np.random.default_rng(seed)
        x, y, z = (self._jittered(a, rng) for a in self._scaled(x, y, z))
        algorithm = self.choose_algorithm(n, x.shape[1] + y.shape[1] + z.shape[1])
        if self.metric != "chebyshev":
            algorithm = "brute"
        _, nxz, nyz, nz = conditional_counts(x, y, z, self.k, self.metric, algorithm)
        self._info = {"algorithm_used": algorithm, "estimator_used": "Frenzel-Pompe"}
        value = digamma(self.k) - np.mean(digamma(nxz + 1) + digamma(nyz + 1)
                                          - digamma(nz + 1))
        return float(value)

    def _mixed_conditional(self, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                           flags: list[np.ndarray], seed: int
                           ) -> tuple[float, dict[str, Any]]:
        """The mixed conditional estimator and its run information: continuous columns
        jittered, discrete ones kept exact, coincident points counted
        (:func:`mixed_conditional_counts`)."""
        rng = np.random.default_rng(seed)
        parts = [self._jittered(a, rng, flag) for a, flag in zip(self._scaled(x, y, z), flags)]
        algorithm = self.choose_algorithm(x.shape[0], sum(a.shape[1] for a in parts))
        if self.metric != "chebyshev":
            algorithm = "brute"
        parts, k_each, strata = self._strata(tuple(parts), tuple(flags))
        rho, k_i, nxz, nyz, nz = mixed_conditional_counts(*parts, self.k, self.metric,
                                                          algorithm, k_each=k_each)
        info = {
            "algorithm_used": algorithm,
            "estimator_used": "mixed-KSG (conditional)",
            **{f"discrete_{side}": np.flatnonzero(f).tolist() for side, f in zip("xyz", flags)},
            "points_at_distance_zero": int(np.count_nonzero(rho <= 0.0)),
            **strata,
        }
        if self.discrete is True and all((_distinct_per_column(a) <= x.shape[0] / 2).all()
                                         for a in (x, y, z)):
            info.update(_tables(*parts)[1])     # a table (each value seen twice on average)
        value = float(np.mean(digamma(k_i) - digamma(nxz + 1) - digamma(nyz + 1)
                              + digamma(nz + 1)))
        self._warn_sparse_table(info, x.shape[0], value)
        return value, info

    def _run_info(self) -> dict[str, Any]:
        return dict(self._info)
