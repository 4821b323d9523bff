"""MIST's neighbour correction: the network's error measured on a nearby elliptical copula.

MIST's errors on weakly dependent data are mostly biases of the network that stay at
every n.  For a sample (X, Y) the *neighbour* is an elliptical copula fitted to it whose
MI is known exactly:

* its dispersion is the correlation matrix of the sample's normal scores, with the X-Y
  block shrunk so that its Gaussian MI is the sample's Gaussian MI less the plug-in bias
  at this n (:func:`mistmodel.estimators.cca.gaussian_bias`);
* it is a Student-t copula, with every row's columns sharing one scale, when the
  sample's tails say so: a t copula fitted to all columns must gain clearly more
  likelihood over the Gaussian copula than t copulas fitted to X and to Y separately
  (:func:`shared_tail_nu`); otherwise it is the Gaussian copula.

Drawing samples of the same shape from it (:data:`DRAWS` of them) and running MIST on
the draws measures MIST's error there.  The corrected estimate is

    MIST(x, y) - w * (mean MIST(draw) - I(neighbour)),

a parametric-bootstrap bias correction: where the network errs about as much on (X, Y)
as on its neighbour, the error cancels and the estimate inherits the neighbour's
consistency in n.  It does not err alike everywhere: on strongly dependent data of
other shapes (additive noise at several nats) its error on the neighbour has another
sign and size.  The weight ``w`` is therefore 1 only where both MIST's estimate and the
neighbour's MI are below :data:`FULL_BELOW` nats and falls linearly to 0 at
:data:`NONE_ABOVE`.

Below :data:`ROWS_PER_COLUMN` rows per column the sample correlation of many columns is
mostly noise, and no copula is fitted.  The neighbour is then the sample's own X and Y
with the pairing of their rows shuffled (:class:`ShuffledNeighbour`): the independent
coupling of its two marginal samples, whose MI is exactly 0.  The correction subtracts
the network's mean estimate on :data:`SHUFFLED_DRAWS` shuffles, its bias at independence
for exactly these marginals, with full weight below :data:`SHUFFLED_FULL_BELOW` nats and
none above :data:`SHUFFLED_NONE_ABOVE`: there the network's bias at independence says
little about its bias on dependent data.  No copula is fitted where a
column repeats another (same ranks: the correlation is singular), and
:class:`mistmodel.MIST` also leaves samples with a heavily tied column alone: a
continuous copula is no neighbour of discrete data.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import gammaln, ndtri, stdtrit

from .copula import average_ranks
from .estimators.cca import gaussian_bias

__all__ = ["gaussian_mi", "shrink_cross", "copula_loglik", "score_correlation",
           "shared_tail_nu", "Neighbour", "ShuffledNeighbour", "neighbour", "fits_copula",
           "correction_weight", "copula_digest", "FULL_BELOW", "NONE_ABOVE",
           "ROWS_PER_COLUMN", "NU_GRID", "TAIL_EVIDENCE", "FIT_ROWS", "DRAWS", "DRAW_GROUPS", "SHUFFLED_DRAWS",
           "SHUFFLED_FULL_BELOW",
           "SHUFFLED_NONE_ABOVE", "SINGULAR", "canonical_order"]

FULL_BELOW = 0.5       # nats: full correction below this (estimate and neighbour's MI)
NONE_ABOVE = 1.0       # nats: no correction above this
ROWS_PER_COLUMN = 20   # below this many rows per column (dim_x + dim_y): shuffled rows
NU_GRID = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0)   # degrees of freedom tried
TAIL_EVIDENCE = 13.8   # twice the log-likelihood gain a shared t scale must show
FIT_ROWS = 2000        # rows the degrees of freedom are fitted on
DRAWS = 2              # draws from the neighbour, averaged
SHUFFLED_DRAWS = 8     # shuffles of a sample with few rows per column, averaged
DRAW_GROUPS = 8        # row groups a draw is read in, at most (see MIST's max_rows)
SHUFFLED_FULL_BELOW = 0.25   # nats: the weights with shuffles (few rows per column)
SHUFFLED_NONE_ABOVE = 0.5
SINGULAR = 1e-10       # smallest eigenvalue of a usable correlation matrix


def gaussian_mi(corr: np.ndarray, dim_x: int) -> float:
    """I(X;Y) of a Gaussian with correlation (or covariance) matrix ``corr``, X being its
    first ``dim_x`` coordinates: ``inf`` when only the whole matrix is singular, NaN when
    a side's block is; rounding a hair below 0 gives 0."""
    (sx, lx), (sy, ly), (s, lxy) = (np.linalg.slogdet(corr[:dim_x, :dim_x]),
                                    np.linalg.slogdet(corr[dim_x:, dim_x:]),
                                    np.linalg.slogdet(corr))
    if sx <= 0 or sy <= 0:
        return float("nan")
    if s <= 0:
        return float("inf")
    return max(0.0, 0.5 * float(lx + ly - lxy))


def _scaled_cross(corr: np.ndarray, dim_x: int, c: float) -> np.ndarray:
    out = corr.copy()
    out[:dim_x, dim_x:] *= c
    out[dim_x:, :dim_x] *= c
    return out


def shrink_cross(corr: np.ndarray, dim_x: int, target: float) -> np.ndarray:
    """``corr`` with its X-Y block scaled by the factor in [0, 1] that gives Gaussian MI
    ``target`` (bisection; the MI grows with the factor).  Each scaled matrix is a convex
    combination of ``corr`` and its block-diagonal part, hence a correlation matrix."""
    if target <= 0.0:
        return _scaled_cross(corr, dim_x, 0.0)
    if gaussian_mi(corr, dim_x) <= target:
        return corr.copy()
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if gaussian_mi(_scaled_cross(corr, dim_x, mid), dim_x) < target:
            lo = mid
        else:
            hi = mid
    return _scaled_cross(corr, dim_x, 0.5 * (lo + hi))


def copula_loglik(u: np.ndarray, nu: float, corr: np.ndarray | None = None) -> float:
    """Log-likelihood of pseudo-observations ``u`` ``(n, d)`` in (0, 1) under the Student-t
    copula with ``nu`` degrees of freedom (``inf``: the Gaussian copula) and dispersion
    ``corr`` (by default :func:`score_correlation` of ``u``).  A single column (d = 1) has
    log-likelihood 0; a singular dispersion (a column repeating another, as in tied or
    discrete data) gives ``-inf``.

    The dispersion is one matrix for every ``nu``: a Pearson correlation of each ``nu``'s
    own t-scores would be ruled by a few extreme rows at small ``nu`` and favour lighter
    tails than the data have."""
    n, d = u.shape
    if d == 1:
        return 0.0
    corr = score_correlation(u) if corr is None else corr
    try:
        chol = np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        return -np.inf
    logdet = 2.0 * np.log(np.diag(chol)).sum()
    if not np.isfinite(logdet) or logdet < -700.0:
        return -np.inf
    t = ndtri(u) if np.isinf(nu) else stdtrit(nu, u)
    half = np.linalg.solve(chol, t.T)                 # chol^-1 t', so q = |half|^2 per row
    q = np.einsum("ij,ij->j", half, half)
    if np.isinf(nu):
        return float(-0.5 * n * logdet - 0.5 * q.sum() + 0.5 * (t ** 2).sum())
    joint = (n * (gammaln((nu + d) / 2) - gammaln(nu / 2) - 0.5 * logdet)
             - (nu + d) / 2 * np.log1p(q / nu).sum())
    margins = (d * n * (gammaln((nu + 1) / 2) - gammaln(nu / 2))
               - (nu + 1) / 2 * np.log1p(t ** 2 / nu).sum())
    return float(joint - margins)


def score_correlation(u: np.ndarray) -> np.ndarray:
    """The correlation matrix of the normal scores of pseudo-observations ``u``: robust to
    heavy tails, and close to the dispersion of any elliptical copula."""
    return np.atleast_2d(np.corrcoef(ndtri(u), rowvar=False))


def _tail_gain(u: np.ndarray, corr: np.ndarray) -> tuple[float, float]:
    """The best degrees of freedom of :data:`NU_GRID` for ``u`` with dispersion ``corr``
    and its log-likelihood gain over the Gaussian copula (``inf`` and 0 when no t copula
    does better)."""
    gauss = copula_loglik(u, np.inf, corr)
    if not np.isfinite(gauss):
        return np.inf, 0.0
    best_nu, best = np.inf, gauss
    for nu in NU_GRID:
        ll = copula_loglik(u, nu, corr)
        if ll > best:
            best_nu, best = nu, ll
    return best_nu, best - gauss


def shared_tail_nu(u: np.ndarray, dim_x: int) -> float:
    """Degrees of freedom of a t copula in which X and Y share one scale per row, or
    ``inf`` (Gaussian) unless the data show it: twice the log-likelihood gain of the t
    copula of all columns over the Gaussian copula, less the gains of t copulas of X
    alone and of Y alone, must reach :data:`TAIL_EVIDENCE`.  Heavy tails within X and
    within Y with independent scales (which carry no information about each other) thus
    do not count.

    ``u`` are the rows the fit uses, ranked again among themselves, so a subset of a
    larger sample has the tails of a sample of its own size."""
    u = (average_ranks(np.asarray(u, np.float64)) - 0.5) / len(u)
    corr = score_correlation(u)
    nu, gain = _tail_gain(u, corr)
    side_gain = (_tail_gain(u[:, :dim_x], corr[:dim_x, :dim_x])[1]
                 + _tail_gain(u[:, dim_x:], corr[dim_x:, dim_x:])[1])
    return nu if 2.0 * (gain - side_gain) >= TAIL_EVIDENCE else np.inf


def _seeds(seed: int | list[int], digest: int) -> list[int]:
    """The draws' seed: ``seed`` (an int or a list of ints) followed by ``digest``."""
    return ([seed] if isinstance(seed, (int, np.integer)) else list(seed)) + [digest]


@dataclass(frozen=True, eq=False)
class Neighbour:
    """A sample's neighbour: dispersion matrix, degrees of freedom (``inf``: Gaussian
    copula) and exact MI."""

    corr: np.ndarray
    dim_x: int
    nu: float
    mi: float
    digest: int = 0     # of the sample it was fitted to (copula_digest)
    kind: ClassVar[str] = "copula"

    def weight(self, estimate: np.ndarray) -> np.ndarray:
        """The correction's weight for MIST's ``estimate`` (:func:`correction_weight`)."""
        return correction_weight(estimate, self.mi)

    def draws(self, n: int, seed: int | list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:data:`DRAWS` independent draws of ``n`` rows (:meth:`draw`), seeded by
        ``seed`` and :attr:`digest`."""
        base = _seeds(seed, self.digest)
        return [self.draw(n, base + [k]) for k in range(DRAWS)]

    def draw(self, n: int, seed: int | list[int]) -> tuple[np.ndarray, np.ndarray]:
        """``n`` rows from the neighbour, split into X and Y: standard normal draws times
        the symmetric square root of :attr:`corr`, each row divided by one
        ``sqrt(chi2_nu / nu)`` when :attr:`nu` is finite."""
        rng = np.random.default_rng(seed)
        vals, vecs = np.linalg.eigh(self.corr)
        root = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
        rows = rng.standard_normal((n, len(self.corr))) @ root
        if np.isfinite(self.nu):
            rows *= np.sqrt(self.nu / rng.chisquare(self.nu, size=n))[:, None]
        return rows[:, :self.dim_x], rows[:, self.dim_x:]


@dataclass(frozen=True, eq=False)
class ShuffledNeighbour:
    """The neighbour of a sample with few rows per column: its own rows (in
    :func:`canonical_order`) with those of Y shuffled against those of X.  X and Y keep
    their marginal samples and become independent, so the MI is exactly 0."""

    x: np.ndarray
    y: np.ndarray
    digest: int
    mi: ClassVar[float] = 0.0
    nu: ClassVar[float] = np.inf
    kind: ClassVar[str] = "shuffled"

    @staticmethod
    def weight(estimate: np.ndarray) -> np.ndarray:
        """The correction's weight for MIST's ``estimate``: 1 below
        :data:`SHUFFLED_FULL_BELOW`, 0 above :data:`SHUFFLED_NONE_ABOVE`.  With few rows per
        column the network's bias at independence says less about its bias at half a nat
        than with many: the shuffles correct only estimates near 0."""
        return correction_weight(estimate, 0.0, SHUFFLED_FULL_BELOW, SHUFFLED_NONE_ABOVE)

    def draws(self, n: int, seed: int | list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:data:`SHUFFLED_DRAWS` shuffles of all the sample's rows, seeded by ``seed`` and
        :attr:`digest` (``n`` is ignored: the interface of :meth:`Neighbour.draws`)."""
        base, rows = _seeds(seed, self.digest), len(self.x)
        return [(self.x, self.y[np.random.default_rng(base + [k]).permutation(rows)])
                for k in range(SHUFFLED_DRAWS)]


def canonical_order(ranks: np.ndarray) -> np.ndarray:
    """The rows of ``ranks`` ``(n, d)`` in lexicographic order (first column first, ties
    broken by the next): the same rows for any order they come in."""
    first = ranks[:, 0]
    order = np.argsort(first, kind="stable")
    if np.any(first[order][1:] == first[order][:-1]):
        order = np.lexsort(ranks.T[::-1])
    return order


def _fit_rows(order: np.ndarray) -> np.ndarray:
    """At most :data:`FIT_ROWS` rows, evenly spaced in the canonical order, so the choice
    does not depend on the order of the rows."""
    n = len(order)
    if n <= FIT_ROWS:
        return np.arange(n)
    return order[np.linspace(0, n - 1, FIT_ROWS).round().astype(int)]


def copula_digest(ranks: np.ndarray, order: np.ndarray) -> int:
    """A 63-bit digest of a sample's ranks ``(n, d)`` with its rows in
    :func:`canonical_order` ``order``: the same for any order of the rows and any
    strictly increasing maps of the columns, different for different copulas.  It seeds
    the neighbour's draws, so samples of one shape do not share them."""
    digest = hashlib.blake2b(np.ascontiguousarray(ranks[order]).tobytes(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") >> 1


def neighbour(x: np.ndarray, y: np.ndarray) -> Neighbour | ShuffledNeighbour | None:
    """The neighbour of the sample ``(x, y)`` (2-D, no constant columns), as the module
    describes it: a :class:`ShuffledNeighbour` below :data:`ROWS_PER_COLUMN` rows per
    column, else the fitted copula, or ``None`` when the correlation of the normal scores
    is singular (a column repeating another, within a side or across), where no copula
    of this form is a neighbour."""
    n, dim_x = x.shape
    dim_y = y.shape[1]
    if dim_x == 0 or dim_y == 0:
        raise ValueError("a side without columns has no neighbour: its MI with the other is 0")
    ranks = average_ranks(np.hstack([np.asarray(x, np.float64), np.asarray(y, np.float64)]))
    if not fits_copula(n, dim_x, dim_y):
        order = canonical_order(ranks)
        return ShuffledNeighbour(x[order], y[order], copula_digest(ranks, order))
    u = (ranks - 0.5) / n
    corr = score_correlation(u)
    if np.linalg.eigvalsh(corr)[0] < SINGULAR:
        return None
    order = canonical_order(ranks)
    nu = shared_tail_nu(u[_fit_rows(order)], dim_x)
    target = gaussian_mi(corr, dim_x) - gaussian_bias(n, dim_x, dim_y)
    corr = shrink_cross(corr, dim_x, max(0.0, target))
    tails = 0.0
    if np.isfinite(nu):
        from mistgen.families.student import student_mi_correction   # its exact MI term
        tails = student_mi_correction(nu, dim_x, dim_y)
    return Neighbour(corr, dim_x, float(nu), gaussian_mi(corr, dim_x) + tails,
                     copula_digest(ranks, order))


def fits_copula(n: int, dim_x: int, dim_y: int) -> bool:
    """Whether a sample of this shape has enough rows per column for a fitted copula
    (else its neighbour is a :class:`ShuffledNeighbour`)."""
    return dim_x > 0 and dim_y > 0 and n >= ROWS_PER_COLUMN * (dim_x + dim_y)


def correction_weight(estimate: np.ndarray, neighbour_mi: np.ndarray,
                      full_below: float = FULL_BELOW, none_above: float = NONE_ABOVE
                      ) -> np.ndarray:
    """The weight of the correction: 1 where both values are below ``full_below``,
    falling linearly in the larger of them to 0 at ``none_above`` (by default
    :data:`FULL_BELOW` and :data:`NONE_ABOVE`; a :class:`ShuffledNeighbour` has its own)."""
    level = np.maximum(np.asarray(estimate, np.float64), np.asarray(neighbour_mi, np.float64))
    return np.clip((none_above - level) / (none_above - full_below), 0.0, 1.0)
