"""Peak memory of a block of code, measured in this process.

    with PeakMemory() as peak:
        estimator.estimate(x, y)
    peak.mib        # peak memory of the block above what was in use when it started

Two measures, each a lower bound of the block's own peak, of which ``mib`` is the larger:

* ``traced_mib``: the peak of what ``tracemalloc`` sees allocated during the block, that is
  Python objects and numpy arrays (numpy reports its buffers to it); torch's tensors and
  C/C++ libraries' own buffers are not seen;
* ``resident_mib``: how far the process's resident high-water mark rose above its resident
  size at the start (Linux resets ``VmHWM`` when ``5`` is written to
  ``/proc/self/clear_refs``); this sees everything, but not memory the allocator had kept
  from earlier calls and hands out again, so after a warm-up call it often reads 0.

Both start from the block's own beginning, so several contenders can be measured side by
side in one process. Where ``/proc`` cannot be used, ``resident_mib`` is ``None``.

``tracemalloc``'s own tables (a few dozen bytes per live Python allocation) count in the
resident rise: a block that makes millions of small Python objects reads high (a list of
2 million short strings: a resident rise of 351 MiB traced, 149 MiB untraced), one whose
memory is in a few large arrays (numpy, the estimators here) reads right.
"""
from __future__ import annotations

import tracemalloc
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
MIB = 2**20


def _status_mib(key: str) -> float:
    for line in STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise OSError(f"{key} not in {STATUS}")


class PeakMemory:
    """Context manager; see the module's docstring."""

    def __init__(self) -> None:
        self.traced_mib = 0.0
        self.resident_mib: float | None = None
        self._resident_start: float | None = None
        self._was_tracing = False

    @property
    def mib(self) -> float:
        return max(self.traced_mib, self.resident_mib or 0.0)

    def __enter__(self) -> PeakMemory:
        try:
            CLEAR_REFS.write_text("5")
            self._resident_start = _status_mib("VmRSS")
        except OSError:
            self._resident_start = None
        self._was_tracing = tracemalloc.is_tracing()
        if self._was_tracing:
            tracemalloc.reset_peak()
        else:
            tracemalloc.start()
        self._traced_start = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc_info) -> None:
        peak = tracemalloc.get_traced_memory()[1]
        if not self._was_tracing:
            tracemalloc.stop()
        self.traced_mib = max(0.0, (peak - self._traced_start) / MIB)
        if self._resident_start is not None:
            try:
                self.resident_mib = max(0.0, _status_mib("VmHWM") - self._resident_start)
            except OSError:
                self.resident_mib = None


def fmt(mib: float | None) -> str:
    """A peak for a table: MiB with two decimals, or n/a."""
    return "n/a" if mib is None else f"{mib:.2f}"


def ratio(mine: float | None, theirs: float | None) -> str:
    """theirs / mine as a table entry; n/a where either is missing or mine is below 0.01 MiB."""
    if mine is None or theirs is None or mine < 0.01:
        return "n/a"
    return f"{theirs / mine:.2f}x"
