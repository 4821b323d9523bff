"""A Gaussian control for MIST's point estimate: its bias measured on a Gaussian neighbour.

MIST's errors on weakly dependent data are mostly biases of the network that stay at
every n.  For a sample (X, Y) the *Gaussian neighbour* is the Gaussian copula whose
correlation matrix is that of the sample's normal scores, with the cross-correlations
shrunk so that its MI is the sample's Gaussian MI less the plug-in bias at this n
(:func:`plugin_bias`).  Its MI is known exactly (:func:`gaussian_mi`), so drawing one
sample of the same shape from it and running MIST on that sample measures MIST's bias
there.  The controlled estimate is

    MIST(x, y) - w * (MIST(surrogate) - I(neighbour)),

a parametric-bootstrap bias correction: where the network's bias at (X, Y) is close to
its bias at the neighbour, the estimate inherits the neighbour's consistency in n (the
Gaussian MI of the normal scores is consistent for every Gaussian copula).  It is not
close everywhere: on strongly dependent non-Gaussian data (additive noise, Student-t at
several nats) MIST's bias on the Gaussian neighbour has another sign and size.  The
weight ``w`` is therefore 1 only where both MIST's estimate and the neighbour's MI are
below :data:`FULL_BELOW` nats, falls linearly to 0 at :data:`NONE_ABOVE`, and is 0 when
the sample has fewer than :data:`ROWS_PER_COLUMN` rows per column (there the sample
correlation of many columns is mostly noise and the neighbour is far from the truth).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma

from .copula import normal_scores

__all__ = ["plugin_bias", "gaussian_mi", "shrink_cross", "GaussianNeighbour", "neighbour",
           "applies", "control_weight", "FULL_BELOW", "NONE_ABOVE", "ROWS_PER_COLUMN"]

FULL_BELOW = 0.5       # nats: full correction below this (estimate and neighbour's MI)
NONE_ABOVE = 1.0       # nats: no correction above this
ROWS_PER_COLUMN = 20   # no correction with fewer rows per column (dim_x + dim_y)


def _expected_log_det_shift(n: int, d: int) -> float:
    """``E[log det S] - log det Sigma`` for the sample covariance ``S`` (``n - 1`` degrees
    of freedom) of ``n`` Gaussian rows in ``d`` dimensions (a Wishart identity)."""
    i = np.arange(1, d + 1)
    return float(np.sum(digamma((n - i) / 2.0)) + d * np.log(2.0 / (n - 1)))


def plugin_bias(n: int, dim_x: int, dim_y: int) -> float:
    """Expected excess of the plug-in Gaussian MI (from the sample correlation of ``n``
    Gaussian rows) over the true Gaussian MI, in nats; needs ``n > dim_x + dim_y``."""
    if n <= dim_x + dim_y:
        raise ValueError(f"the plug-in bias needs n > dim_x + dim_y; got n = {n} with "
                         f"{dim_x} + {dim_y} columns")
    shift = _expected_log_det_shift
    return 0.5 * (shift(n, dim_x) + shift(n, dim_y) - shift(n, dim_x + dim_y))


def gaussian_mi(corr: np.ndarray, dim_x: int) -> float:
    """I(X;Y) of a Gaussian with correlation (or covariance) matrix ``corr``, X being its
    first ``dim_x`` coordinates (never below 0: rounding can put it a hair under)."""
    logdet = lambda a: np.linalg.slogdet(a)[1]   # noqa: E731
    return max(0.0, 0.5 * float(logdet(corr[:dim_x, :dim_x]) + logdet(corr[dim_x:, dim_x:])
                                - logdet(corr)))


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


@dataclass(frozen=True)
class GaussianNeighbour:
    """A sample's Gaussian neighbour: its correlation matrix and exact MI."""

    corr: np.ndarray
    dim_x: int
    mi: float

    def draw(self, n: int, seed: int | list[int]) -> tuple[np.ndarray, np.ndarray]:
        """``n`` rows from the neighbour (standard normal draws times the symmetric square
        root of :attr:`corr`), split into X and Y."""
        d = len(self.corr)
        vals, vecs = np.linalg.eigh(self.corr)
        root = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
        rows = np.random.default_rng(seed).standard_normal((n, d)) @ root
        return rows[:, :self.dim_x], rows[:, self.dim_x:]


def neighbour(x: np.ndarray, y: np.ndarray) -> GaussianNeighbour:
    """The Gaussian neighbour of the sample ``(x, y)`` (2-D, no constant columns,
    ``n > dim_x + dim_y``): the correlation of its normal scores, cross block shrunk to
    the sample's Gaussian MI less :func:`plugin_bias`."""
    n, dim_x = x.shape
    scores = np.hstack([normal_scores(np.asarray(x, np.float64)),
                        normal_scores(np.asarray(y, np.float64))])
    corr = np.atleast_2d(np.corrcoef(scores, rowvar=False))
    target = gaussian_mi(corr, dim_x) - plugin_bias(n, dim_x, y.shape[1])
    corr = shrink_cross(corr, dim_x, max(0.0, target))
    return GaussianNeighbour(corr, dim_x, gaussian_mi(corr, dim_x))


def applies(n: int, dim_x: int, dim_y: int) -> bool:
    """Whether a sample of this shape has enough rows per column for the control."""
    return dim_x > 0 and dim_y > 0 and n >= ROWS_PER_COLUMN * (dim_x + dim_y)


def control_weight(estimate: np.ndarray, neighbour_mi: np.ndarray) -> np.ndarray:
    """The weight of the correction: 1 where both values are below :data:`FULL_BELOW`,
    falling linearly in the larger of them to 0 at :data:`NONE_ABOVE`."""
    level = np.maximum(np.asarray(estimate, np.float64), np.asarray(neighbour_mi, np.float64))
    return np.clip((NONE_ABOVE - level) / (NONE_ABOVE - FULL_BELOW), 0.0, 1.0)
