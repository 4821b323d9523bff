"""Multivariate Student-t families (heavy tails) over the shared dispersion structures.

With dispersion S and nu degrees of freedom,
``I(X;Y) = I_gauss(S) + g(nu/2) + g((nu+dx+dy)/2) - g((nu+dx)/2) - g((nu+dy)/2)``
where ``g(a) = gammaln(a) - a digamma(a)``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma, gammaln

from ..registry import FAMILIES
from .base import correlated_normal, gaussian_mi
from .structures import (
    DenseStructure,
    IdentityStructure,
    SparseStructure,
    Structure,
    TwoPairStructure,
)

NU_PRIOR = {"nu": (1.0, 10.0)}


#: From this many degrees of freedom the correction is summed from g's asymptotic series:
#: the four terms of the direct form grow like nu log nu and cancel to ~dx dy / (2 nu^2),
#: losing all precision by nu ~ 1e5 (and going negative).
ASYMPTOTIC_FROM_NU = 300.0


def _g(a: float) -> float:
    return float(gammaln(a) - a * digamma(a))


def _mixed_difference(f, a: float, hx: float, hy: float) -> float:
    """f(a) + f(a + hx + hy) - f(a + hx) - f(a + hy)."""
    return f(a) + f(a + hx + hy) - f(a + hx) - f(a + hy)


def student_mi_correction(nu: float, dim_x: int, dim_y: int) -> float:
    """MI of a Student-t with identity dispersion; add it to the Gaussian MI of S."""
    a, hx, hy = nu / 2, dim_x / 2, dim_y / 2
    if nu < ASYMPTOTIC_FROM_NU:
        return _mixed_difference(_g, a, hx, hy)
    # g(t) = -t - log(t) / 2 + const + 1 / (6 t) - 1 / (90 t^3) + O(t^-5); the log terms'
    # mixed difference is -log1p(-hx hy / ((a + hx) (a + hy))) / 2, exactly
    log_part = -0.5 * math.log1p(-hx * hy / ((a + hx) * (a + hy)))
    return (log_part + _mixed_difference(lambda t: 1 / (6 * t), a, hx, hy)
            - _mixed_difference(lambda t: 1 / (90 * t**3), a, hx, hy))


class StudentFamily(Structure):
    """Multivariate t: a correlated normal divided by one shared ``sqrt(chi2_nu / nu)`` per row."""

    param_bounds = {"nu": (0.0, np.inf)}

    def draw_params(self, rng, dim_x, dim_y, prior):
        return {"nu": self.draw(rng, "nu", prior), **self.draw_structure(rng, dim_x, dim_y, prior)}

    def mutual_information(self, params, dim_x, dim_y):
        base = gaussian_mi(self.matrix(params, dim_x, dim_y), dim_x)
        return base + student_mi_correction(params["nu"], dim_x, dim_y)

    def sample(self, rng, n, dim_x, dim_y, params):
        nu = params["nu"]
        z = correlated_normal(rng, n, self.matrix(params, dim_x, dim_y))
        w = rng.chisquare(nu, size=n)
        xy = z * np.sqrt(nu / w)[:, None]
        return xy[:, :dim_x], xy[:, dim_x:]


@FAMILIES.register
class StudentIdentity(IdentityStructure, StudentFamily):
    name = "student-identity"
    default_prior = dict(NU_PRIOR)


@FAMILIES.register
class StudentDense(DenseStructure, StudentFamily):
    name = "student-dense"
    param_bounds = {**StudentFamily.param_bounds, **DenseStructure.param_bounds}
    default_prior = {**NU_PRIOR, **DenseStructure.structure_prior}


@FAMILIES.register
class StudentSparse(SparseStructure, StudentFamily):
    name = "student-sparse"
    default_prior = {**NU_PRIOR, **SparseStructure.structure_prior}


@FAMILIES.register
class StudentTwoPair(TwoPairStructure, StudentFamily):
    name = "student-2pair"
    default_prior = {**NU_PRIOR, **TwoPairStructure.structure_prior}
