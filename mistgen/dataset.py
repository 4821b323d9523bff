"""Reading a meta-dataset store: ``open_meta_dataset(path)``.

A store of (X, Y) samples yields :class:`mistgen.Sample`; a conditional store (built by
``build_conditional_dataset``) yields :class:`mistgen.conditional.ConditionalSample`
(``conditional`` is then true).

The store is streamed: indexing reads the one shard that holds the datapoint (the last
shard read is cached), and ``iter_shards`` yields one shard's samples at a time, so
memory stays flat however large the store is. Every read is checked (``MetaDataset``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import xarray as xr
import zarr

from .conditional import ConditionalSample
from .errors import StoreError
from .integrity import (
    check_array_shapes, check_meta, chunk_damage, dim_columns, location_problem,
    shard_value_count,
)
from .sampling import Sample
from .store import CONDITIONAL_FORMAT, FORMAT_FIELDS, shard_name


class MetaDataset:
    """A read-only view of a complete meta-dataset store.

    Opening checks the attributes against the arrays, that every chunk file exists, and
    that the index locates every datapoint; reading checks each chunk's checksum and the
    size of each shard. Any damage raises ``StoreError`` naming the store, the array and
    the datapoints concerned (``mistgen.verify_store`` lists all of it at once).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise StoreError(f"{self.path} is not a meta-dataset store (no zarr.json)")
        try:
            self._root = zarr.open_group(str(self.path), mode="r")
            meta = dict(self._root.attrs["mistgen"])
        except Exception as exc:  # corrupt metadata of any kind
            raise StoreError(f"{self.path} is not a readable meta-dataset store: {exc}") from exc
        check_meta(self.path, meta)
        self.meta = meta
        self.config = dict(self._root.attrs.get("config", {}))
        check_array_shapes(self.path, self._root, meta)
        self.fields = FORMAT_FIELDS[meta["format"]]
        self.damaged = chunk_damage(self.path, self.num_shards, self.fields)
        # Small integer columns, needed to locate any datapoint, are read once.
        count = len(self)
        self._n, self._offset = (self.read_column(name, 0, count) for name in ("n", "offset"))
        dims = {name: self.read_column(name, 0, count) for name in dim_columns(meta["format"])}
        problem = location_problem(self._n, dims, self._offset, self.shard_size)
        if problem is not None:
            i, why = problem
            raise self._damage(f"datapoint {i}", why)
        # where each group's columns start and end in a datapoint's block: (count, groups + 1)
        self._bounds = np.zeros((count, len(dims) + 1), dtype=np.int64)
        np.cumsum(np.stack([d.astype(np.int64) for d in dims.values()], axis=1), axis=1,
                  out=self._bounds[:, 1:])
        self._width = self._bounds[:, -1]
        self._specs = frozenset(self.specs)
        self._cache: tuple[int, np.ndarray] | None = None

    # -- metadata ---------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        """Whether the store holds (X, Y, Z) samples labelled with I(X;Y|Z)."""
        return self.meta["format"] == CONDITIONAL_FORMAT

    @property
    def split(self) -> str:
        return self.meta["split"]

    @property
    def specs(self) -> list[str]:
        return list(self.meta["specs"])

    @property
    def shard_size(self) -> int:
        return int(self.meta["shard_size"])

    @property
    def num_shards(self) -> int:
        return int(self.meta["num_shards"])

    @property
    def index(self) -> xr.Dataset:
        """Per-datapoint metadata (spec, n, dim_x, dim_y, mi, seed, params, shard, offset;
        dim_z and cmi in a conditional store)."""
        for name in self.fields:
            self._check_chunks(name, 0, len(self))
        try:
            index = xr.open_zarr(str(self.path), consolidated=True)
        except Exception as exc:
            raise self._damage("zarr.json", f"consolidated metadata unreadable ({exc})") from exc
        for name in self.fields:
            try:
                index[name].load()
            except Exception:
                self.read_column(name, 0, len(self))  # raises, naming the damaged chunk
                raise
        return index

    def __len__(self) -> int:
        return int(self.meta["count"])

    def __repr__(self) -> str:
        return (
            f"MetaDataset({str(self.path)!r}, split={self.split!r}, datapoints={len(self)}, "
            f"shards={self.num_shards}, specs={len(self.specs)})"
        )

    # -- checked reading ----------------------------------------------------------
    def _damage(self, where: str, problem: str) -> StoreError:
        return StoreError(f"{self.path}: {where}: {problem} (damaged store; "
                          f"'python -m mistgen verify {self.path}' lists all damage)")

    def _where(self, name: str, lo: int, hi: int, reading: int | None = None) -> str:
        span = f"datapoint {lo}" if hi - lo == 1 else f"datapoints {lo}-{hi - 1}"
        if reading is not None and hi - lo > 1:
            span += f" (reading datapoint {reading})"
        return f"array {name!r}, {span}"

    def _check_chunks(self, name: str, lo: int, hi: int, reading: int | None = None) -> None:
        for k in range(lo // self.shard_size, (hi - 1) // self.shard_size + 1):
            if (name, k) in self.damaged:
                raise self._damage(self._where(name, *self.shard_bounds(k), reading),
                                   self._chunk_problem(name, k))

    def _chunk_problem(self, name: str, k: int) -> str:
        """What is wrong with chunk ``k`` of array ``name`` (one of :attr:`damaged`)."""
        file, kind = self.damaged[(name, k)]
        return f"chunk file {file} is {kind}"

    def read_column(self, name: str, lo: int, hi: int, reading: int | None = None) -> np.ndarray:
        """``name[lo:hi]`` of an index array, checked; failures name the chunk that failed."""
        self._check_chunks(name, lo, hi, reading)
        try:
            return self._root[name][lo:hi]
        except Exception as exc:
            for k in range(lo // self.shard_size, (hi - 1) // self.shard_size + 1):
                a, b = self.shard_bounds(k)
                try:
                    self._root[name][a:b]
                except Exception as chunk_exc:
                    raise self._damage(self._where(name, a, b, reading),
                                       f"cannot be read ({chunk_exc})") from exc
            raise self._damage(self._where(name, lo, hi, reading),
                               f"cannot be read ({exc})") from exc

    def shard_bounds(self, k: int) -> tuple[int, int]:
        """The datapoints [lo, hi) that shard ``k`` holds."""
        return k * self.shard_size, min((k + 1) * self.shard_size, len(self))

    def _shard_values(self, k: int, reading: int | None = None) -> np.ndarray:
        if self._cache is None or self._cache[0] != k:
            name = shard_name(k)
            lo, hi = self.shard_bounds(k)
            where = self._where(name, lo, hi, reading)
            if (name, k) in self.damaged:
                raise self._damage(where, self._chunk_problem(name, k))
            try:
                values = self._root[name][:]
            except Exception as exc:
                raise self._damage(where, f"cannot be read ({exc})") from exc
            expected = shard_value_count(self._n, self._width, lo, hi)
            if values.shape != (expected,):
                raise self._damage(where, f"holds {values.size} values, but the index "
                                          f"locates {expected}")
            self._cache = (k, values)
        return self._cache[1]

    def _build(self, i: int, values: np.ndarray, spec, mi, seed, params, cmi=None):
        n, off = int(self._n[i]), int(self._offset[i])
        block = values[off: off + n * int(self._width[i])].reshape(n, -1)
        parsed = self._check_labels(i, spec, mi, seed, params, cmi)
        bounds = self._bounds[i]
        x, y, *z = (np.ascontiguousarray(block[:, a:b]) for a, b in zip(bounds, bounds[1:]))
        if self.conditional:
            return ConditionalSample(x, y, z[0], cmi=float(cmi), mi=float(mi), spec=str(spec),
                                     seed=int(seed), params=parsed)
        return Sample(x=x, y=y, mi=float(mi), params=parsed, spec=str(spec), seed=int(seed))

    def _check_labels(self, i: int, spec, mi, seed, params, cmi=None) -> dict:
        """Datapoint ``i``'s labels must be ones a build writes; returns the parsed params."""
        try:
            parsed = json.loads(params)
        except (TypeError, ValueError):
            parsed = None
        problems = (
            ("spec", spec in self._specs, f"holds {spec!r}, which is not one of the store's specs"),
            ("mi", bool(np.isfinite(mi)), f"holds {mi!r}, not a finite MI"),
            ("seed", seed >= 0, f"holds {seed!r} (must be >= 0)"),
            ("params", isinstance(parsed, dict), f"holds {str(params)[:80]!r}, not a JSON object"),
        )
        if self.conditional:
            problems += (("cmi", bool(np.isfinite(cmi)), f"holds {cmi!r}, not a finite CMI"),)
        for name, ok, why in problems:
            if not ok:
                raise self._damage(f"array {name!r}, datapoint {i}", why)
        return parsed

    def _labels(self, lo: int, hi: int, reading: int | None = None) -> list[np.ndarray]:
        names = LABELS + (("cmi",) if self.conditional else ())
        return [self.read_column(name, lo, hi, reading) for name in names]

    def __getitem__(self, i: int) -> Sample:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"meta-dataset indices must be integers, got {type(i).__name__}")
        count = len(self)
        if not -count <= i < count:
            raise IndexError(f"datapoint {i} out of range for {count} datapoints")
        i = int(i) % count
        values = self._shard_values(i // self.shard_size, reading=i)
        return self._build(i, values, *(c[0] for c in self._labels(i, i + 1, reading=i)))

    def shard_length(self, k: int) -> int:
        """Number of datapoints in shard ``k``."""
        return min((k + 1) * self.shard_size, len(self)) - k * self.shard_size

    def shard(self, k: int) -> list[Sample]:
        """All samples of shard ``k``, read with one request per array."""
        if not 0 <= k < self.num_shards:
            raise IndexError(f"shard {k} out of range for {self.num_shards} shards")
        lo, hi = self.shard_bounds(k)
        values = self._shard_values(k)
        cols = self._labels(lo, hi)
        return [self._build(i, values, *(c[i - lo] for c in cols)) for i in range(lo, hi)]

    def iter_shards(self, order: Any = None) -> Iterator[list[Sample]]:
        """Yield shards one at a time (in ``order`` if given, e.g. a shuffled range)."""
        for k in range(self.num_shards) if order is None else order:
            yield self.shard(int(k))

    def __iter__(self) -> Iterator[Sample]:
        for shard in self.iter_shards():
            yield from shard


class ConcatMetaDataset:
    """Several stores read as one: datapoints and shards of each store, in order.

    The study keeps one store per (split, family); training and benchmarking read a
    split's stores together through this view, which offers the same reading API.
    """

    def __init__(self, paths: Sequence[str | os.PathLike]):
        if len(paths) == 0:
            raise StoreError("no meta-dataset stores given")
        self.parts = [MetaDataset(p) for p in paths]
        kinds = {p.conditional for p in self.parts}
        if len(kinds) > 1:
            conditional = [str(p.path) for p in self.parts if p.conditional]
            raise StoreError("cannot read conditional (X, Y, Z) stores and (X, Y) stores as "
                             f"one; the conditional ones: {', '.join(conditional)}")
        self.conditional = kinds.pop()
        self._starts = np.cumsum([0] + [len(p) for p in self.parts])
        self._shard_starts = np.cumsum([0] + [p.num_shards for p in self.parts])
        self.path = [p.path for p in self.parts]

    @property
    def specs(self) -> list[str]:
        return list(dict.fromkeys(s for p in self.parts for s in p.specs))

    @property
    def num_shards(self) -> int:
        return int(self._shard_starts[-1])

    @property
    def index(self) -> xr.Dataset:
        keep = list(self.parts[0].fields)
        return xr.concat([p.index[keep] for p in self.parts], dim="datapoint",
                         data_vars="all", coords="minimal", compat="override",
                         combine_attrs="drop")

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __repr__(self) -> str:
        return f"ConcatMetaDataset({len(self.parts)} stores, datapoints={len(self)})"

    def _locate(self, i: int, starts: np.ndarray) -> tuple[int, int]:
        part = int(np.searchsorted(starts, i, side="right") - 1)
        return part, i - int(starts[part])

    def __getitem__(self, i: int) -> Sample:
        count = len(self)
        if not -count <= i < count:
            raise IndexError(f"datapoint {i} out of range for {count} datapoints")
        part, j = self._locate(int(i) % count, self._starts)
        return self.parts[part][j]

    def shard(self, k: int) -> list[Sample]:
        if not 0 <= k < self.num_shards:
            raise IndexError(f"shard {k} out of range for {self.num_shards} shards")
        part, j = self._locate(k, self._shard_starts)
        return self.parts[part].shard(j)

    def shard_length(self, k: int) -> int:
        part, j = self._locate(k, self._shard_starts)
        return self.parts[part].shard_length(j)

    iter_shards = MetaDataset.iter_shards
    __iter__ = MetaDataset.__iter__


LABELS = ("spec", "mi", "seed", "params")


def open_meta_dataset(
    path: str | os.PathLike | Sequence[str | os.PathLike],
) -> MetaDataset | ConcatMetaDataset:
    """Open a complete store written by ``build_meta_dataset`` (or
    ``build_conditional_dataset``), or several of one kind as one."""
    if isinstance(path, (str, os.PathLike)):
        return MetaDataset(path)
    return ConcatMetaDataset(list(path))
