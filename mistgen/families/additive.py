"""Additive uniform noise: ``X_j ~ U(0, 1)``, ``Y_j = X_j + U(-eps_j, eps_j)``, independent over j."""
from __future__ import annotations

import numpy as np

from ..registry import FAMILIES
from ..errors import ShapeError
from .base import Family


def additive_noise_mi(eps: float) -> float:
    """MI of one coordinate: ``eps - ln(2 eps)`` for eps <= 1/2, else ``1 / (4 eps)``."""
    return eps - np.log(2 * eps) if eps <= 0.5 else 1.0 / (4 * eps)


@FAMILIES.register
class AdditiveNoise(Family):
    name = "additive_noise"
    default_prior = {"epsilon": (0.1, 2.0)}
    param_bounds = {"epsilon": (0.0, np.inf)}
    equal_dims = True
    drawn_params = frozenset()        # draws add no parameter: explicit ones are checked

    def draw_params(self, rng, dim_x, dim_y, prior):
        low, high = prior["epsilon"]
        return {"epsilon": [float(e) for e in rng.uniform(low, high, size=dim_x)]}

    def mutual_information(self, params, dim_x, dim_y):
        return float(sum(additive_noise_mi(e) for e in params["epsilon"]))

    def sample(self, rng, n, dim_x, dim_y, params):
        eps = np.asarray(params["epsilon"], dtype=np.float64)
        if eps.shape != (dim_x,):
            raise ShapeError(
                f"{self.name}: epsilon has {eps.size} entries but dim_x = {dim_x}"
            )
        x = rng.uniform(0.0, 1.0, size=(n, dim_x))
        y = x + rng.uniform(-1.0, 1.0, size=(n, dim_x)) * eps
        return x, y
