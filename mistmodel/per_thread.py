"""Attributes an estimator keeps for the call in progress, one value per thread.

An estimator object may be shared: one ``MIST`` or ``KSG`` called from several threads
of a server or a thread pool.  What a call records about itself (``last_info``, the row
groups it read, MINE's running average of its marginal term) must then belong to the
thread that made the call, or one thread's call would report, or worse compute with,
another's.  :class:`PerThread` is a descriptor for such attributes: each thread reads
what it last wrote, and a thread that never wrote one reads a fresh default.
:func:`state_without_records` is what a class using them pickles and copies: its
attributes without the records, so a copy starts with none (and pickles at all: thread
storage cannot be pickled).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["PerThread", "state_without_records"]

_STORE = "_per_thread_values"


class PerThread:
    """An instance attribute each thread sees its own value of; ``default()`` makes the
    value a thread reads before it has written one (a fresh one per read, so a mutable
    default is never shared)."""

    def __init__(self, default: Callable[[], Any] = lambda: None):
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @staticmethod
    def _values(obj: Any) -> threading.local:
        values = obj.__dict__.get(_STORE)
        if values is None:              # setdefault: two threads' first reads agree
            values = obj.__dict__.setdefault(_STORE, threading.local())
        return values

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        values = self._values(obj)
        try:
            return getattr(values, self.name)
        except AttributeError:
            return self.default()

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(self._values(obj), self.name, value)


def state_without_records(obj: Any) -> dict[str, Any]:
    """``obj``'s attributes less its :class:`PerThread` records (for ``__getstate__``)."""
    state = dict(obj.__dict__)
    state.pop(_STORE, None)
    return state
