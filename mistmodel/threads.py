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

_LOCK = threading.RLock()


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block on ``threads`` torch intra-op threads, then restore the setting
    exactly, also when the block raises.

    ``None`` leaves the setting alone.  The count is process-wide, so blocks that set it
    are serialised by a lock: two threads asking for different counts cannot restore
    each other's values in the wrong order.
    """
    if threads is None:
        yield
        return
    with _LOCK:
        previous = torch.get_num_threads()
        if previous != threads:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if torch.get_num_threads() != previous:
                torch.set_num_threads(previous)
