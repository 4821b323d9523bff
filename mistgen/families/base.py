"""The family interface and the pieces the concrete families share.

A family is one small object: a parameter prior (``draw_params``), a sampler
(``sample``) and its exact mutual information (``mutual_information``), all in nats
and float64. Priors are ranges ``(low, high)`` drawn uniformly; users override them by
parameter name (see ``resolve_prior``).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar, Mapping

import numpy as np

from ..errors import PriorError, ShapeError

Prior = dict[str, tuple[float, float | None]]
Bounds = tuple[float, float]

#: Bytes per float64 value, and how many working copies of each array sampling holds at
#: its peak (the draw, the product, the transforms' intermediates).
FLOAT_BYTES = 8
WORKING_COPIES = 4


class Family:
    """Base class of every distribution family."""

    name: ClassVar[str] = ""
    #: Default prior ranges, by parameter name. ``None`` as an upper bound means
    #: "as large as the dimensions allow" (used for the number of interacting pairs k).
    default_prior: ClassVar[Prior] = {}
    #: Smallest dimension per side this family can take.
    min_dim: ClassVar[int] = 1
    #: Whether X and Y must have the same dimension.
    equal_dims: ClassVar[bool] = False
    #: Integer-valued parameters (drawn with ``integers``, inclusive bounds).
    integer_params: ClassVar[frozenset[str]] = frozenset()
    #: Open intervals that every value of a parameter must lie in (e.g. ``nu > 0``);
    #: parameters not listed take any finite value.
    param_bounds: ClassVar[dict[str, Bounds]] = {}
    #: Parameters that ``draw_params`` adds beside the prior's (e.g. a drawn table). Where
    #: declared (a set, empty for none), explicit parameters may name these and the
    #: prior's, nothing else; ``None`` (not declared) lets other names through unchecked.
    drawn_params: ClassVar[frozenset[str] | None] = None

    # -- cost ----------------------------------------------------------------
    def memory_bytes(self, n: int, dim_x: int, dim_y: int) -> int:
        """Peak memory, roughly, of drawing ``n`` rows: working copies of the n x d sample."""
        return FLOAT_BYTES * WORKING_COPIES * n * (dim_x + dim_y)

    def memory_use(self, n: int, dim_x: int, dim_y: int) -> str:
        """What ``memory_bytes`` counts, in words."""
        return f"working copies of {n} x {dim_x + dim_y} float64 values"

    # -- shape checks -------------------------------------------------------
    def shape_problem(self, dim_x: int, dim_y: int) -> str | None:
        """Why this family cannot produce (dim_x, dim_y), or ``None`` if it can."""
        if min(dim_x, dim_y) < self.min_dim:
            return (
                f"family {self.name!r} needs dim_x, dim_y >= {self.min_dim}, "
                f"got dim_x={dim_x}, dim_y={dim_y}"
            )
        if self.equal_dims and dim_x != dim_y:
            return (
                f"family {self.name!r} needs dim_x == dim_y, got dim_x={dim_x}, dim_y={dim_y}"
            )
        return None

    def check_dims(self, dim_x: int, dim_y: int) -> None:
        problem = self.shape_problem(dim_x, dim_y)
        if problem:
            raise ShapeError(problem)

    # -- the three things a family defines ----------------------------------
    def draw_params(
        self, rng: np.random.Generator, dim_x: int, dim_y: int, prior: Prior
    ) -> dict[str, Any]:
        raise NotImplementedError(self._missing("draw_params(self, rng, dim_x, dim_y, prior)"))

    def mutual_information(self, params: Mapping[str, Any], dim_x: int, dim_y: int) -> float:
        raise NotImplementedError(self._missing("mutual_information(self, params, dim_x, dim_y)"))

    def sample(
        self, rng: np.random.Generator, n: int, dim_x: int, dim_y: int, params: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError(self._missing("sample(self, rng, n, dim_x, dim_y, params)"))

    def _missing(self, method: str) -> str:
        return (f"family {getattr(self, 'name', type(self).__name__)!r} "
                f"({type(self).__module__}.{type(self).__name__}) does not define {method}, "
                "one of the three methods a family defines (see mistgen.families.base)")

    # -- priors --------------------------------------------------------------
    def resolve_prior(self, overrides: Mapping[str, Any] | None = None) -> Prior:
        """The default prior with ``overrides`` applied, validated."""
        prior = dict(self.default_prior)
        for key, value in (overrides or {}).items():
            if key not in prior:
                raise PriorError(
                    f"family {self.name!r} has no parameter {key!r} to set a prior on; "
                    f"its parameters are: {', '.join(sorted(prior)) or '(none)'}"
                )
            low, high = _check_range(self.name, key, value, key in self.integer_params)
            if high is None and prior[key][1] is not None:
                raise PriorError(
                    f"prior for {self.name}.{key} needs an upper bound, got {list(value)!r}; "
                    "only a parameter the dims cap (k of the sparse and latent-variable "
                    "families: at most min(dim_x, dim_y)) may leave it open")
            if key in self.param_bounds and not (
                    _within(low, self.param_bounds[key]) and _within(high, self.param_bounds[key])):
                raise PriorError(
                    f"prior for {self.name}.{key} must lie within "
                    f"{_describe(key, self.param_bounds[key])}, got {list(value)!r}"
                )
            prior[key] = (low, high)
        return prior

    def draw(self, rng: np.random.Generator, key: str, prior: Prior, cap: int | None = None):
        """Draw parameter ``key`` uniformly from its prior range (integers inclusive)."""
        low, high = prior[key]
        if key not in self.integer_params:
            return float(rng.uniform(low, high))
        if cap is not None and int(low) > cap:
            raise PriorError(
                f"prior for {self.name}.{key} [{low}, {high}] starts above {cap}, the most "
                f"these dims allow (min(dim_x, dim_y) = {cap}): narrow the prior or raise "
                "the dims")
        high = cap if high is None else (int(high) if cap is None else min(int(high), cap))
        return int(rng.integers(int(low), high + 1))

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Explicit parameters must name every parameter of the prior, with valid values."""
        missing = sorted(set(self.default_prior) - set(params))
        if missing:
            raise PriorError(
                f"family {self.name!r} needs parameter(s) {', '.join(missing)}; got {dict(params)}"
            )
        drawn = self.drawn_params
        unknown = [] if drawn is None else sorted(set(params) - set(self.default_prior) - drawn,
                                                  key=str)
        if unknown:
            known = sorted(set(self.default_prior) | drawn)
            raise PriorError(
                f"family {self.name!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
                f"its parameters are: {', '.join(known) or '(none)'}")
        for key in self.default_prior:
            values = params[key] if isinstance(params[key], (list, tuple)) else [params[key]]
            for value in values:
                self._check_value(key, value)
        return dict(params)

    def _check_value(self, key: str, value: Any) -> None:
        integer = key in self.integer_params
        number = isinstance(value, numbers.Integral if integer else numbers.Real)
        if isinstance(value, bool) or not number or not math.isfinite(value):
            kind = "an integer" if integer else "a finite number"
            raise PriorError(f"family {self.name!r}: parameter {key} must be {kind}, got {value!r}")
        bounds = self.param_bounds.get(key)
        if bounds is not None and not _within(value, bounds):
            raise PriorError(
                f"family {self.name!r}: parameter {key} must lie within "
                f"{_describe(key, bounds)}, got {value!r}"
            )


def _within(value: float | None, bounds: Bounds) -> bool:
    return value is None or bounds[0] < value < bounds[1]


def _describe(key: str, bounds: Bounds) -> str:
    low, high = bounds
    if math.isinf(high):
        return f"{key} > {low:g}"
    return f"{low:g} < {key} < {high:g}"


def _check_range(family: str, key: str, value: Any, integer: bool) -> tuple[float, float | None]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise PriorError(
            f"prior for {family}.{key} must be a [low, high] pair, got {value!r}"
        ) from None
    if not all(v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool))
               for v in (low, high)) or low is None:
        raise PriorError(f"prior for {family}.{key} must be a pair of numbers, got {value!r}")
    if integer:
        ints_ok = float(low).is_integer() and low >= 1 and (
            high is None or (float(high).is_integer() and low <= high))
        if not ints_ok:
            raise PriorError(
                f"prior for {family}.{key} must be integers 1 <= low <= high, got {value!r}"
            )
        return int(low), None if high is None else int(high)
    if high is None or not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise PriorError(
            f"prior for {family}.{key} must be finite numbers with low <= high, got {value!r}"
        )
    return float(low), float(high)


# -- shared linear algebra ----------------------------------------------------

def gaussian_mi(cov: np.ndarray, dim_x: int) -> float:
    """MI between the first ``dim_x`` coordinates and the rest of a zero-mean normal.

    ``0.5 * (logdet S_XX + logdet S_YY - logdet S)`` in float64, clipped at 0.
    """
    cov = np.asarray(cov, dtype=np.float64)
    _, ld_x = np.linalg.slogdet(cov[:dim_x, :dim_x])
    _, ld_y = np.linalg.slogdet(cov[dim_x:, dim_x:])
    _, ld = np.linalg.slogdet(cov)
    return max(0.0, 0.5 * (ld_x + ld_y - ld))


def dense_matrix(dim: int, off_diag: float) -> np.ndarray:
    """``(1 - c) I + c 11^T`` over all ``dim`` coordinates."""
    return (1.0 - off_diag) * np.eye(dim) + off_diag * np.ones((dim, dim))


def lvm_correlation(
    dim_x: int, dim_y: int, k: int, alpha: float, lam: float, beta: float, eta: float,
    eps: float = 1.0,
) -> np.ndarray:
    """Correlation matrix of the latent-variable model (see FAMILIES.md).

    Raw covariance ``alpha^2 11^T + beta^2 (1_X 1_X^T + 1_Y 1_Y^T) + eps^2 I
    + lam^2 sum_{i<k} (e_Xi + e_Yi)(e_Xi + e_Yi)^T + eta^2`` on the diagonal of the
    non-interacting coordinates, normalised to unit diagonal.
    """
    d = dim_x + dim_y
    cov = np.full((d, d), alpha**2)
    cov[:dim_x, :dim_x] += beta**2
    cov[dim_x:, dim_x:] += beta**2
    cov[np.diag_indices(d)] += eps**2
    idx = np.arange(k)
    cov[idx, idx] += lam**2
    cov[dim_x + idx, dim_x + idx] += lam**2
    cov[idx, dim_x + idx] += lam**2
    cov[dim_x + idx, idx] += lam**2
    rest_x = np.arange(k, dim_x)
    rest_y = dim_x + np.arange(k, dim_y)
    cov[rest_x, rest_x] += eta**2
    cov[rest_y, rest_y] += eta**2
    scale = 1.0 / np.sqrt(np.diag(cov))
    return cov * scale[:, None] * scale[None, :]


def correlated_normal(rng: np.random.Generator, n: int, cov: np.ndarray) -> np.ndarray:
    """``n`` rows of a zero-mean normal with covariance ``cov``."""
    chol = np.linalg.cholesky(cov)
    return rng.standard_normal((n, cov.shape[0])) @ chol.T
