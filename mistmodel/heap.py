"""Keep the memory of freed tensors inside the process between forward passes.

A CPU forward pass of MIST allocates and frees tensors of a few MB each, dozens of times.
glibc's malloc hands such blocks back to the kernel on free (``mmap`` above its mmap
threshold, heap trimming above its trim threshold), so every pass page-faults the same
memory back in, zero-filled: at n = 500 and 32 + 32 dims that costs as much as the
arithmetic.  :func:`retain_freed_memory` raises both thresholds once per process, so
freed blocks stay mapped and are reused.

The effect is process-wide: the resident size no longer shrinks after a peak (by at most
:data:`TRIM_BYTES` of free memory at the top of a heap), and blocks under
:data:`MMAP_BYTES` come from the heap.  Set the environment variable
``MIST_KEEP_MALLOC=1`` to leave malloc as it is.  On platforms without glibc nothing is
changed.  Results do not depend on it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

__all__ = ["retain_freed_memory", "TRIM_BYTES", "MMAP_BYTES", "OPT_OUT_ENV"]

M_TRIM_THRESHOLD = -1    # mallopt parameter numbers in glibc's malloc.h
M_MMAP_THRESHOLD = -3
TRIM_BYTES = 512 << 20   # free memory kept at the top of a heap before it is returned
MMAP_BYTES = 32 << 20    # glibc's largest allowed mmap threshold on 64-bit systems
OPT_OUT_ENV = "MIST_KEEP_MALLOC"

_lock = threading.Lock()
_state: dict[str, bool] = {}


def _mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        gnu = ctypes.CDLL(None).gnu_get_libc_version    # present in glibc only
    except (OSError, AttributeError):
        return None
    del gnu
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def retain_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds, once per process.

    Returns whether the thresholds are (now or already) raised by this module: False
    where the platform has no glibc, where ``MIST_KEEP_MALLOC=1`` is set, or where glibc
    refused the values.
    """
    if "applied" in _state:                              # decided: no lock on the hot path
        return _state["applied"]
    with _lock:
        if "applied" in _state:
            return _state["applied"]
        applied = False
        if os.environ.get(OPT_OUT_ENV, "") not in ("1", "true", "yes"):
            mallopt = _mallopt()
            if mallopt is not None:
                # The mmap threshold first: setting either one switches off glibc's own
                # adjustment of both, which would otherwise leave it at 128 KiB.
                applied = (mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) == 1
                           and mallopt(M_TRIM_THRESHOLD, TRIM_BYTES) == 1)
        _state["applied"] = applied
        return applied
