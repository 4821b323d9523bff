"""Which (spec, n, dim_x, dim_y) each datapoint of a split gets, and its seeds.

Datapoint ``i`` of split ``split`` under master seed ``seed`` is a pure function of
``(seed, split, i)``: its cell is drawn from ``default_rng([seed, split_id, i, 0])`` and
its data from the integer seed ``default_rng([seed, split_id, i, 1]).integers(2**63)``,
which the store records so that ``mistgen.sample`` can rebuild any datapoint alone.
"""
from __future__ import annotations

import itertools
import numbers
import re
import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import MistgenError, ShapeError, SpecError
from .sampling import MAX_SAMPLE_BYTES, Sample, check_cost, check_int, check_priors, sample
from .spec import parse_spec

SPLIT_NAME = re.compile(r"^[A-Za-z0-9_.@+-]+$")


def split_id(split: str) -> int:
    """A stable 32-bit integer for a split name (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(split.encode("utf-8"))


def check_split_names(splits: Iterable[str]) -> None:
    """Refuse split names of which two differ but share their :func:`split_id`.

    A split name enters the seeds only through its 32-bit CRC, so two such splits (e.g.
    ``"plumless"`` and ``"buckeroo"``) under one master seed get the same datapoints.
    Whatever builds several splits under one seed (a study config) checks their names
    here before building any."""
    seen: dict[int, str] = {}
    for split in splits:
        other = seen.setdefault(split_id(split), split)
        if other != split:
            raise MistgenError(
                f"split names {other!r} and {split!r} have the same CRC-32 "
                f"({split_id(split):#010x}), which the seeds are derived from, so the two "
                f"splits would hold the same datapoints; rename one of them")


def address_rng(seed: int, split: str, i: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, split_id(split), i, stream])


def _int_range(name: str, value: Any, minimum: int) -> tuple[int, int]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise MistgenError(f"{name} must be a [low, high] pair, got {value!r}") from None
    low = check_int(f"{name}[0]", low, minimum)
    high = check_int(f"{name}[1]", high, minimum)
    if low > high:
        raise MistgenError(f"{name} must have low <= high, got {value!r}")
    return low, high


def _specs(specs: Sequence[str]) -> tuple[str, ...]:
    if isinstance(specs, str) or not isinstance(specs, Sequence) or len(specs) == 0:
        raise SpecError(f"specs must be a non-empty list of spec strings, got {specs!r}")
    for s in specs:
        parse_spec(s)
    return tuple(specs)


@dataclass(frozen=True)
class Design:
    """Base: a design maps datapoint index -> (spec, n, dim_x, dim_y)."""

    specs: tuple[str, ...]
    dim_range: tuple[int, int]
    dim_y_range: tuple[int, int] | None

    @property
    def count(self) -> int:
        raise NotImplementedError

    def cell(self, i: int, rng: np.random.Generator) -> tuple[str, int, int, int]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def _draw_dims(self, rng) -> tuple[int, int]:
        dx = int(rng.integers(self.dim_range[0], self.dim_range[1] + 1))
        if self.dim_y_range is None:
            return dx, dx
        return dx, int(rng.integers(self.dim_y_range[0], self.dim_y_range[1] + 1))

    def reachable_dims(self) -> list[tuple[int, int]]:
        """Every (dim_x, dim_y) a datapoint of this design can have."""
        return self._reachable_dims()

    def _reachable_dims(self) -> list[tuple[int, int]]:
        xs = range(self.dim_range[0], self.dim_range[1] + 1)
        if self.dim_y_range is None:
            return [(d, d) for d in xs]
        ys = range(self.dim_y_range[0], self.dim_y_range[1] + 1)
        return list(itertools.product(xs, ys))

    def check_shapes(self, dims_for: dict[str, list[tuple[int, int]]]) -> None:
        for spec, dims in dims_for.items():
            parsed = parse_spec(spec)
            for dx, dy in dims:
                problem = parsed.shape_problem(dx, dy)
                if problem:
                    raise ShapeError(f"{problem} (reachable with this split's dims)")

    def check_costs(self, largest_n: int, dim_x: int, dim_y: int) -> None:
        """Refuse a design whose largest datapoint would exceed ``sample``'s memory limit."""
        for spec in self.specs:
            check_cost(parse_spec(spec), largest_n, dim_x, dim_y, MAX_SAMPLE_BYTES,
                       "Stores hold datapoints within that limit: narrow n or the dims.")

    def largest_dims(self) -> tuple[int, int]:
        """The reachable (dim_x, dim_y) with the most coordinates, without enumerating."""
        dim_y = self.dim_range[1] if self.dim_y_range is None else self.dim_y_range[1]
        return self.dim_range[1], dim_y


@dataclass(frozen=True)
class RandomDesign(Design):
    """Specs in turn (``specs[i % len(specs)]``); n and dims uniform on their ranges."""

    n_range: tuple[int, int] = (10, 500)
    n_datapoints: int = 1

    @property
    def count(self) -> int:
        return self.n_datapoints

    def cell(self, i, rng):
        spec = self.specs[i % len(self.specs)]
        n = int(rng.integers(self.n_range[0], self.n_range[1] + 1))
        dx, dy = self._draw_dims(rng)
        return spec, n, dx, dy

    def describe(self):
        return {
            "kind": "random", "count": self.count, "n_range": list(self.n_range),
            "dim_range": list(self.dim_range),
            "dim_y_range": None if self.dim_y_range is None else list(self.dim_y_range),
        }


def grid_cell(specs: Sequence[str], n_grid: Sequence[int], dim_grid: Sequence[tuple] | None,
              k: int) -> tuple:
    """Cell ``k`` of the grid ``specs x n_grid x dim_grid`` (the last varying fastest, as
    ``itertools.product`` orders them) as ``(spec, n, dims)``, found without listing the
    cells; ``dims`` is None without a ``dim_grid``.  The grids must be non-empty
    (:func:`grid_sizes` checks them)."""
    dims = dim_grid if dim_grid is not None else (None,)
    rest, d = divmod(k, len(dims))
    s, j = divmod(rest, len(n_grid))
    return specs[s], n_grid[j], dims[d]


@dataclass(frozen=True)
class GridDesign(Design):
    """Every (spec, n[, dims]) cell of a grid, ``repeats`` datapoints each, in order."""

    n_grid: tuple[int, ...] = ()
    dim_grid: tuple[tuple[int, int], ...] | None = None
    repeats: int = 1

    @property
    def count(self) -> int:
        dims = len(self.dim_grid) if self.dim_grid is not None else 1
        return len(self.specs) * len(self.n_grid) * dims * self.repeats

    def reachable_dims(self) -> list[tuple[int, int]]:
        return list(self.dim_grid) if self.dim_grid is not None else self._reachable_dims()

    def cell(self, i, rng):
        spec, n, dims = grid_cell(self.specs, self.n_grid, self.dim_grid, i // self.repeats)
        dx, dy = dims if dims is not None else self._draw_dims(rng)
        return spec, n, dx, dy

    def describe(self):
        return {
            "kind": "grid", "count": self.count, "n_grid": list(self.n_grid),
            "dim_grid": None if self.dim_grid is None else [list(d) for d in self.dim_grid],
            "repeats": self.repeats, "dim_range": list(self.dim_range),
            "dim_y_range": None if self.dim_y_range is None else list(self.dim_y_range),
        }


def random_count(count: Any, dim_grid: Any, repeats: Any) -> int:
    """The datapoint count of a random design (no ``n_grid``), checked."""
    if dim_grid is not None or repeats is not None:
        raise MistgenError("dim_grid and repeats are only used together with n_grid")
    if count is None:
        raise MistgenError("count is required unless n_grid describes a grid")
    return check_int("count", count, 1)


def grid_sizes(n_grid: Any, dim_grid: Any) -> tuple[int, ...]:
    """A grid design's sample sizes, checked (and that ``dim_grid`` is a non-empty list)."""
    if _grid_length(n_grid) == 0:
        raise MistgenError(
            f"n_grid must be a non-empty list of sample sizes, got {n_grid!r}"
            + (f" (for one size, pass n_grid=[{n_grid!r}])" if _is_number(n_grid) else ""))
    if dim_grid is not None and _grid_length(dim_grid) == 0:
        raise MistgenError(
            f"dim_grid must be a non-empty list of dims when given, got {dim_grid!r}"
            + (f" (for one entry, pass dim_grid=[{dim_grid!r}])" if _is_number(dim_grid)
               else ""))
    return tuple(check_int("n_grid entry", n, 2) for n in n_grid)


def _grid_length(values: Any) -> int:
    """The length of a grid given as a list (or tuple, array, range); 0 for anything else."""
    if isinstance(values, (str, bytes)):
        return 0
    try:
        return len(values)
    except TypeError:
        return 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (numbers.Number, np.number)) and not isinstance(value, bool)


def make_design(
    specs: Sequence[str],
    count: int | None = None,
    *,
    n_range: Sequence[int] = (10, 500),
    dim_range: Sequence[int] = (2, 32),
    dim_y_range: Sequence[int] | None = None,
    n_grid: Sequence[int] | None = None,
    dim_grid: Sequence[Any] | None = None,
    repeats: int | None = None,
) -> Design:
    """Validate the arguments and return a random or a grid design.

    Random: ``count`` datapoints, n ~ U{n_range}, dim_x ~ U{dim_range} and dim_y equal to
    it unless ``dim_y_range`` is given. Grid (``n_grid`` given): every spec x n x dims
    cell ``repeats`` times; dims from ``dim_grid`` (ints or [dim_x, dim_y] pairs) or drawn
    as in the random design.
    """
    specs = _specs(specs)
    dim_range = _int_range("dim_range", dim_range, 1)
    dim_y = None if dim_y_range is None else _int_range("dim_y_range", dim_y_range, 1)
    if n_grid is None:
        count = random_count(count, dim_grid, repeats)
        design: Design = RandomDesign(
            specs, dim_range, dim_y, n_range=_int_range("n_range", n_range, 2), n_datapoints=count
        )
        design.check_costs(design.n_range[1], *design.largest_dims())
        dims = design._reachable_dims()
        design.check_shapes({s: dims for s in specs})
        return design
    grid_n = grid_sizes(n_grid, dim_grid)
    grid_dims = None
    if dim_grid is not None:
        pairs = []
        for d in dim_grid:
            if isinstance(d, (int, np.integer)):
                dx = dy = d
            else:
                try:
                    dx, dy = d
                except (TypeError, ValueError):
                    raise MistgenError(
                        f"dim_grid entries must be ints or [dim_x, dim_y] pairs, got {d!r}"
                    ) from None
            pairs.append((check_int("dim_grid dim_x", dx, 1), check_int("dim_grid dim_y", dy, 1)))
        grid_dims = tuple(pairs)
    repeats = check_int("repeats", 1 if repeats is None else repeats, 1)
    design = GridDesign(specs, dim_range, dim_y, n_grid=grid_n, dim_grid=grid_dims, repeats=repeats)
    if count is not None and count != design.count:
        raise MistgenError(
            f"count={count} disagrees with the grid, which holds {design.count} datapoints "
            f"({len(specs)} specs x {len(grid_n)} n values x "
            f"{len(grid_dims) if grid_dims else 1} dims x {repeats} repeats)"
        )
    largest = max(grid_dims, key=sum) if grid_dims else design.largest_dims()
    design.check_costs(max(grid_n), *largest)
    dims = list(grid_dims) if grid_dims else design._reachable_dims()
    design.check_shapes({s: dims for s in specs})
    return design


@dataclass(frozen=True)
class Plan:
    """Everything needed to produce any datapoint of a split, picklable for workers."""

    design: Design
    seed: int
    split: str
    priors: Mapping[str, Mapping[str, Any]]
    shard_size: int

    @property
    def count(self) -> int:
        return self.design.count

    @property
    def num_shards(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_bounds(self, k: int) -> tuple[int, int]:
        return k * self.shard_size, min((k + 1) * self.shard_size, self.count)

    def address(self, i: int) -> tuple[str, int, int, int, int]:
        """(spec, n, dim_x, dim_y, data seed) of datapoint ``i``."""
        spec, n, dx, dy = self.design.cell(i, address_rng(self.seed, self.split, i, 0))
        data_seed = int(address_rng(self.seed, self.split, i, 1).integers(2**63))
        return spec, n, dx, dy, data_seed

    def drawn_dims(self) -> tuple[int, int]:
        """The most columns of X and of Y among the split's datapoints, from their
        addresses alone (no data made).  It stops once both reach the most the design
        can draw, which a large random split does within a few hundred datapoints."""
        grid = getattr(self.design, "dim_grid", None)
        if grid is not None:                    # every entry of a grid is drawn
            return max(d[0] for d in grid), max(d[1] for d in grid)
        cap = self.design.largest_dims()
        dx_max = dy_max = 0
        for i in range(self.count):
            _, _, dx, dy = self.design.cell(i, address_rng(self.seed, self.split, i, 0))
            dx_max, dy_max = max(dx_max, dx), max(dy_max, dy)
            if (dx_max, dy_max) == cap:
                break
        return dx_max, dy_max

    def datapoint(self, i: int) -> Sample:
        spec, n, dx, dy, data_seed = self.address(i)
        return sample(spec, n, dx, dy, data_seed, priors=self.priors)


def make_plan(design: Design, seed: int, split: str, priors, shard_size: int) -> Plan:
    seed = check_int("seed", seed, 0)
    if not isinstance(split, str) or not SPLIT_NAME.match(split):
        raise MistgenError(
            f"split must be a non-empty name of letters, digits and _.@+-, got {split!r}"
        )
    shard_size = check_int("shard_size", shard_size, 1)
    plan = Plan(design, seed, split, check_priors(priors), shard_size)
    _check_priors_at_dims(plan)
    return plan


def _check_priors_at_dims(plan: Plan) -> None:
    """Refuse now a prior override that some dims of the split make invalid (e.g. a
    negative ``off_diag`` at or below ``-1 / (dim_x + dim_y - 1)``), which would otherwise
    stop the build at the first datapoint of those dims, perhaps hours in.  Each family
    with an override draws its parameters once for every (dim_x, dim_y) the design can
    reach (:meth:`Design.reachable_dims`; no data made), and its ``draw_params`` refuses a
    prior whose range reaches values those dims make invalid (``off_diag`` of the dense
    families, ``within_x`` / ``within_y`` of the independence families)."""
    if not plan.priors:
        return
    overridden = {spec: family for spec, family in
                  ((spec, parse_spec(spec).family) for spec in plan.design.specs)
                  if family.name in plan.priors}
    if not overridden:
        return
    rng = np.random.default_rng(0)
    families = {family.name: family for family in overridden.values()}
    for family in families.values():
        prior = family.resolve_prior(plan.priors[family.name])
        for dim_x, dim_y in plan.design.reachable_dims():
            family.draw_params(rng, dim_x, dim_y, prior)
