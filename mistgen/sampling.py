"""One labelled sample: ``mistgen.sample(spec, n, dim_x, dim_y, seed)``."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .errors import MistgenError, PriorError, ShapeError
from .merges import maps_values_together
from .registry import FAMILIES
from .spec import parse_spec
from .threads import single_threaded_blas

#: Default refusal threshold of ``sample(max_bytes=...)``: ~2 GiB of estimated working memory.
MAX_SAMPLE_BYTES = 2 * 2**30


@dataclass
class Sample:
    """A sample of ``n`` rows from a joint distribution with known mutual information."""

    x: np.ndarray  #: (n, dim_x)
    y: np.ndarray  #: (n, dim_y)
    mi: float  #: exact I(X;Y) in nats
    params: dict[str, Any] = field(default_factory=dict)
    spec: str = ""
    seed: int | None = None
    #: the spec's transforms gave distinct values one value in more than 1% of a column's
    #: rows (in float64: ``normal_cdf`` rounds tails beyond about 8.3 to 1.0), so the rows
    #: hold less MI than ``mi`` says
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


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise MistgenError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise (ShapeError if name.startswith(("n", "dim")) else MistgenError)(
            f"{name} must be >= {minimum}, got {value}"
        )
    return int(value)


def check_cost(parsed, n: int, dim_x: int, dim_y: int, max_bytes: int | None,
               remedy: str) -> None:
    """Refuse a datapoint whose estimated working memory exceeds ``max_bytes``."""
    need = parsed.family.memory_bytes(n, dim_x, dim_y)
    if max_bytes is not None and need > max_bytes:
        raise ShapeError(
            f"{parsed.spec} with n={n}, dim_x={dim_x}, dim_y={dim_y} would need about "
            f"{need / 1e9:.1f} GB of memory ({parsed.family.memory_use(n, dim_x, dim_y)}); "
            f"the limit is {max_bytes / 1e9:.1f} GB. {remedy}"
        )


def sample(
    spec: str,
    n: int,
    dim_x: int,
    dim_y: int,
    seed: int,
    *,
    priors: Mapping[str, Mapping[str, Any]] | None = None,
    params: Mapping[str, Any] | None = None,
    max_bytes: int | None = MAX_SAMPLE_BYTES,
) -> Sample:
    """Draw parameters from the family's prior (or use ``params``), then ``n`` rows.

    The result is a pure function of the arguments. ``priors`` maps a family name to
    prior overrides, e.g. ``{"normal-dense": {"off_diag": [0.1, 0.3]}}``. A request whose
    estimated working memory exceeds ``max_bytes`` (default ~2 GiB) is refused before any
    work; pass a larger value, or ``None``, to allow it. The small matrix products run on
    one BLAS thread for the duration of the call (see ``mistgen.threads``).
    """
    n = check_int("n", n, 2)
    dim_x = check_int("dim_x", dim_x, 1)
    dim_y = check_int("dim_y", dim_y, 1)
    seed = check_int("seed", seed, 0)
    max_bytes = None if max_bytes is None else check_int("max_bytes", max_bytes, 1)
    parsed = parse_spec(spec)
    parsed.check_dims(dim_x, dim_y)
    priors = check_priors(priors)
    check_cost(parsed, n, dim_x, dim_y, max_bytes,
               "Pass max_bytes=<bytes> (or None) to sample() to allow it.")
    family = parsed.family
    rng = np.random.default_rng(seed)
    with single_threaded_blas():
        if params is None:
            prior = family.resolve_prior(priors.get(family.name))
            params = family.draw_params(rng, dim_x, dim_y, prior)
        else:
            params = family.check_params(params)
        raw = family.sample(rng, n, dim_x, dim_y, params)
        x, y = parsed.apply(*raw)
        merged = bool(parsed.transforms) and maps_values_together(np.hstack(raw),
                                                                  np.hstack([x, y]))
        mi = float(family.mutual_information(params, dim_x, dim_y))
    for name, a in (("x", x), ("y", y)):
        if not np.all(np.isfinite(a)):
            raise MistgenError(f"{spec} with {dict(params)} drew non-finite values in {name} "
                               f"(n={n}, dim_x={dim_x}, dim_y={dim_y}, seed={seed}): its "
                               "parameters are too extreme for float64; narrow the prior")
    return Sample(x=x, y=y, mi=mi, params=dict(params), spec=spec, seed=seed,
                  merged_by_transform=merged)


def check_priors(priors: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, list]]:
    """Validate prior overrides (keys: family names, e.g. ``"normal-dense"``); returns them
    resolved to full ranges per named family."""
    if priors is None:
        return {}
    if not isinstance(priors, Mapping):
        raise PriorError(f"priors must map family names to overrides, got {priors!r}")
    resolved = {}
    for family, overrides in priors.items():
        if not isinstance(overrides, Mapping):
            raise PriorError(f"priors[{family!r}] must map parameter names to ranges, got "
                             f"{overrides!r}")
        prior = FAMILIES.get(family).resolve_prior(overrides)
        resolved[family] = {k: list(v) for k, v in prior.items()}
    return resolved
