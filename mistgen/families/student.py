"""Multivariate Student-t families (heavy tails) over the shared dispersion structures.

With dispersion S and nu degrees of freedom,
``I(X;Y) = I_gauss(S) + g(nu/2) + g((nu+dx+dy)/2) - g((nu+dx)/2) - g((nu+dy)/2)``
where ``g(a) = gammaln(a) - a digamma(a)``.
"""
from __future__ import annotations

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


def _g(a: float) -> float:
    return float(gammaln(a) - a * digamma(a))


def student_mi_correction(nu: float, dim_x: int, dim_y: int) -> float:
    """MI of a Student-t with identity dispersion; add it to the Gaussian MI of S."""
    return (
        _g(nu / 2) + _g((nu + dim_x + dim_y) / 2) - _g((nu + dim_x) / 2) - _g((nu + dim_y) / 2)
    )


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
