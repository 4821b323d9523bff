"""Conditional families: samples (X, Y, Z) whose conditional MI I(X;Y|Z) is known exactly.

Every family is a linear structure over the three groups with Gaussian or Student-t noise.
Its dispersion matrix ``S`` over the columns ``(x, y, z)`` gives

* Gaussian: ``I(X;Y|Z) = 0.5 (logdet S_XZ + logdet S_YZ - logdet S_Z - logdet S)``;
* Student-t with ``nu`` degrees of freedom (a Gaussian row divided by one shared
  ``sqrt(chi2_nu / nu)``): by the chain rule ``I(X;Y|Z) = I(X;YZ) - I(X;Z)``, and every
  marginal of a multivariate t is a t with the same ``nu``, so the Gaussian value above
  plus ``c(nu, dx, dy + dz) - c(nu, dx, dz)`` (``c``:
  :func:`mistgen.families.student.student_mi_correction`).  A Student-t chain has
  ``I(X;Y|Z) > 0``: the shared scale couples X and Y even given Z.

Structures (``s`` strengths drawn from the prior; ``R`` standard normal matrices scaled by
``1 / sqrt(columns)``; unit noise):

* ``chain``     X <- Z -> Y: ``X = s_x R Z + e``, ``Y = s_y R' Z + e'``; Gaussian I(X;Y|Z) = 0
  although I(X;Y) > 0;
* ``collider``  X -> Z <- Y: X, Y independent, ``Z = s_x R X + s_y R' Y + e``; I(X;Y) = 0
  (Gaussian) but I(X;Y|Z) > 0;
* ``confounded`` Z -> X, Z -> Y and X -> Y: the chain plus a direct link ``s_d R'' X`` in Y;
* ``factor``    a dense mix: ``S = W W^T + I`` with ``W`` of ``r`` random factors over all
  columns (strength ``s``), so every group depends on every other.

Specs are ``<noise>-<structure>``: ``normal-chain``, ``student-collider``, ...  A sample is
a pure function of ``(spec, n, dims, seed)``; :func:`conditional_sample` draws one.
:func:`transform_groups` passes each group through ``mistgen`` transforms (invertible maps
of a group, so I(X;Y|Z) is unchanged), e.g. ``"halfcube-spiral"``.  A spec may name such a
chain after its structure (``normal-chain-halfcube-spiral``): :func:`draw_conditional` draws
that, and is what conditional stores (:func:`mistgen.build_conditional_dataset`) hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ShapeError, SpecError
from .families.student import student_mi_correction
from .merges import maps_values_together
from .registry import TRANSFORMS

__all__ = ["STRUCTURES", "NOISES", "CONDITIONAL_SPECS", "ConditionalSample",
           "conditional_mi", "dispersion", "conditional_truth", "conditional_sample",
           "check_conditional_spec", "split_conditional_spec", "transform_groups",
           "draw_conditional"]

STRUCTURES = ("chain", "collider", "confounded", "factor")
NOISES = ("normal", "student")
CONDITIONAL_SPECS = tuple(f"{noise}-{s}" for noise in NOISES for s in STRUCTURES)
#: Prior ranges (uniform) of the strengths and of Student-t's degrees of freedom.
STRENGTH = (0.0, 2.0)
NU = (2.0, 10.0)


@dataclass
class ConditionalSample:
    """``n`` rows of (X, Y, Z) with the exact I(X;Y|Z) (and I(X;Y)) in nats."""

    x: np.ndarray            #: (n, dim_x)
    y: np.ndarray            #: (n, dim_y)
    z: np.ndarray            #: (n, dim_z)
    cmi: float               #: I(X;Y|Z)
    mi: float                #: I(X;Y)
    spec: str = ""
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: as :attr:`mistgen.sampling.Sample.merged_by_transform`
    merged_by_transform: bool = False

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def dim_x(self) -> int:
        return self.x.shape[1]

    @property
    def dim_y(self) -> int:
        return self.y.shape[1]

    @property
    def dim_z(self) -> int:
        return self.z.shape[1]


def check_conditional_spec(spec: str) -> tuple[str, str]:
    """``(noise, structure)`` of ``spec``, or a ``SpecError`` listing the known specs."""
    if spec not in CONDITIONAL_SPECS:
        raise SpecError(f"unknown conditional spec {spec!r}; known: "
                        f"{', '.join(CONDITIONAL_SPECS)}")
    noise, structure = spec.split("-")
    return noise, structure


def split_conditional_spec(spec: str) -> tuple[str, str]:
    """``(base spec, transform chain)`` of ``normal-chain[-<transforms>]``; the chain is
    ``"base"`` when none is named.  Unknown names raise a ``SpecError``."""
    if not isinstance(spec, str):
        raise SpecError(f"a conditional spec must be a string, got {spec!r}")
    if spec.endswith("-"):
        raise SpecError(f"conditional spec {spec!r} ends in '-': name a transform after it, "
                        "or drop it")
    parts = spec.split("-")
    base = "-".join(parts[:2])
    check_conditional_spec(base)
    chain = "-".join(parts[2:]) or "base"
    _check_chain(chain, spec)
    return base, chain


def _check_chain(chain: str, context: str):
    from . import transforms as _transforms  # noqa: F401  (registers the transforms)

    names = [t for t in chain.split("-") if t != "base"]
    for name in names:
        if name not in TRANSFORMS:
            raise SpecError(f"unknown transform {name!r} in {context!r}; known transforms: "
                            f"{', '.join(TRANSFORMS.names())}")
    return [TRANSFORMS.get(name) for name in names]


def _logdet(a: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(a)
    if sign <= 0:
        raise np.linalg.LinAlgError("dispersion block is not positive definite")
    return float(value)


def _gaussian_mi(s: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """I(A;B) of a normal with covariance ``s`` between the column sets ``a`` and ``b``."""
    ab = np.concatenate([a, b])
    return 0.5 * (_logdet(s[np.ix_(a, a)]) + _logdet(s[np.ix_(b, b)])
                  - _logdet(s[np.ix_(ab, ab)]))


def conditional_mi(s: np.ndarray, dims: tuple[int, int, int], nu: float | None = None
                   ) -> tuple[float, float]:
    """``(I(X;Y|Z), I(X;Y))`` of a normal (``nu=None``) or Student-t with dispersion ``s``
    over the columns ``(x, y, z)`` of ``dims = (dim_x, dim_y, dim_z)``; float64."""
    dx, dy, dz = dims
    xs, ys = np.arange(dx), np.arange(dx, dx + dy)
    zs = np.arange(dx + dy, dx + dy + dz)
    cmi = _gaussian_mi(s, xs, np.concatenate([ys, zs])) - _gaussian_mi(s, xs, zs)
    mi = _gaussian_mi(s, xs, ys)
    if nu is not None:
        cmi += student_mi_correction(nu, dx, dy + dz) - student_mi_correction(nu, dx, dz)
        mi += student_mi_correction(nu, dx, dy)
    return max(cmi, 0.0), max(mi, 0.0)


def _loadings(rng: np.random.Generator, rows: int, cols: int, strength: float) -> np.ndarray:
    return strength * rng.standard_normal((rows, cols)) / np.sqrt(cols)


def dispersion(structure: str, rng: np.random.Generator, dims: tuple[int, int, int]
               ) -> tuple[np.ndarray, dict[str, float]]:
    """A structure's dispersion matrix over ``(x, y, z)`` and the strengths drawn for it.

    Each structure is a linear map ``W`` of independent unit-variance sources; ``S = W W^T``.
    """
    dx, dy, dz = dims
    p = dx + dy + dz
    sx, sy, sd = (float(rng.uniform(*STRENGTH)) for _ in range(3))
    if structure == "factor":
        r = int(rng.integers(1, p + 1))
        w = _loadings(rng, p, r, sx)
        return w @ w.T + np.eye(p), {"strength": sx, "factors": r}
    # sources: the exogenous group's own columns, then one unit noise per other column
    w = np.zeros((p, p))
    X, Y, Z = slice(0, dx), slice(dx, dx + dy), slice(dx + dy, p)
    w[np.arange(p), np.arange(p)] = 1.0            # every column's own source
    if structure == "collider":                    # Z = A X + B Y + e
        w[Z, X] = _loadings(rng, dz, dx, sx)
        w[Z, Y] = _loadings(rng, dz, dy, sy)
        return w @ w.T, {"strength_x": sx, "strength_y": sy}
    w[X, Z] = _loadings(rng, dx, dz, sx)           # X = A Z + e
    w[Y, Z] = _loadings(rng, dy, dz, sy)           # Y = B Z + e'
    params = {"strength_x": sx, "strength_y": sy}
    if structure == "confounded":                  # Y = B Z + G X + e'
        g = _loadings(rng, dy, dx, sd)
        w[Y] = w[Y] + g @ w[X]
        params["strength_direct"] = sd
    return w @ w.T, params


def _check_dims(n: int, dim_x: int, dim_y: int, dim_z: int) -> None:
    for name, value, low in (("n", n, 2), ("dim_x", dim_x, 1), ("dim_y", dim_y, 1),
                             ("dim_z", dim_z, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ShapeError(f"{name} must be an integer >= {low}, got {value!r}")


def _draw_structure(noise: str, structure: str, rng: np.random.Generator,
                    dims: tuple[int, int, int]):
    s, params = dispersion(structure, rng, dims)
    nu = float(rng.uniform(*NU)) if noise == "student" else None
    if nu is not None:
        params["nu"] = nu
    return s, params, nu


def conditional_truth(spec: str, dim_x: int, dim_y: int, dim_z: int,
                      seed: int | list[int]) -> tuple[float, float, dict[str, Any]]:
    """``(I(X;Y|Z), I(X;Y), params)`` of the datapoint ``conditional_sample`` (or
    :func:`draw_conditional`) draws from these arguments, without drawing its rows."""
    base, chain = split_conditional_spec(spec)
    noise, structure = check_conditional_spec(base)
    _check_dims(2, dim_x, dim_y, dim_z)
    dims = (int(dim_x), int(dim_y), int(dim_z))
    s, params, nu = _draw_structure(noise, structure, np.random.default_rng(seed), dims)
    if chain != "base":                      # as draw_conditional records them
        params = {**params, "transforms": chain}
    return (*conditional_mi(s, dims, nu), params)


def conditional_sample(spec: str, n: int, dim_x: int, dim_y: int, dim_z: int,
                       seed: int | np.random.SeedSequence | list[int]) -> ConditionalSample:
    """Draw a structure (strengths, loadings, ``nu``) and ``n`` rows of (X, Y, Z).

    A pure function of its arguments (``seed`` may be an int or a list of ints, e.g.
    ``[master, split, index]``)."""
    noise, structure = check_conditional_spec(spec)
    _check_dims(n, dim_x, dim_y, dim_z)
    rng = np.random.default_rng(seed)
    dims = (int(dim_x), int(dim_y), int(dim_z))
    s, params, nu = _draw_structure(noise, structure, rng, dims)
    cmi, mi = conditional_mi(s, dims, nu)
    rows = rng.standard_normal((int(n), s.shape[0])) @ np.linalg.cholesky(s).T
    if nu is not None:
        rows *= np.sqrt(nu / rng.chisquare(nu, size=int(n)))[:, None]
    dx, dy = dims[0], dims[1]
    return ConditionalSample(rows[:, :dx], rows[:, dx:dx + dy], rows[:, dx + dy:], cmi, mi,
                             spec=spec, seed=None if not isinstance(seed, (int, np.integer))
                             else int(seed), params=params)


def transform_groups(sample: ConditionalSample, chain: str) -> ConditionalSample:
    """``sample`` with X, Y and Z each passed through the transforms of ``chain`` (names
    joined by '-', as in spec strings; ``"base"`` is none).  A transform that needs more
    columns than a group has (``spiral``: 2) leaves that group alone.  The truth is kept:
    I(X;Y|Z) is invariant to invertible maps of each group."""
    groups = [sample.x, sample.y, sample.z]
    for t in _check_chain(chain, chain):
        groups = [t.forward(g, side) if g.shape[1] >= t.min_dim else g
                  for g, side in zip(groups, ("x", "y", "y"))]
    merged = sample.merged_by_transform or maps_values_together(
        np.hstack([sample.x, sample.y, sample.z]), np.hstack(groups))
    return ConditionalSample(*groups, sample.cmi, sample.mi, spec=sample.spec,
                             seed=sample.seed, params={**sample.params, "transforms": chain},
                             merged_by_transform=merged)


def draw_conditional(spec: str, n: int, dim_x: int, dim_y: int, dim_z: int,
                     seed: int | list[int]) -> ConditionalSample:
    """The datapoint of a spec that may name a transform chain after its structure
    (``normal-chain-halfcube``): :func:`conditional_sample` of the base spec, then
    :func:`transform_groups`; ``spec`` is recorded whole."""
    base, chain = split_conditional_spec(spec)
    s = conditional_sample(base, n, dim_x, dim_y, dim_z, seed)
    if chain != "base":
        s = transform_groups(s, chain)
    s.spec = spec
    return s
