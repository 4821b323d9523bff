"""Families for the first checks a user runs: independence with any marginals, and discrete data.

Independence (``I(X; Y) = 0`` exactly, any ``dim_x, dim_y >= 1``, unequal allowed). X and
Y are drawn independently, each side from one marginal; coordinates within a side may
depend on each other, which leaves ``I(X; Y)`` at 0:

* ``independent-normal``: each side a zero-mean normal whose coordinates are
  equicorrelated at ``within_x`` / ``within_y``;
* ``independent-student``: each side a multivariate t (its own ``nu_x`` / ``nu_y``) over
  the same equicorrelated dispersion, so within a side the coordinates share their scale;
* ``independent-uniform``: i.i.d. ``U(0, 1)`` coordinates;
* ``independent-lognormal``: i.i.d. ``exp(sigma Z)`` coordinates (right-skewed);
* ``independent-exponential``: i.i.d. ``Exp(1)`` coordinates (right-skewed, bounded below);
* ``independent-mixed``: X from marginal number ``marginal_x`` and Y from ``marginal_y``
  of :data:`MARGINALS` (1-based), each with its own side's parameters.

Any transform applies on top (``independent-lognormal-asinh``); the MI stays 0.

Discrete (one coordinate per side, values are the integers ``0 .. k-1`` as floats, so
samples are heavily tied):

* ``discrete-copy``: X uniform on ``k`` values and ``Y = X``; ``I = ln k``;
* ``discrete-bsc``: X a fair bit and Y that bit flipped with probability ``flip``
  (binary symmetric channel); ``I = ln 2 - H(flip)``;
* ``discrete-table``: (X, Y) drawn from a ``k_x x k_y`` joint probability table that is
  itself drawn from a symmetric Dirichlet(``concentration``); the table is kept in the
  parameters (``table``, rows indexed by X) and ``I`` is computed from it exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from ..errors import PriorError, ShapeError
from ..registry import FAMILIES
from .base import FLOAT_BYTES, WORKING_COPIES, Family, Prior, correlated_normal, dense_matrix


# -- marginals of one side ------------------------------------------------------------------

def lowest_within(dim: int) -> float:
    """Equicorrelation of ``dim`` coordinates is positive definite only above
    ``-1 / (dim - 1)`` (any value for one coordinate)."""
    return -1.0 / (dim - 1) if dim > 1 else -np.inf


def _equicorrelated_normal(rng, n, dim, within):
    if within <= lowest_within(dim):
        raise PriorError(f"within-side correlation {within!r} must exceed -1/(dim - 1) = "
                         f"{lowest_within(dim):g} for a side of {dim} coordinates")
    return correlated_normal(rng, n, dense_matrix(dim, within))


def _student(rng, n, dim, nu, within):
    z = _equicorrelated_normal(rng, n, dim, within)
    return z * np.sqrt(nu / rng.chisquare(nu, size=n))[:, None]


POSITIVE = (0.0, np.inf)
CORRELATION = (-1.0, 1.0)


@dataclass(frozen=True)
class Marginal:
    """How one side is drawn: its parameters' prior and open bounds, and a sampler
    ``draw(rng, n, dim, **params)``."""

    name: str
    prior: Prior
    bounds: dict[str, tuple[float, float]]
    draw: Callable[..., np.ndarray]

    def on_side(self, table: Mapping[str, Any], side: str) -> dict[str, Any]:
        """``table`` (the prior or the bounds) with its keys suffixed by ``_x`` or ``_y``."""
        return {f"{key}_{side}": value for key, value in table.items()}


MARGINALS: tuple[Marginal, ...] = (
    Marginal("normal", {"within": (0.0, 0.9)}, {"within": CORRELATION}, _equicorrelated_normal),
    Marginal("student", {"nu": (1.0, 10.0), "within": (0.0, 0.9)},
             {"nu": POSITIVE, "within": CORRELATION}, _student),
    Marginal("uniform", {}, {}, lambda rng, n, dim: rng.uniform(0.0, 1.0, size=(n, dim))),
    Marginal("lognormal", {"sigma": (0.25, 1.5)}, {"sigma": POSITIVE},
             lambda rng, n, dim, sigma: np.exp(sigma * rng.standard_normal((n, dim)))),
    Marginal("exponential", {}, {}, lambda rng, n, dim: rng.exponential(1.0, size=(n, dim))),
)
_BY_NAME = {m.name: m for m in MARGINALS}


def _both_sides(marginals, table: str) -> dict[str, Any]:
    """The union of the marginals' priors or bounds (``table``), on both sides."""
    return {key: value for side in "xy" for m in marginals
            for key, value in m.on_side(getattr(m, table), side).items()}


class IndependentFamily(Family):
    """X and Y independent, each side drawn from its marginal; MI is exactly 0."""

    drawn_params = frozenset()        # draws add no parameter: explicit ones are checked
    marginal: ClassVar[str] = ""

    def side_marginals(self, params: Mapping[str, Any]) -> tuple[Marginal, Marginal]:
        m = _BY_NAME[self.marginal]
        return m, m

    def possible_marginals(self, prior: Prior, side: str) -> tuple[Marginal, ...]:
        """The marginals that side ``side`` ("x" or "y") can take under ``prior``."""
        return (_BY_NAME[self.marginal],)

    def memory_bytes(self, n, dim_x, dim_y):
        """The sample's working copies plus, where a side can be equicorrelated, its
        dim x dim correlation matrix and Cholesky factor."""
        base = super().memory_bytes(n, dim_x, dim_y)
        if not self._builds_matrices():
            return base
        return base + FLOAT_BYTES * WORKING_COPIES * (dim_x * dim_x + dim_y * dim_y)

    def memory_use(self, n, dim_x, dim_y):
        base = super().memory_use(n, dim_x, dim_y)
        if not self._builds_matrices():
            return base
        return f"{base} and of {dim_x} x {dim_x} and {dim_y} x {dim_y} within-side matrices"

    def _builds_matrices(self) -> bool:
        return any("within" in m.prior for side in "xy"
                   for m in self.possible_marginals(self.default_prior, side))

    def draw_params(self, rng, dim_x, dim_y, prior):
        for side, dim in zip("xy", (dim_x, dim_y)):
            self._check_within_prior(prior, side, dim)
        return {key: self.draw(rng, key, prior) for key in prior}

    def _check_within_prior(self, prior: Prior, side: str, dim: int) -> None:
        """Refuse a ``within_<side>`` prior whose low end a side of ``dim`` coordinates
        cannot take, where that side can be equicorrelated."""
        key = f"within_{side}"
        if key not in prior or not any("within" in m.prior
                                       for m in self.possible_marginals(prior, side)):
            return
        if prior[key][0] <= lowest_within(dim):
            raise PriorError(
                f"prior for {self.name}.{key} {list(prior[key])} reaches values at or below "
                f"-1/(dim_{side} - 1) = {lowest_within(dim):.4g} for dim_{side}={dim}, where "
                f"the within-side correlation matrix is not positive definite: raise its "
                f"lower end above {lowest_within(dim):.4g} or narrow dim_{side}")

    def mutual_information(self, params, dim_x, dim_y):
        return 0.0

    def sample(self, rng, n, dim_x, dim_y, params):
        sides = []
        for marginal, side, dim in zip(self.side_marginals(params), "xy", (dim_x, dim_y)):
            kwargs = {key: params[f"{key}_{side}"] for key in marginal.prior}
            self._check_within(kwargs, side, dim)
            sides.append(marginal.draw(rng, n, dim, **kwargs))
        return sides[0], sides[1]

    def _check_within(self, kwargs: Mapping[str, Any], side: str, dim: int) -> None:
        """Refuse a within-side correlation that a side of ``dim`` coordinates cannot take."""
        if "within" in kwargs and kwargs["within"] <= lowest_within(dim):
            raise PriorError(
                f"family {self.name!r}: within_{side}={kwargs['within']!r} must exceed "
                f"-1/(dim - 1) = {lowest_within(dim):g} for a side of {dim} coordinates "
                f"(dim_{side}={dim}); at or below it the within-side correlation matrix is "
                f"not positive definite")


def _register_same_marginal(marginal: Marginal) -> None:
    cls = type(
        f"Independent{marginal.name.title()}", (IndependentFamily,),
        {"name": f"independent-{marginal.name}", "marginal": marginal.name,
         "default_prior": _both_sides([marginal], "prior"),
         "param_bounds": _both_sides([marginal], "bounds"),
         "__doc__": f"X and Y independent, each side {marginal.name}; MI is exactly 0."},
    )
    FAMILIES.register(cls)


for _marginal in MARGINALS:
    _register_same_marginal(_marginal)


@FAMILIES.register
class IndependentMixed(IndependentFamily):
    """X from marginal ``marginal_x`` and Y from ``marginal_y`` (1-based in ``MARGINALS``)."""

    name = "independent-mixed"
    default_prior = {"marginal_x": (1, len(MARGINALS)), "marginal_y": (1, len(MARGINALS)),
                     **_both_sides(MARGINALS, "prior")}
    param_bounds = {"marginal_x": (0, len(MARGINALS) + 1), "marginal_y": (0, len(MARGINALS) + 1),
                    **_both_sides(MARGINALS, "bounds")}
    integer_params = frozenset({"marginal_x", "marginal_y"})

    def side_marginals(self, params):
        return MARGINALS[params["marginal_x"] - 1], MARGINALS[params["marginal_y"] - 1]

    def possible_marginals(self, prior, side):
        low, high = prior[f"marginal_{side}"]
        return MARGINALS[int(low) - 1:int(high)]


# -- discrete ----------------------------------------------------------------------------------

def entropy(p: np.ndarray) -> float:
    """Shannon entropy in nats of a probability vector (``0 ln 0 = 0``)."""
    p = np.asarray(p, dtype=np.float64).ravel()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def table_mi(table: np.ndarray) -> float:
    """``I(X; Y)`` in nats of a joint probability table (rows: X values, columns: Y values)."""
    table = np.asarray(table, dtype=np.float64)
    return max(0.0, entropy(table.sum(axis=1)) + entropy(table.sum(axis=0)) - entropy(table))


class DiscreteFamily(Family):
    """One coordinate per side taking the values ``0 .. k-1``."""

    drawn_params = frozenset()        # draws add no parameter: explicit ones are checked
    def shape_problem(self, dim_x, dim_y):
        if (dim_x, dim_y) != (1, 1):
            return (f"family {self.name!r} has one coordinate per side (dim_x = dim_y = 1), "
                    f"got dim_x={dim_x}, dim_y={dim_y}")
        return None

    def draw_params(self, rng, dim_x, dim_y, prior):
        return {key: self.draw(rng, key, prior) for key in prior}


@FAMILIES.register
class DiscreteCopy(DiscreteFamily):
    """X uniform on ``k`` values and ``Y = X``: ``I = ln k``."""

    name = "discrete-copy"
    default_prior = {"k": (2, 8)}
    param_bounds = {"k": POSITIVE}
    integer_params = frozenset({"k"})

    def mutual_information(self, params, dim_x, dim_y):
        return float(np.log(params["k"]))

    def sample(self, rng, n, dim_x, dim_y, params):
        x = rng.integers(0, params["k"], size=(n, 1)).astype(np.float64)
        return x, x.copy()


@FAMILIES.register
class DiscreteBSC(DiscreteFamily):
    """A fair bit X and Y = X flipped with probability ``flip``: ``I = ln 2 - H(flip)``."""

    name = "discrete-bsc"
    default_prior = {"flip": (0.0, 0.5)}

    def check_params(self, params):
        params = super().check_params(params)
        if not 0.0 <= params["flip"] <= 1.0:
            raise PriorError(f"{self.name}.flip must lie in [0, 1], got {params['flip']!r}")
        return params

    def resolve_prior(self, overrides=None):
        prior = super().resolve_prior(overrides)
        low, high = prior["flip"]
        if low < 0.0 or high > 1.0:
            raise PriorError(
                f"prior for {self.name}.flip must lie within [0, 1], got {prior['flip']}")
        return prior

    def mutual_information(self, params, dim_x, dim_y):
        p = params["flip"]
        return max(0.0, float(np.log(2.0)) - entropy([p, 1.0 - p]))

    def sample(self, rng, n, dim_x, dim_y, params):
        x = rng.integers(0, 2, size=(n, 1))
        flips = rng.random((n, 1)) < params["flip"]
        return x.astype(np.float64), np.where(flips, 1 - x, x).astype(np.float64)


@FAMILIES.register
class DiscreteTable(DiscreteFamily):
    """(X, Y) from a ``k_x x k_y`` probability table drawn from a symmetric Dirichlet.

    Parameters given explicitly must include ``table`` (a list of ``k_x`` rows of ``k_y``
    non-negative numbers summing to 1); ``concentration`` only matters when drawing it.
    """

    name = "discrete-table"
    default_prior = {"k_x": (2, 6), "k_y": (2, 6), "concentration": (0.2, 2.0)}
    param_bounds = {"k_x": POSITIVE, "k_y": POSITIVE, "concentration": POSITIVE}
    integer_params = frozenset({"k_x", "k_y"})
    drawn_params = frozenset({"table"})

    def draw_params(self, rng, dim_x, dim_y, prior):
        params = super().draw_params(rng, dim_x, dim_y, prior)
        cells = params["k_x"] * params["k_y"]
        flat = rng.dirichlet(np.full(cells, params["concentration"]))
        params["table"] = flat.reshape(params["k_x"], params["k_y"]).tolist()
        return params

    def check_params(self, params):
        params = super().check_params(params)
        if "table" not in params:
            raise PriorError(f"{self.name} needs parameter 'table' (rows: X values); got {params}")
        self.table(params)
        return params

    def table(self, params: Mapping[str, Any]) -> np.ndarray:
        table = np.asarray(params["table"], dtype=np.float64)
        shape = (params["k_x"], params["k_y"])
        if table.shape != shape:
            raise ShapeError(
                f"{self.name}: table has shape {table.shape}, expected (k_x, k_y) = {shape}")
        if not (np.all(np.isfinite(table)) and np.all(table >= 0) and abs(table.sum() - 1) < 1e-9):
            raise PriorError(f"{self.name}: table must hold non-negative numbers summing to 1")
        return table

    def mutual_information(self, params, dim_x, dim_y):
        return table_mi(self.table(params))

    def sample(self, rng, n, dim_x, dim_y, params):
        table = self.table(params)
        cells = rng.choice(table.size, size=n, p=table.ravel() / table.sum())
        x, y = np.divmod(cells, table.shape[1])
        return x.astype(np.float64)[:, None], y.astype(np.float64)[:, None]
