"""Single-threaded BLAS for the duration of a call, restored exactly afterwards.

The generator multiplies small matrices (at most a few hundred by 64); a BLAS thread pool
only adds synchronisation to them, and a busy machine makes its threads spin. Every call
that samples runs inside ``single_threaded_blas()``: the first entrant lowers the BLAS pools
to one thread, the last one out restores the counts it found, so nested and concurrent
calls (from several threads) neither pay twice nor leave the process changed. BLAS thread
counts are process-wide: while such a call runs, BLAS calls of other threads also run on
one thread.
"""
from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_depth = 0
_restore: list[tuple[Any, int]] = []


@functools.cache
def _blas_libraries() -> list:
    # Inspecting the loaded libraries costs ~0.2 ms; it is done once per process.
    return ThreadpoolController().select(user_api="blas").lib_controllers


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the body with one BLAS thread; thread counts are restored on exit, also on errors."""
    global _depth, _restore
    with _lock:
        if _depth == 0:
            counts = [(lib, lib.num_threads) for lib in _blas_libraries()]
            _restore = [(lib, n) for lib, n in counts if n != 1]  # only what changes
            for lib, _ in _restore:
                lib.set_num_threads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for lib, n in _restore:
                    lib.set_num_threads(n)
                _restore = []
