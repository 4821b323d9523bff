"""What a complete store must hold: the checks that tell damage from data.

Every chunk of a store is written (see ``mistgen.store``), so a chunk file that is absent,
or anything but a regular file in its place (Zarr reads a directory there as fill values),
means damage; a chunk whose bytes changed fails its CRC-32C on reading. The group
attributes and the index arrays must agree with each other: ``count``, ``shard_size`` and
``num_shards``, the index arrays' shapes, and the ``offset`` column, which must lay each
shard's datapoints end to end (``n * (dim_x + dim_y)`` values each; ``n * (dim_x + dim_y +
dim_z)`` in a conditional store).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import StoreError
from .store import FORMAT_FIELDS, FORMAT_GROUPS, INDEX_FIELDS, shard_name

REQUIRED = {"format": str, "complete": bool, "split": str, "specs": list, "count": int,
            "shard_size": int, "num_shards": int}


def chunk_file(path: Path, array: str, k: int) -> Path:
    """The file of chunk ``k`` of a 1-D array (Zarr v3 default chunk keys, ``c/<k>``)."""
    return path / array / "c" / str(k)


def check_meta(path: Path, meta: Mapping[str, Any]) -> None:
    """The ``mistgen`` group attributes: format, completeness, and consistent sizes."""
    if not isinstance(meta.get("format"), str) or meta["format"] not in FORMAT_FIELDS:
        raise StoreError(f"{path} has format {meta.get('format')!r}, expected "
                         f"{' or '.join(map(repr, FORMAT_FIELDS))}; rebuild it with this "
                         "version of mistgen")
    if meta.get("complete") is not True:
        raise StoreError(f"{path} is incomplete (its build did not finish)")
    for key, kind in REQUIRED.items():
        value = meta.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise StoreError(f"{path}: attribute mistgen.{key} must be a {kind.__name__}, "
                             f"got {value!r}")
    count, size, shards = meta["count"], meta["shard_size"], meta["num_shards"]
    if count < 1 or size < 1 or shards != -(-count // size):
        raise StoreError(
            f"{path}: attributes disagree: mistgen.count={count}, shard_size={size} make "
            f"{-(-count // max(size, 1))} shards, but num_shards={shards}"
        )
    if not meta["specs"] or not all(isinstance(s, str) for s in meta["specs"]):
        raise StoreError(f"{path}: attribute mistgen.specs must be a list of spec strings")


def check_array_shapes(path: Path, root, meta: Mapping[str, Any]) -> None:
    """Every index array exists, spans ``count`` datapoints and has one chunk per shard."""
    for name in FORMAT_FIELDS[meta["format"]]:
        try:
            arr = root[name]
        except KeyError:
            raise StoreError(f"{path}: index array {name!r} is missing") from None
        if arr.shape != (meta["count"],) or arr.chunks != (meta["shard_size"],):
            raise StoreError(
                f"{path}: array {name!r} has shape {arr.shape} in chunks of {arr.chunks}; "
                f"the attributes say {meta['count']} datapoints in shards of "
                f"{meta['shard_size']}"
            )


def chunk_damage(path: Path, num_shards: int, fields=INDEX_FIELDS
                 ) -> dict[tuple[str, int], tuple[Path, str]]:
    """Every chunk a store writes that is not a regular file: ``(array, k)`` (``k``: the
    shard the chunk belongs to) -> (its file, what stands there instead: "missing", "a
    directory" or "not a regular file")."""
    damage = {}
    for name in fields:
        kinds = _entry_kinds(path / name / "c")
        for k in range(num_shards):
            kind = kinds.get(str(k), "missing")
            if kind is not None:
                damage[(name, k)] = (chunk_file(path, name, k), kind)
    for k in range(num_shards):
        file = chunk_file(path, shard_name(k), 0)
        kind = _file_kind(file)
        if kind is not None:
            damage[(shard_name(k), k)] = (file, kind)
    return damage


def _entry_kinds(folder: Path) -> dict[str, str | None]:
    """The entries of ``folder`` by name: ``None`` for a regular file (a link to one
    included), else what the entry is (empty when the folder cannot be listed)."""
    try:
        with os.scandir(folder) as entries:
            return {e.name: None if e.is_file() else
                    "a directory" if e.is_dir() else "not a regular file" for e in entries}
    except OSError:
        return {}


def _file_kind(file: Path) -> str | None:
    """``None`` for a regular file (a link to one included), else "missing", "a directory"
    or "not a regular file"."""
    try:
        mode = file.stat().st_mode
    except OSError:
        return "missing"
    return None if stat.S_ISREG(mode) else "a directory" if stat.S_ISDIR(mode) \
        else "not a regular file"


def dim_columns(store_format: str) -> tuple[str, ...]:
    """The index arrays holding a datapoint's column counts, group by group."""
    return tuple(f"dim_{g}" for g in FORMAT_GROUPS[store_format])


def location_problem(n, dims: Mapping[str, np.ndarray], offset, shard_size: int
                     ) -> tuple[int, str] | None:
    """The first datapoint whose n, dims (``{"dim_x": ..., ...}``) or offset cannot locate
    it, and why."""
    for name, column, low in (("n", n, 2), *((k, v, 1) for k, v in dims.items())):
        bad = np.flatnonzero(column < low)
        if bad.size:
            return int(bad[0]), f"array {name!r} holds {int(column[bad[0]])} (must be >= {low})"
    sizes = n.astype(np.int64) * block_width(dims)
    expected = np.empty_like(sizes)
    for lo in range(0, len(sizes), shard_size):
        hi = min(lo + shard_size, len(sizes))
        expected[lo] = 0
        expected[lo + 1:hi] = np.cumsum(sizes[lo:hi - 1])
    bad = np.flatnonzero(offset != expected)
    if bad.size:
        i = int(bad[0])
        return i, (f"array 'offset' holds {int(offset[i])}, but the datapoints before it in "
                   f"its shard end at {int(expected[i])}")
    return None


def block_width(dims: Mapping[str, np.ndarray]) -> np.ndarray:
    """Columns per datapoint: the sum of its groups' column counts."""
    return sum(column.astype(np.int64) for column in dims.values())


def shard_value_count(n, width, lo: int, hi: int) -> int:
    """Number of values shard [lo, hi) holds according to the index (``width``: columns
    per datapoint)."""
    return int((n[lo:hi].astype(np.int64) * width[lo:hi]).sum())
