"""Reading a meta-dataset store: ``open_meta_dataset(path)``.

The store is streamed: indexing reads the one shard that holds the datapoint (the last
shard read is cached), and ``iter_shards`` yields one shard's samples at a time, so
memory stays flat however large the store is.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import xarray as xr
import zarr

from .errors import StoreError
from .sampling import Sample
from .store import FORMAT, shard_name


class MetaDataset:
    """A read-only view of a complete meta-dataset store."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise StoreError(f"{self.path} is not a meta-dataset store (no zarr.json)")
        try:
            self._root = zarr.open_group(str(self.path), mode="r")
            meta = dict(self._root.attrs["mistgen"])
        except Exception as exc:  # corrupt metadata of any kind
            raise StoreError(f"{self.path} is not a readable meta-dataset store: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise StoreError(f"{self.path} has format {meta.get('format')!r}, expected {FORMAT!r}")
        if not meta.get("complete"):
            raise StoreError(f"{self.path} is incomplete (its build did not finish)")
        self.meta = meta
        self.config = dict(self._root.attrs.get("config", {}))
        # Small integer columns, needed to locate any datapoint, are read once.
        self._n = self._root["n"][:]
        self._dim_x = self._root["dim_x"][:]
        self._dim_y = self._root["dim_y"][:]
        self._offset = self._root["offset"][:]
        self._cache: tuple[int, np.ndarray] | None = None

    # -- metadata ---------------------------------------------------------------
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
        """Per-datapoint metadata (spec, n, dim_x, dim_y, mi, seed, params, shard, offset)."""
        return xr.open_zarr(str(self.path), consolidated=True)

    def __len__(self) -> int:
        return int(self.meta["count"])

    def __repr__(self) -> str:
        return (
            f"MetaDataset({str(self.path)!r}, split={self.split!r}, datapoints={len(self)}, "
            f"shards={self.num_shards}, specs={len(self.specs)})"
        )

    # -- data -------------------------------------------------------------------
    def _shard_values(self, k: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != k:
            self._cache = (k, self._root[shard_name(k)][:])
        return self._cache[1]

    def _build(self, i: int, values: np.ndarray, spec, mi, seed, params) -> Sample:
        n, dx, dy = int(self._n[i]), int(self._dim_x[i]), int(self._dim_y[i])
        off = int(self._offset[i])
        block = values[off: off + n * (dx + dy)].reshape(n, dx + dy)
        return Sample(
            x=np.ascontiguousarray(block[:, :dx]), y=np.ascontiguousarray(block[:, dx:]),
            mi=float(mi), params=json.loads(params), spec=str(spec), seed=int(seed),
        )

    def __getitem__(self, i: int) -> Sample:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"meta-dataset indices must be integers, got {type(i).__name__}")
        count = len(self)
        if not -count <= i < count:
            raise IndexError(f"datapoint {i} out of range for {count} datapoints")
        i = int(i) % count
        values = self._shard_values(i // self.shard_size)
        cols = [self._root[name][i: i + 1][0] for name in ("spec", "mi", "seed", "params")]
        return self._build(i, values, *cols)

    def shard_length(self, k: int) -> int:
        """Number of datapoints in shard ``k``."""
        return min((k + 1) * self.shard_size, len(self)) - k * self.shard_size

    def shard(self, k: int) -> list[Sample]:
        """All samples of shard ``k``, read with one request per array."""
        if not 0 <= k < self.num_shards:
            raise IndexError(f"shard {k} out of range for {self.num_shards} shards")
        lo, hi = k * self.shard_size, min((k + 1) * self.shard_size, len(self))
        values = self._root[shard_name(k)][:]
        r = self._root
        cols = [r[name][lo:hi] for name in ("spec", "mi", "seed", "params")]
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
        keep = list(INDEX_VARIABLES)
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


INDEX_VARIABLES = ("spec", "n", "dim_x", "dim_y", "mi", "seed", "params", "shard", "offset")


def open_meta_dataset(
    path: str | os.PathLike | Sequence[str | os.PathLike],
) -> MetaDataset | ConcatMetaDataset:
    """Open a complete store written by ``build_meta_dataset``, or several as one."""
    if isinstance(path, (str, os.PathLike)):
        return MetaDataset(path)
    return ConcatMetaDataset(list(path))
