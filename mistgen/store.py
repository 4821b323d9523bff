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
DTYPES = ("float32", "float64")
#: The entries of a store's top directory; anything else there is not ours.
STORE_ENTRIES = frozenset({"zarr.json", SHARD_GROUP, *INDEX_FIELDS})
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


def create_skeleton(path: Path, plan: Plan, attrs: Mapping[str, Any]) -> None:
    root = zarr.open_group(str(path), mode="w-", zarr_format=3)
    root.attrs.update(attrs)
    root.create_group(SHARD_GROUP)
    for name, dtype in INDEX_FIELDS.items():
        root.create_array(
            name, shape=(plan.count,), chunks=(plan.shard_size,), dtype=dtype,
            dimension_names=["datapoint"], fill_value=None if dtype is str else 0,
            compressors=index_compressors(), config=ARRAY_CONFIG,
        )


def write_shard(path: str, k: int, plan: Plan, dtype: str) -> int:
    """Generate shard ``k`` of ``plan`` and write it into the store at ``path``."""
    with single_threaded_blas():  # tiny matrices: threads only cost
        return _write_shard(path, k, plan, dtype)


def _write_shard(path: str, k: int, plan: Plan, dtype: str) -> int:
    lo, hi = plan.shard_bounds(k)
    blocks, specs, params, seeds, mis, ns, dxs, dys = [], [], [], [], [], [], [], []
    for i in range(lo, hi):
        s = plan.datapoint(i)
        block = np.concatenate([s.x, s.y], axis=1).astype(dtype, copy=False)
        if not np.isfinite(block).all():
            raise MistgenError(
                f"datapoint {i} ({s.spec}, seed {s.seed}) has non-finite values in {dtype}"
            )
        blocks.append(block.ravel())
        specs.append(s.spec)
        params.append(json.dumps(s.params, sort_keys=True))
        seeds.append(s.seed)
        mis.append(s.mi)
        ns.append(s.n)
        dxs.append(s.dim_x)
        dys.append(s.dim_y)
    sizes = np.array([b.size for b in blocks], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    values = np.concatenate(blocks)
    root = zarr.open_group(path, mode="r+")
    arr = root.create_array(
        shard_name(k), shape=values.shape, chunks=values.shape, dtype=dtype,
        compressors=shard_compressors(dtype), dimension_names=["value"], config=ARRAY_CONFIG,
    )
    arr[:] = values
    columns = {
        "spec": np.array(specs, dtype=object), "n": ns, "dim_x": dxs, "dim_y": dys, "mi": mis,
        "seed": seeds, "params": np.array(params, dtype=object),
        "shard": np.full(hi - lo, k), "offset": offsets,
    }
    for name, column in columns.items():
        dtype_of = object if INDEX_FIELDS[name] is str else INDEX_FIELDS[name]
        root[name].with_config(ARRAY_CONFIG)[lo:hi] = np.asarray(column, dtype=dtype_of)
    return hi - lo


def mark_complete(path: Path) -> None:
    """Flag a fully written store complete and consolidate its metadata."""
    root = zarr.open_group(str(path), mode="r+")
    meta = dict(root.attrs["mistgen"])
    meta["complete"] = True
    root.attrs["mistgen"] = meta
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))
