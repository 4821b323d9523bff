"""The on-disk layout of a meta-dataset: one Zarr v3 group per split.

::

    <split>.zarr/
      zarr.json            group attributes: "mistgen" (format "mistgen-meta-dataset/2",
                           version, split, seed, count, specs, design, priors, shard size,
                           number of shards, dtype, complete) and "config"
      spec n dim_x dim_y   per-datapoint index arrays over dimension "datapoint",
      mi seed params       chunked one chunk per shard (params are JSON strings)
      shard offset
      shards/00000 ...     one compressed 1-D array (one file) per shard: the datapoints'
                           row-major [x | y] blocks, concatenated; ``offset`` locates them

A conditional store (format "mistgen-conditional-meta-dataset/1", built by
``mistgen.build_conditional_dataset``) holds (X, Y, Z) samples: two more index arrays,
``dim_z`` and ``cmi`` (I(X;Y|Z); ``mi`` holds I(X;Y)), and [x | y | z] blocks.

Ragged samples are stored without padding. Each shard writes its own array and its own
chunk of every index array, so shards can be written by any worker in any order. Every
chunk ends in a CRC-32C checksum (Zarr v3 ``crc32c`` codec) and every chunk is written,
even one equal to the fill value, so a damaged chunk fails its checksum and a missing one
is a missing file (``mistgen.integrity``), never data.

Building streams one shard at a time. Shard buffers are tens of MB and vary in size; on
glibc, long builds keep the most stable memory with ``MALLOC_MMAP_THRESHOLD_=1048576`` in
the environment of the building process (the library itself leaves the allocator alone).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle, Crc32cCodec, ZstdCodec

from .design import Plan
from .errors import MistgenError
from .merges import merges_values
from .threads import single_threaded_blas

FORMAT = "mistgen-meta-dataset/2"
SHARD_GROUP = "shards"
INDEX_FIELDS: dict[str, Any] = {
    "spec": str,
    "n": "int32",
    "dim_x": "int32",
    "dim_y": "int32",
    "mi": "float64",
    "seed": "int64",
    "params": str,
    "shard": "int32",
    "offset": "int64",
}
CONDITIONAL_FORMAT = "mistgen-conditional-meta-dataset/1"
CONDITIONAL_INDEX_FIELDS: dict[str, Any] = {**INDEX_FIELDS, "dim_z": "int32", "cmi": "float64"}
#: The index arrays of each store format.
FORMAT_FIELDS: dict[str, dict[str, Any]] = {FORMAT: INDEX_FIELDS,
                                            CONDITIONAL_FORMAT: CONDITIONAL_INDEX_FIELDS}
#: The groups of columns a datapoint's block holds, by format.
FORMAT_GROUPS: dict[str, tuple[str, ...]] = {FORMAT: ("x", "y"),
                                             CONDITIONAL_FORMAT: ("x", "y", "z")}
DTYPES = ("float32", "float64")
#: The entries of a store's top directory, by format; anything else there is not ours.
FORMAT_ENTRIES: dict[str, frozenset] = {
    name: frozenset({"zarr.json", SHARD_GROUP, *fields}) for name, fields in FORMAT_FIELDS.items()}
STORE_ENTRIES = FORMAT_ENTRIES[FORMAT]
#: Every chunk is written (a chunk equal to the fill value included), so that a missing
#: chunk file always means damage.
ARRAY_CONFIG = {"write_empty_chunks": True}


def shard_name(k: int) -> str:
    return f"{SHARD_GROUP}/{k:05d}"


def shard_compressors(dtype: str) -> tuple:
    return (
        BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle,
                   typesize=np.dtype(dtype).itemsize),
        Crc32cCodec(),
    )


def index_compressors() -> tuple:
    return ZstdCodec(level=0), Crc32cCodec()


def is_store(path: Path) -> bool:
    """Whether ``path`` is a directory whose group metadata is a mistgen store's."""
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        return False
    try:
        return "mistgen" in json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False


def store_entries(path: Path) -> frozenset:
    """The top-level entries a mistgen store at ``path`` may hold, by its recorded format
    (an (X, Y) store's when the format is unreadable or unknown)."""
    try:
        store_format = json.loads((Path(path) / "zarr.json").read_text())["attributes"][
            "mistgen"]["format"]
    except (OSError, ValueError, KeyError, TypeError):
        return STORE_ENTRIES
    return FORMAT_ENTRIES.get(store_format, STORE_ENTRIES) if isinstance(store_format, str) \
        else STORE_ENTRIES


def create_skeleton(path: Path, plan: Plan, attrs: Mapping[str, Any]) -> None:
    root = zarr.open_group(str(path), mode="w-", zarr_format=3)
    root.attrs.update(attrs)
    root.create_group(SHARD_GROUP)
    for name, dtype in FORMAT_FIELDS[attrs["mistgen"]["format"]].items():
        root.create_array(
            name, shape=(plan.count,), chunks=(plan.shard_size,), dtype=dtype,
            dimension_names=["datapoint"], fill_value=None if dtype is str else 0,
            compressors=index_compressors(), config=ARRAY_CONFIG,
        )


def write_shard(path: str, k: int, plan: Plan, dtype: str
                ) -> tuple[int, list[tuple[str, str]]]:
    """Generate shard ``k`` of ``plan`` and write it into the store at ``path``; the number
    of datapoints written and, for those whose values merged, ``(spec, cause)``: cause
    "dtype" where the cast to ``dtype`` merged them (:func:`merges_values`), "transform"
    where the spec's transforms did, in float64 already (``Sample.merged_by_transform``)."""
    with single_threaded_blas():  # tiny matrices: threads only cost
        return _write_shard(path, k, plan, dtype)


def _record(i: int, s, groups: tuple[str, ...]) -> tuple[np.ndarray, dict[str, Any]]:
    """Datapoint ``i``'s block (its groups side by side) and its index entries."""
    parts = [getattr(s, g) for g in groups]
    labels = {"spec": s.spec, "n": s.n, "mi": s.mi, "seed": s.seed,
              "params": json.dumps(s.params, sort_keys=True)}
    for g, part in zip(groups, parts):
        labels[f"dim_{g}"] = part.shape[1]
    if "z" in groups:
        labels["cmi"] = s.cmi
    return np.concatenate(parts, axis=1), labels


def _write_shard(path: str, k: int, plan: Plan, dtype: str
                 ) -> tuple[int, list[tuple[str, str]]]:
    lo, hi = plan.shard_bounds(k)
    root = zarr.open_group(path, mode="r+")
    store_format = root.attrs["mistgen"]["format"]
    fields, groups = FORMAT_FIELDS[store_format], FORMAT_GROUPS[store_format]
    blocks, columns = [], {name: [] for name in fields if name not in ("shard", "offset")}
    merged = []
    for i in range(lo, hi):
        s = plan.datapoint(i)
        exact, labels = _record(i, s, groups)
        block = exact.astype(dtype, copy=False)
        if getattr(s, "merged_by_transform", False):
            merged.append((s.spec, "transform"))
        elif merges_values(exact, block):
            merged.append((s.spec, "dtype"))
        if not np.isfinite(block).all():
            raise MistgenError(
                f"datapoint {i} ({s.spec}, seed {s.seed}) has non-finite values in {dtype}"
            )
        blocks.append(block.ravel())
        for name, column in columns.items():
            column.append(labels[name])
    sizes = np.array([b.size for b in blocks], dtype=np.int64)
    columns["shard"] = np.full(hi - lo, k)
    columns["offset"] = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    values = np.concatenate(blocks)
    arr = root.create_array(
        shard_name(k), shape=values.shape, chunks=values.shape, dtype=dtype,
        compressors=shard_compressors(dtype), dimension_names=["value"], config=ARRAY_CONFIG,
    )
    arr[:] = values
    for name, column in columns.items():
        dtype_of = object if fields[name] is str else fields[name]
        root[name].with_config(ARRAY_CONFIG)[lo:hi] = np.asarray(column, dtype=dtype_of)
    return hi - lo, merged


def record_merged(path: Path, merged: Mapping[str, Mapping[str, int]]) -> None:
    """Record, by cause ("dtype", "transform") and spec, how many datapoints had values
    merged (attributes ``merged_by_dtype`` and ``merged_by_transform``)."""
    root = zarr.open_group(str(path), mode="r+")
    root.attrs["mistgen"] = {**root.attrs["mistgen"],
                             **{f"merged_by_{cause}": dict(sorted(by_spec.items()))
                                for cause, by_spec in sorted(merged.items())}}


def mark_complete(path: Path) -> None:
    """Flag a fully written store complete and consolidate its metadata."""
    root = zarr.open_group(str(path), mode="r+")
    meta = dict(root.attrs["mistgen"])
    meta["complete"] = True
    root.attrs["mistgen"] = meta
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))
