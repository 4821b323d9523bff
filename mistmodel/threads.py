"""Torch's intra-op thread count, set for one block of work and restored after it.

A library call that changed torch's thread count and left it changed would slow down (or
oversubscribe) everything its caller runs next.  Every estimator, backend and training
loop here that takes a ``threads=`` argument applies it through :func:`torch_threads`;
without one, the caller's setting is left alone.

torch keeps the count per thread (each thread's OpenMP setting; a thread that has not run
torch work yet takes the count set last, by any thread): :func:`torch_threads` sets it in
the calling thread and hands back, when the block ends, the count that thread had.  Other
threads keep theirs.  A thread *started* while a block runs, and running its first torch
work then, starts from the block's count, as torch gives it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block on ``threads`` torch intra-op threads in the calling thread, then
    give that thread back the count it had, also when the block raises.  ``None`` leaves
    the setting alone; nested blocks each restore the count they found."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    if previous != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
