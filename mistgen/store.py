"""The on-disk layout of a meta-dataset: one Zarr v3 group per split.

::

    <split>.zarr/
      zarr.json            group attributes: "mistgen" (format, version, split, seed,
                           specs, design, priors, shard size, dtype, complete) and "config"
      spec n dim_x dim_y   per-datapoint index arrays over dimension "datapoint",
      mi seed params       chunked one chunk per shard (params are JSON strings)
      shard offset
      shards/00000 ...     one compressed 1-D array (one file) per shard: the datapoints'
                           row-major [x | y] blocks, concatenated; ``offset`` locates them

Ragged samples are stored without padding. Each shard writes its own array and its own
chunk of every index array, so shards can be written by any worker in any order.
"""
from __future__ import annotations

import ctypes
import functools
import json
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import zarr
from threadpoolctl import threadpool_limits
from zarr.codecs import BloscCodec, BloscShuffle

from .design import Plan
from .errors import MistgenError, StoreError

FORMAT = "mistgen-meta-dataset/1"
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


def shard_name(k: int) -> str:
    return f"{SHARD_GROUP}/{k:05d}"


def compressor(dtype: str) -> BloscCodec:
    return BloscCodec(
        cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle, typesize=np.dtype(dtype).itemsize
    )


def is_store(path: Path) -> bool:
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        return False
    try:
        return "mistgen" in json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False


def partial_path(path: Path) -> Path:
    """A sibling path to build into; renamed onto ``path`` only once complete."""
    return path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:12]}")


def create_skeleton(path: Path, plan: Plan, attrs: Mapping[str, Any]) -> None:
    root = zarr.open_group(str(path), mode="w-", zarr_format=3)
    root.attrs.update(attrs)
    root.create_group(SHARD_GROUP)
    for name, dtype in INDEX_FIELDS.items():
        root.create_array(
            name, shape=(plan.count,), chunks=(plan.shard_size,), dtype=dtype,
            dimension_names=["datapoint"], fill_value=None if dtype is str else 0,
        )


@functools.cache
def release_large_buffers() -> None:
    """Have glibc serve allocations of 1 MiB and more by mmap, once per process.

    Shard buffers are tens of MB and vary in size; under glibc's adaptive threshold the
    freed buffers stay in fragmented heaps and a long build's memory creeps up with the
    number of shards. Mapped buffers go back to the OS when freed, so memory stays flat.
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def write_shard(path: str, k: int, plan: Plan, dtype: str) -> int:
    """Generate shard ``k`` of ``plan`` and write it into the store at ``path``."""
    release_large_buffers()
    with threadpool_limits(limits=1, user_api="blas"):  # tiny matrices: threads only cost
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
        compressors=compressor(dtype), dimension_names=["value"],
    )
    arr[:] = values
    columns = {
        "spec": np.array(specs, dtype=object), "n": ns, "dim_x": dxs, "dim_y": dys, "mi": mis,
        "seed": seeds, "params": np.array(params, dtype=object),
        "shard": np.full(hi - lo, k), "offset": offsets,
    }
    for name, column in columns.items():
        root[name][lo:hi] = np.asarray(column, dtype=object if INDEX_FIELDS[name] is str
                                       else INDEX_FIELDS[name])
    return hi - lo


def finalize(path: Path, final: Path, overwrite: bool) -> None:
    """Mark the store complete and move it into place (atomic rename)."""
    root = zarr.open_group(str(path), mode="r+")
    meta = dict(root.attrs["mistgen"])
    meta["complete"] = True
    root.attrs["mistgen"] = meta
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))
    old = None
    if final.exists():
        if not overwrite:
            raise StoreError(f"{final} appeared while building; refusing to overwrite it")
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:12]}")
        final.rename(old)
    path.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_destination(path: Path, overwrite: bool) -> None:
    if not path.exists():
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not overwrite:
        raise StoreError(f"{path} already exists; pass overwrite=True to replace it")
    empty_dir = path.is_dir() and not any(path.iterdir())
    if not (is_store(path) or empty_dir):
        raise StoreError(
            f"{path} exists and is not a mistgen meta-dataset; refusing to overwrite it"
        )
