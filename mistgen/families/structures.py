"""Dependence structures: the dispersion matrix shared by Gaussian and Student-t families.

Each structure knows its own prior ranges, how to draw its parameters, and the
(dim_x + dim_y) x (dim_x + dim_y) matrix they define (X coordinates first).
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np

from ..errors import PriorError
from .base import FLOAT_BYTES, WORKING_COPIES, Family, Prior, dense_matrix, lvm_correlation


class Structure(Family):
    structure_prior: ClassVar[Prior] = {}
    drawn_params = frozenset()        # draws add no parameter: explicit ones are checked

    def memory_bytes(self, n: int, dim_x: int, dim_y: int) -> int:
        """The sample's working copies plus the d x d dispersion matrix and its factors."""
        d = dim_x + dim_y
        return super().memory_bytes(n, dim_x, dim_y) + FLOAT_BYTES * WORKING_COPIES * d * d

    def memory_use(self, n: int, dim_x: int, dim_y: int) -> str:
        d = dim_x + dim_y
        return f"{super().memory_use(n, dim_x, dim_y)} and of a {d} x {d} dispersion matrix"

    def draw_structure(self, rng, dim_x: int, dim_y: int, prior: Prior) -> dict[str, Any]:
        raise NotImplementedError

    def matrix(self, params: Mapping[str, Any], dim_x: int, dim_y: int) -> np.ndarray:
        raise NotImplementedError

    def pairs(self, params: Mapping[str, Any], dim_x: int, dim_y: int) -> int:
        """The number of interacting pairs k, which must fit both sides."""
        k = params["k"]
        if not 1 <= k <= min(dim_x, dim_y):
            raise PriorError(f"family {self.name!r}: parameter k must be between 1 and "
                             f"min(dim_x, dim_y) = {min(dim_x, dim_y)}, got {k!r}")
        return k


class IdentityStructure(Structure):
    """Independent unit coordinates (dependence, if any, comes from elsewhere)."""

    structure_prior: ClassVar[Prior] = {}

    def draw_structure(self, rng, dim_x, dim_y, prior):
        return {}

    def matrix(self, params, dim_x, dim_y):
        return np.eye(dim_x + dim_y)


class DenseStructure(Structure):
    """All coordinates equicorrelated: ``(1 - c) I + c 11^T``."""

    structure_prior: ClassVar[Prior] = {"off_diag": (0.0, 0.5)}
    param_bounds = {"off_diag": (-1.0, 1.0)}

    def draw_structure(self, rng, dim_x, dim_y, prior):
        low = prior["off_diag"][0]
        if low <= self.lowest_off_diag(dim_x, dim_y):
            raise PriorError(
                f"prior for {self.name}.off_diag {list(prior['off_diag'])} reaches values "
                f"{self._bound_message(dim_x, dim_y)}"
            )
        return {"off_diag": self.draw(rng, "off_diag", prior)}

    def matrix(self, params, dim_x, dim_y):
        c = params["off_diag"]
        if c <= self.lowest_off_diag(dim_x, dim_y):
            raise PriorError(f"family {self.name!r}: off_diag={c!r} is "
                             f"{self._bound_message(dim_x, dim_y)}")
        return dense_matrix(dim_x + dim_y, c)

    @staticmethod
    def lowest_off_diag(dim_x: int, dim_y: int) -> float:
        """Equicorrelation is positive definite only above ``-1 / (d - 1)``."""
        return -1.0 / (dim_x + dim_y - 1)

    def _bound_message(self, dim_x: int, dim_y: int) -> str:
        return (f"at or below -1/(dim_x + dim_y - 1) = {self.lowest_off_diag(dim_x, dim_y):.4g} "
                f"for dim_x={dim_x}, dim_y={dim_y}, where the dispersion matrix is not positive "
                f"definite")


class LVMStructure(Structure):
    """Latent-variable model: global, per-side and k pairwise latent factors."""

    structure_prior: ClassVar[Prior] = {
        "k": (1, None),
        "alpha": (0.0, 1.0),
        "lambda": (0.1, 3.0),
        "beta": (0.0, 1.5),
        "eta": (0.1, 5.0),
    }
    integer_params = frozenset({"k"})

    def draw_structure(self, rng, dim_x, dim_y, prior):
        return {
            "k": self.draw(rng, "k", prior, cap=min(dim_x, dim_y)),
            "alpha": self.draw(rng, "alpha", prior),
            "lambda": self.draw(rng, "lambda", prior),
            "beta": self.draw(rng, "beta", prior),
            "eta": self.draw(rng, "eta", prior),
        }

    def matrix(self, params, dim_x, dim_y):
        return lvm_correlation(
            dim_x, dim_y, self.pairs(params, dim_x, dim_y), params["alpha"], params["lambda"],
            params["beta"], params["eta"],
        )


class SparseStructure(Structure):
    """k interacting pairs (X_i, Y_i), each with correlation s^2 / (1 + s^2)."""

    structure_prior: ClassVar[Prior] = {"k": (1, None), "strength": (0.1, 5.0)}
    integer_params = frozenset({"k"})

    def draw_structure(self, rng, dim_x, dim_y, prior):
        return {
            "k": self.draw(rng, "k", prior, cap=min(dim_x, dim_y)),
            "strength": self.draw(rng, "strength", prior),
        }

    def matrix(self, params, dim_x, dim_y):
        s = params["strength"]
        return lvm_correlation(dim_x, dim_y, self.pairs(params, dim_x, dim_y), 0.0, s, 0.0, s)


class TwoPairStructure(SparseStructure):
    """The sparse structure with exactly two interacting pairs."""

    structure_prior: ClassVar[Prior] = {"strength": (0.1, 5.0)}
    min_dim = 2
    drawn_params = frozenset({"k"})

    def draw_structure(self, rng, dim_x, dim_y, prior):
        return {"k": 2, "strength": self.draw(rng, "strength", prior)}

    def check_params(self, params):
        params = super().check_params(params)
        if "k" in params and (isinstance(params["k"], bool) or params["k"] != 2):
            raise PriorError(f"family {self.name!r} has exactly 2 interacting pairs: k must be "
                             f"2 where given, got {params['k']!r}")
        return params

    def matrix(self, params, dim_x, dim_y):
        s = params["strength"]
        return lvm_correlation(dim_x, dim_y, 2, 0.0, s, 0.0, s)
