"""Which (spec, n, dim_x, dim_y, dim_z) each datapoint of a conditional split gets.

The conditional counterpart of :mod:`mistgen.design`, with the same addressing: datapoint
``i`` of split ``split`` under master seed ``seed`` draws its cell from
``default_rng([seed, split_id, i, 0])`` and its data seed from ``[seed, split_id, i, 1]``,
so any datapoint can be rebuilt alone (:func:`mistgen.conditional.draw_conditional`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .conditional import ConditionalSample, draw_conditional, split_conditional_spec
from .design import (Plan, _int_range, address_rng, grid_cell, grid_sizes, make_plan,
                     random_count)
from .errors import MistgenError, ShapeError, SpecError
from .sampling import MAX_SAMPLE_BYTES, check_int

#: Bytes per value of a datapoint's working memory (float64 rows, their transform, a copy).
_BYTES_PER_VALUE = 24


@dataclass(frozen=True)
class ConditionalDesign:
    """Random (``n_grid`` empty: specs in turn, n and dims uniform on their ranges) or
    grid (every spec x n x dims cell ``repeats`` times, in order)."""

    specs: tuple[str, ...]
    dim_ranges: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    n_range: tuple[int, int] = (50, 1000)
    n_datapoints: int = 1
    n_grid: tuple[int, ...] = ()
    dim_grid: tuple[tuple[int, int, int], ...] | None = None
    repeats: int = 1

    @property
    def kind(self) -> str:
        return "grid" if self.n_grid else "random"

    @property
    def count(self) -> int:
        if self.kind == "random":
            return self.n_datapoints
        dims = len(self.dim_grid) if self.dim_grid is not None else 1
        return len(self.specs) * len(self.n_grid) * dims * self.repeats

    def _draw_dims(self, rng: np.random.Generator) -> tuple[int, int, int]:
        return tuple(int(rng.integers(lo, hi + 1)) for lo, hi in self.dim_ranges)

    def cell(self, i: int, rng: np.random.Generator) -> tuple[str, int, int, int, int]:
        if self.kind == "random":
            spec = self.specs[i % len(self.specs)]
            n = int(rng.integers(self.n_range[0], self.n_range[1] + 1))
            return (spec, n, *self._draw_dims(rng))
        spec, n, dims = grid_cell(self.specs, self.n_grid, self.dim_grid, i // self.repeats)
        return (spec, n, *(dims if dims is not None else self._draw_dims(rng)))

    def largest(self) -> tuple[int, int]:
        """The largest n and the most columns (all groups) a datapoint can have."""
        n = max(self.n_grid) if self.n_grid else self.n_range[1]
        if self.dim_grid is not None:
            return n, max(sum(d) for d in self.dim_grid)
        return n, sum(hi for _, hi in self.dim_ranges)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "count": self.count,
                             "dim_ranges": [list(r) for r in self.dim_ranges]}
        if self.kind == "random":
            d["n_range"] = list(self.n_range)
        else:
            d.update(n_grid=list(self.n_grid), repeats=self.repeats,
                     dim_grid=None if self.dim_grid is None
                     else [list(t) for t in self.dim_grid])
        return d


def _dim_triple(entry: Any) -> tuple[int, int, int]:
    if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
        entry = (entry, entry, entry)
    try:
        dx, dy, dz = entry
    except (TypeError, ValueError):
        raise MistgenError(f"dim_grid entries must be ints or [dim_x, dim_y, dim_z] triples, "
                           f"got {entry!r}") from None
    return tuple(check_int(f"dim_grid {name}", v, 1)
                 for name, v in zip(("dim_x", "dim_y", "dim_z"), (dx, dy, dz)))


def make_conditional_design(
    specs: Sequence[str],
    count: int | None = None,
    *,
    n_range: Sequence[int] = (50, 1000),
    dim_range: Sequence[int] = (1, 16),
    dim_y_range: Sequence[int] | None = None,
    dim_z_range: Sequence[int] | None = None,
    n_grid: Sequence[int] | None = None,
    dim_grid: Sequence[Any] | None = None,
    repeats: int | None = None,
) -> ConditionalDesign:
    """Validate the arguments and return a conditional design.

    Random: ``count`` datapoints, n ~ U{n_range}, each group's columns uniform on
    ``dim_range`` (``dim_y_range`` / ``dim_z_range`` for Y / Z when given; drawn
    independently). Grid (``n_grid`` given): every spec x n x dims cell ``repeats`` times;
    dims from ``dim_grid`` (ints: that many columns in every group, or triples) or drawn
    as in the random design.
    """
    if isinstance(specs, str) or not isinstance(specs, Sequence) or len(specs) == 0:
        raise SpecError(f"specs must be a non-empty list of conditional specs, got {specs!r}")
    for s in specs:
        split_conditional_spec(s)
    x_range = _int_range("dim_range", dim_range, 1)
    ranges = (x_range,
              x_range if dim_y_range is None else _int_range("dim_y_range", dim_y_range, 1),
              x_range if dim_z_range is None else _int_range("dim_z_range", dim_z_range, 1))
    if n_grid is None:
        design = ConditionalDesign(tuple(specs), ranges,
                                   n_range=_int_range("n_range", n_range, 2),
                                   n_datapoints=random_count(count, dim_grid, repeats))
    else:
        grid_n = grid_sizes(n_grid, dim_grid)
        dims = None if dim_grid is None else tuple(_dim_triple(d) for d in dim_grid)
        design = ConditionalDesign(tuple(specs), ranges, n_grid=grid_n, dim_grid=dims,
                                   repeats=check_int("repeats", 1 if repeats is None
                                                     else repeats, 1))
        if count is not None and count != design.count:
            raise MistgenError(f"count={count} disagrees with the grid, which holds "
                               f"{design.count} datapoints")
    n, columns = design.largest()
    need = _BYTES_PER_VALUE * n * columns
    if need > MAX_SAMPLE_BYTES:
        raise ShapeError(f"a datapoint with n={n} and {columns} columns would need about "
                         f"{need / 1e9:.1f} GB of memory; the limit is "
                         f"{MAX_SAMPLE_BYTES / 1e9:.1f} GB. Narrow n or the dims.")
    return design


def design_from_attrs(specs: Sequence[str], d: dict[str, Any]) -> ConditionalDesign:
    """The design a store's ``mistgen.design`` attribute describes."""
    x, y, z = d["dim_ranges"]
    ranges = {"dim_range": x, "dim_y_range": y, "dim_z_range": z}
    if d.get("kind") == "grid":
        return make_conditional_design(specs, n_grid=d["n_grid"], dim_grid=d["dim_grid"],
                                       repeats=d["repeats"], **ranges)
    return make_conditional_design(specs, d["count"], n_range=d["n_range"], **ranges)


@dataclass(frozen=True)
class ConditionalPlan(Plan):
    """A :class:`mistgen.design.Plan` whose datapoints are (X, Y, Z) samples."""

    def address(self, i: int) -> tuple[str, int, int, int, int, int]:
        """(spec, n, dim_x, dim_y, dim_z, data seed) of datapoint ``i``."""
        cell = self.design.cell(i, address_rng(self.seed, self.split, i, 0))
        return (*cell, int(address_rng(self.seed, self.split, i, 1).integers(2**63)))

    def datapoint(self, i: int) -> ConditionalSample:
        spec, n, dx, dy, dz, data_seed = self.address(i)
        return draw_conditional(spec, n, dx, dy, dz, data_seed)


def make_conditional_plan(design: ConditionalDesign, seed: int, split: str,
                          shard_size: int) -> ConditionalPlan:
    plan = make_plan(design, seed, split, None, shard_size)
    return ConditionalPlan(plan.design, plan.seed, plan.split, plan.priors, plan.shard_size)
