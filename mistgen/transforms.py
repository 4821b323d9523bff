"""MI-preserving transforms, applied to X alone and to Y alone.

Each transform is invertible, so the mutual information of the base family is unchanged.
Most per-coordinate transforms are strictly increasing; ``negate`` turns every other Y
coordinate around, and ``fold`` and ``saw`` are not monotone (they
reorder pieces of Y's values, so the dependence folds while the MI stays); ``spiral``
mixes two coordinates by a norm-dependent rotation. Transforms take no parameters and
draw no randomness.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.special import ndtr, ndtri

from .registry import TRANSFORMS


class Transform:
    """An invertible map applied separately to X (``side="x"``) and Y (``side="y"``)."""

    name: ClassVar[str] = ""
    min_dim: ClassVar[int] = 1

    def shape_problem(self, dim_x: int, dim_y: int) -> str | None:
        if min(dim_x, dim_y) < self.min_dim:
            return (
                f"transform {self.name!r} needs dim_x, dim_y >= {self.min_dim}, "
                f"got dim_x={dim_x}, dim_y={dim_y}"
            )
        return None

    def forward(self, v: np.ndarray, side: str) -> np.ndarray:
        raise NotImplementedError(f"transform {self.name!r} does not define "
                                  "forward(self, v, side)")

    def inverse(self, v: np.ndarray, side: str) -> np.ndarray:
        raise NotImplementedError(f"transform {self.name!r} does not define "
                                  "inverse(self, v, side)")


@TRANSFORMS.register
class Identity(Transform):
    name = "base"

    def forward(self, v, side):
        return v

    def inverse(self, v, side):
        return v


@TRANSFORMS.register
class Asinh(Transform):
    name = "asinh"

    def forward(self, v, side):
        return np.arcsinh(v)

    def inverse(self, v, side):
        return np.sinh(v)


@TRANSFORMS.register
class HalfCube(Transform):
    """``x |x|^(1/2)``: heavier tails."""

    name = "halfcube"

    def forward(self, v, side):
        return v * np.sqrt(np.abs(v))

    def inverse(self, v, side):
        return np.sign(v) * np.abs(v) ** (2.0 / 3.0)


def _wiggly_x(v):
    return v + 0.4 * np.sin(v) + 0.2 * np.sin(1.7 * v + 1) + 0.03 * np.sin(3.3 * v - 2.5)


def _wiggly_y(v):
    return v - 0.4 * np.sin(0.4 * v) + 0.17 * np.sin(1.3 * v + 3.5) + 0.02 * np.sin(4.3 * v - 2.5)


@TRANSFORMS.register
class Wiggly(Transform):
    """Identity plus bounded sinusoids; strictly increasing (derivative >= 0.16 on X, 0.53 on Y)."""

    name = "wiggly"
    #: ``|f(v) - v|`` is at most this on either side, which brackets the inverse.
    max_shift: ClassVar[float] = 0.63

    def forward(self, v, side):
        return _wiggly_x(v) if side == "x" else _wiggly_y(v)

    def inverse(self, v, side):
        f = _wiggly_x if side == "x" else _wiggly_y
        v = np.asarray(v, dtype=np.float64)
        lo, hi = v - self.max_shift, v + self.max_shift
        for _ in range(64):  # bisection on a strictly increasing function
            mid = 0.5 * (lo + hi)
            below = f(mid) < v
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return 0.5 * (lo + hi)


@TRANSFORMS.register
class NormalCDF(Transform):
    """The standard normal CDF, squashing each coordinate into (0, 1).

    In float64 it saturates to exactly 1 beyond about 8.3 (exactly 0 below about -38),
    so for very heavy tails distinct values can become tied after this transform.
    """

    name = "normal_cdf"

    def forward(self, v, side):
        return ndtr(v)

    def inverse(self, v, side):
        return ndtri(v)


@TRANSFORMS.register
class Spiral(Transform):
    """Rotate the plane of the first two coordinates by ``(speed / dim) * ||v||^2``.

    The rotation keeps ``||v||`` so the angle, hence the inverse, is known from the image.
    """

    name = "spiral"
    min_dim = 2
    speed: ClassVar[float] = 1.0 / 3.0

    def _rotate(self, v, sign):
        v = np.array(v, dtype=np.float64, copy=True)
        angle = sign * (self.speed / v.shape[1]) * np.einsum("ij,ij->i", v, v)
        c, s = np.cos(angle), np.sin(angle)
        a, b = v[:, 0].copy(), v[:, 1].copy()
        v[:, 0] = c * a - s * b
        v[:, 1] = s * a + c * b
        return v

    def forward(self, v, side):
        return self._rotate(v, 1.0)

    def inverse(self, v, side):
        return self._rotate(v, -1.0)


@TRANSFORMS.register
class Negate(Transform):
    """Y's first, third, ... coordinates negated, X unchanged: strictly decreasing on those
    coordinates, so a positive dependence turns negative there (every one of a 1 + 1
    sample's), while the MI stays.  Its own inverse."""

    name = "negate"

    def forward(self, v, side):
        v = np.asarray(v, dtype=np.float64)
        if side == "x":
            return v
        out = v.copy()
        out[:, 0::2] = -v[:, 0::2]
        return out

    def inverse(self, v, side):
        return self.forward(v, side)


class PieceReversal(Transform):
    """Cut ``[-span, span)`` of each Y coordinate into ``pieces`` equal intervals and put
    them in reverse order (values outside, and X, unchanged): a bijection that is not
    monotone, its own inverse.  The relation between X and Y folds into a saw-tooth; the
    MI stays."""

    pieces: ClassVar[int] = 2
    span: ClassVar[float] = 2.0

    def _reverse(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        width = 2.0 * self.span / self.pieces
        inside = (v >= -self.span) & (v < self.span)
        k = np.clip(np.floor((v + self.span) / width), 0, self.pieces - 1)
        return np.where(inside, v + (self.pieces - 1 - 2 * k) * width, v)

    def forward(self, v, side):
        return v if side == "x" else self._reverse(v)

    def inverse(self, v, side):
        return self.forward(v, side)


@TRANSFORMS.register
class Fold(PieceReversal):
    """Y's halves of [-2, 2) swapped."""

    name = "fold"
    pieces = 2


@TRANSFORMS.register
class Saw(PieceReversal):
    """Y's quarters of [-2, 2) in reverse order."""

    name = "saw"
    pieces = 4
