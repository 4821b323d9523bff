"""Column signs that make a sample's dependence read as positive, before the network sees it.

MI is unchanged when any column of X or of Y changes sign, and so, up to that sign, is the
network's input: the normal scores of ``-a`` are those of ``a`` negated.  The training
families of the shipped checkpoints depend positively (their correlations and loadings
are drawn from positive ranges), and the networks read negative dependence as almost
none: a Gaussian pair at rho = -0.6 (MI 0.223) reads 0.01-0.02 where rho = 0.6 reads
0.19-0.20.  :func:`orient` therefore flips, in each sample's normal scores, the columns
whose signs make the cross-correlation ``C`` between X's and Y's scores most positive:
the signs ``s``, ``t`` that maximise ``s' C t`` over the entries that count (below).

Flipping is gated.  At independence ``C`` is noise, and signs that line the noise up make
the network read slightly more dependence than it would on the sample as given (about
twice as much, on the shipped networks); so do signs that line up the noise among
columns whose dependence is positive already.  So only the entries of ``C`` that are
significant on their own count: each against its own standard error (robust to columns
that are uncorrelated but dependent, as under a heavy-tailed copula), at level 0.01 over
all ``dx dy`` entries together (Bonferroni).  A sample none of whose significant entries
is negative is read as given: by design at most 1 in 100 independent samples is turned,
whatever the correlations within each side.  A 1 + 1 Gaussian sample is turned where its score
correlation is below about ``-2.58 / sqrt(n)``; a negative dependence weaker than that
(MI about ``3.3 / n`` nats) may still read as none.  The same function of the data runs
on every copy of a permutation test, whose level therefore stays exact.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import ndtri, stdtrit

__all__ = ["best_signs", "entry_z", "orientation_signs", "orient", "LEVEL"]

LEVEL = 0.99           # share of independent samples left as they are
MIN_ROWS = 20          # from this many rows the sandwich spread; below, Student's t
FEWEST_ROWS = 4        # fewer rows are read as given
MAX_ROUNDS = 64        # alternating sign updates (each never lowers s' C t)
EXACT_SIDE = 12        # up to this many columns on the narrower side, every sign is tried


def best_signs(cross: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Signs ``s`` (``(dx,)``) and ``t`` (``(dy,)``) of ±1.0 that make ``s' C t`` largest,
    and that value; ``cross`` is ``C``, ``(dx, dy)``.  Exact where the narrower side has
    at most :data:`EXACT_SIDE` columns (for given signs of one side the other's best are
    the signs of its sums), else the best that alternating updates from the leading
    singular vectors of ``C`` find.  Of ``(s, t)`` and ``(-s, -t)``, which give the same
    value, the one flipping fewer columns is returned (a tie: ``s[0] = +1``); of other
    ties, the one flipping fewer columns of the narrower side."""
    c = np.asarray(cross, dtype=np.float64)
    if c.shape[0] > c.shape[1]:
        t, s, value = best_signs(c.T)
        return _fewer_flips(s, t, value)
    if c.shape[0] <= EXACT_SIDE:
        # every sign of the narrower side with s[0] = +1, fewest flips first
        flips = np.array(list(itertools.product((1.0, -1.0), repeat=c.shape[0] - 1)))
        flips = flips[np.argsort((flips < 0).sum(1), kind="stable")]
        every = np.concatenate([np.ones((len(flips), 1)), flips], axis=1)
        sums = every @ c
        k = int(np.argmax(np.abs(sums).sum(1)))
        s, t = every[k], _sign(sums[k])
    else:
        u, _, vt = np.linalg.svd(c)
        s, t = _sign(u[:, 0]), _sign(vt[0])
        for _ in range(MAX_ROUNDS):
            t_new = _sign(s @ c)
            s_new = _sign(c @ t_new)
            if np.array_equal(s_new, s) and np.array_equal(t_new, t):
                break
            s, t = s_new, t_new
    return _fewer_flips(s, t, float(s @ c @ t))


def _fewer_flips(s: np.ndarray, t: np.ndarray, value: float
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    flipped = int((s < 0).sum() + (t < 0).sum())
    total = s.size + t.size
    if 2 * flipped > total or (2 * flipped == total and s[0] < 0):
        return -s, -t, value
    return s, t, value


def _sign(a: np.ndarray) -> np.ndarray:
    return np.where(a >= 0, 1.0, -1.0)


def entry_z(x_scores: np.ndarray, y_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The correlations ``C`` (``(dx, dy)``) between X's and Y's columns and their
    z-scores, each against its own (sandwich) standard error ``sqrt((mean(x^2 y^2) -
    C^2) / n)`` of standardised columns: columns that are uncorrelated but dependent
    (sharing a heavy-tailed scale, say) get the wider spread they have, where ``1 / sqrt(n)``
    would call their noise significant.  A constant column has zeros."""
    n = x_scores.shape[0]
    sides = []
    for side in (x_scores, y_scores):
        a = np.asarray(side, dtype=np.float64)
        a = a - a.mean(axis=0)
        sd = np.sqrt((a * a).mean(axis=0))
        sides.append(np.divide(a, sd, out=np.zeros_like(a), where=sd > 0))
    xs, ys = (torch.from_numpy(side) for side in sides)
    # torch's products run on the thread pool the network runs on; numpy's would start
    # BLAS threads of their own beside it (twice the time of a large sample's estimate)
    cross = (xs.T @ ys).numpy() / n
    spread = np.maximum((xs * xs).T.matmul(ys * ys).numpy() / n - cross * cross, 0.0)
    z = np.divide(cross * math.sqrt(n), np.sqrt(spread), out=np.zeros_like(cross),
                  where=spread > 0)
    return cross, z


def orientation_signs(x_scores: np.ndarray, y_scores: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """The signs to give X's and Y's columns (``(dx,)``, ``(dy,)``), from their normal
    scores (``(n, dx)``, ``(n, dy)``); ``None`` where the sample stays as it is.

    The entries of ``C`` that count are those significant on their own: ``|z|``
    (:func:`entry_z`) beyond the normal quantile of ``1 - (1 - LEVEL) / (2 dx dy)``
    (below :data:`MIN_ROWS` rows, the correlation's t statistic beyond Student's quantile
    on ``n - 2`` degrees of freedom; below :data:`FEWEST_ROWS`, none).
    Where one of them is negative, the signs are those of :func:`best_signs` on these
    entries, one group of columns linked by them at a time, each group turned the way
    that flips fewer of its columns; columns with no such entry keep their sign."""
    n, dim_x = x_scores.shape
    dim_y = y_scores.shape[1]
    if n < FEWEST_ROWS:
        return None
    cross, z = entry_z(x_scores, y_scores)
    tail = (1.0 - LEVEL) / (2 * dim_x * dim_y)
    if n < MIN_ROWS:       # too few rows for the sandwich spread: Student's t of each one
        r = np.clip(cross, -1.0 + 1e-12, 1.0 - 1e-12)
        linked = np.abs(r) * math.sqrt(n - 2) / np.sqrt(1.0 - r * r) > float(stdtrit(n - 2,
                                                                                1.0 - tail))
    else:
        linked = np.abs(z) > float(ndtri(1.0 - tail))
    if not (linked & (cross < 0)).any():
        return None
    s, t = np.ones(dim_x), np.ones(dim_y)
    count, group = connected_components(
        csr_matrix(np.block([[np.zeros((dim_x, dim_x)), linked],
                             [linked.T, np.zeros((dim_y, dim_y))]])), directed=False)
    for g in range(count):
        rows, cols = group[:dim_x] == g, group[dim_x:] == g
        if rows.any() and cols.any():
            s[rows], t[cols], _ = best_signs(np.where(linked, cross, 0.0)[np.ix_(rows, cols)])
    if (s > 0).all() and (t > 0).all():
        return None
    return s, t


def orient(values: np.ndarray, n: int, dim_x: int, dim_y: int) -> None:
    """Flip, in place, the columns of one sample's normal scores ``values`` (``(N, D)``,
    its ``n`` rows first, its X then its Y columns first) that :func:`orientation_signs`
    names."""
    signs = orientation_signs(values[:n, :dim_x], values[:n, dim_x:dim_x + dim_y])
    if signs is not None:
        values[:n, :dim_x + dim_y] *= np.concatenate(signs).astype(values.dtype)
