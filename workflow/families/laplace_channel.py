"""An example family file: a Gaussian signal through a channel with Laplace noise.

``X_j ~ N(0, 1)``, ``Y_j = X_j + Z_j`` with ``Z_j ~ Laplace(0, b_j)``, independent over the
coordinates j (so dim_x == dim_y). The noise is heavy-tailed next to the Gaussian channel,
and the joint law is not a transformed normal, so no built-in family covers it.

Exact MI, in nats: ``I(X; Y) = sum_j h(Y_j) - h(Z_j)`` with ``h(Z_j) = 1 + ln(2 b_j)`` and
``h(Y_j)`` the entropy of the normal-Laplace density

    f(y) = exp(1 / (2 b^2)) / (2 b) * [exp(-y / b) Phi(y - 1/b) + exp(y / b) Phi(-y - 1/b)],

integrated by adaptive quadrature in float64 (``scipy.integrate.quad`` over [0, inf) by
symmetry, in log space so the tails do not underflow). The quadrature's own error bound is
below 1e-10 nats for every b of the default prior [0.1, 2.0].

The workflow loads this file when ``config.yaml`` names it under ``family_files``; specs
may then use ``laplace_channel-base``, ``laplace_channel-asinh`` and so on.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import integrate
from scipy.special import log_ndtr

from mistgen.errors import ShapeError
from mistgen.families.base import Family
from mistgen.registry import FAMILIES

#: Largest error bound of the entropy quadrature accepted for a label, in nats.
QUADRATURE_TOLERANCE = 1e-9


def normal_laplace_logpdf(y: np.ndarray | float, b: float) -> np.ndarray:
    """log density of ``N(0, 1) + Laplace(0, b)`` at ``y``."""
    y = np.asarray(y, dtype=np.float64)
    shift = 1.0 / (2.0 * b * b)
    left = shift - y / b + log_ndtr(y - 1.0 / b)
    right = shift + y / b + log_ndtr(-y - 1.0 / b)
    return np.logaddexp(left, right) - math.log(2.0 * b)


def laplace_channel_mi(b: float) -> float:
    """MI of one coordinate of the channel with Laplace noise of scale ``b``, in nats."""
    def integrand(y: float) -> float:
        logf = float(normal_laplace_logpdf(y, b))
        return -math.exp(logf) * logf

    half, error = integrate.quad(integrand, 0.0, math.inf, epsabs=1e-13, epsrel=1e-12,
                                 limit=200)
    if not error < QUADRATURE_TOLERANCE:
        raise ArithmeticError(f"laplace_channel: the entropy quadrature at b={b!r} has "
                              f"error bound {error:.2g} nats")
    return max(0.0, 2.0 * half - (1.0 + math.log(2.0 * b)))


@FAMILIES.register
class LaplaceChannel(Family):
    name = "laplace_channel"
    default_prior = {"b": (0.1, 2.0)}
    param_bounds = {"b": (0.0, np.inf)}
    equal_dims = True
    drawn_params = frozenset()     # draws add no parameter: explicit ones are checked

    def draw_params(self, rng, dim_x, dim_y, prior):
        low, high = prior["b"]
        return {"b": [float(v) for v in rng.uniform(low, high, size=dim_x)]}

    def mutual_information(self, params, dim_x, dim_y):
        return float(sum(laplace_channel_mi(b) for b in self._scales(params, dim_x)))

    def sample(self, rng, n, dim_x, dim_y, params):
        b = self._scales(params, dim_x)
        x = rng.standard_normal((n, dim_x))
        return x, x + rng.laplace(0.0, 1.0, size=(n, dim_x)) * b

    def _scales(self, params, dim_x) -> np.ndarray:
        b = np.asarray(params["b"], dtype=np.float64).reshape(-1)
        if b.shape != (dim_x,):
            raise ShapeError(f"{self.name}: b has {b.size} entries but dim_x = {dim_x}")
        return b
