"""Spec strings: a family name followed by transform names, joined by '-'.

``student-sparse-asinh`` is the family ``student-sparse`` then the transform ``asinh``;
``normal-dense-normal_cdf-spiral`` applies ``normal_cdf`` then ``spiral``. A spec without
transforms (``normal-dense``) is the same as ``normal-dense-base``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import families as _families  # noqa: F401  (registers the families)
from .errors import ShapeError, SpecError
from .families.base import Family
from .registry import FAMILIES, TRANSFORMS
from .transforms import Transform


@dataclass(frozen=True)
class ParsedSpec:
    spec: str
    family: Family
    transforms: tuple[Transform, ...]

    def shape_problem(self, dim_x: int, dim_y: int) -> str | None:
        for part in (self.family, *self.transforms):
            problem = part.shape_problem(dim_x, dim_y)
            if problem:
                return f"{self.spec}: {problem}"
        return None

    def check_dims(self, dim_x: int, dim_y: int) -> None:
        problem = self.shape_problem(dim_x, dim_y)
        if problem:
            raise ShapeError(problem)

    def apply(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for t in self.transforms:
            x, y = t.forward(x, "x"), t.forward(y, "y")
        return x, y

    def invert(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for t in reversed(self.transforms):
            x, y = t.inverse(x, "x"), t.inverse(y, "y")
        return x, y


def parse_spec(spec: str) -> ParsedSpec:
    """Split a spec string into its family and transforms, or raise ``SpecError``."""
    if not isinstance(spec, str) or not spec:
        raise SpecError(f"a spec must be a non-empty string like 'normal-dense-base', got {spec!r}")
    if spec.endswith("-"):
        raise SpecError(f"spec {spec!r} ends in '-': name a transform after it, or drop it")
    return _parse_spec(spec)


def forget_parsed_specs() -> None:
    """Forget the specs parsed so far (after a family or transform is unregistered)."""
    _parse_spec.cache_clear()


@lru_cache(maxsize=None)
def _parse_spec(spec: str) -> ParsedSpec:
    family_name = None
    for name in sorted(FAMILIES.names(), key=len, reverse=True):
        if spec == name or spec.startswith(name + "-"):
            family_name = name
            break
    if family_name is None:
        raise SpecError(
            f"spec {spec!r} does not start with a known family; "
            f"known families: {', '.join(FAMILIES.names())}"
        )
    rest = spec[len(family_name) + 1:]
    names = rest.split("-") if rest else []
    for t in names:
        if t not in TRANSFORMS:
            raise SpecError(
                f"spec {spec!r}: unknown transform {t!r}; "
                f"known transforms: {', '.join(TRANSFORMS.names())}"
            )
    transforms = tuple(TRANSFORMS.get(t) for t in names if t != "base")
    return ParsedSpec(spec, FAMILIES.get(family_name), transforms)
