"""Torch's intra-op thread count, set for one block of work and restored after it.

torch's thread count is process state: a library call that changed it and left it changed
would slow down (or oversubscribe) everything its caller runs next.  Every estimator,
backend and training loop here that takes a ``threads=`` argument applies it through
:func:`torch_threads`; without one, the caller's setting is left alone.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ["torch_threads"]

_LOCK = threading.Lock()
_depth = 0          # blocks running now, in all threads
_saved = 0          # the count found by the first of them


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block on ``threads`` torch intra-op threads, then restore the setting
    exactly, also when the block raises.

    ``None`` leaves the setting alone.  The count is process-wide: while blocks overlap
    (in several threads) the latest one's count applies to all, a nested block hands
    back the count it found, and the last block to finish restores the count found by
    the first.  Only the changes are serialised, never the work inside the blocks.
    """
    global _depth, _saved
    if threads is None:
        yield
        return
    with _LOCK:
        previous = torch.get_num_threads()
        if _depth == 0:
            _saved = previous
        _depth += 1
        if previous != threads:
            torch.set_num_threads(threads)
    try:
        yield
    finally:
        with _LOCK:
            _depth -= 1
            target = _saved if _depth == 0 else previous
            if torch.get_num_threads() != target:
                torch.set_num_threads(target)
