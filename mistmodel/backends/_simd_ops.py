"""The SIMD kernels (``_simd.c``) as functions of tensors, each call split over threads.

* :func:`column_moments`, :func:`column_mix` - the tied column attention from per-entry
  tables: the row sums of query-key products of every pair of columns, then every
  cell's mixed, gated update;
* :func:`read_columns` - ``J`` query vectors read every column: ``pooled[j] = sum_r
  softmax_r(<q_j, LN(x_r)>) LN(x_r)`` over the column's real rows;
* :func:`update_cells` - every cell reads its column's ``H x m`` keys (a softmax over
  the m keys of each head), then passes a pre-norm feed-forward layer.

``LN`` is the layer norm without scale and shift; scores are in base 2 (callers multiply
them by ``LOG2E``).  Inputs are CPU tensors; the C side checks each one's dtype (float32,
int64 indices, bool masks), shape and contiguity and names the one that fails.

Each call splits its columns (or rows, or samples) over ``threads`` threads of a pool
private to this module (one for the process, widened when a call asks for more threads,
recreated in a forked child).  Every output
number is computed by one thread in a fixed order, so the result does not depend on the
split - except :func:`column_moments` for fewer samples than threads, which splits rows
and adds the parts' sums.
"""
from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from . import check_threads

try:
    from . import _simd
except ImportError:          # not compiled (no C compiler at install time)
    _simd = None

__all__ = ["unavailable_reason", "LIMITS", "LOG2E", "MAX_SPREAD", "read_columns",
           "update_cells", "column_moments", "column_mix"]

LOG2E = 1.0 / math.log(2.0)
# read_columns shifts query j's scores by their bound |q_j| sqrt(c); the largest power of
# 2 is then at least 2^(-2 |q_j| sqrt(c)).  Below this spread it cannot underflow.
MAX_SPREAD = 100.0
MIN_WORK_PER_THREAD = 8      # columns (or 64-row pieces) below which a call is not split
# sizes the kernels' buffers hold: cell width, queries or keys per column, feed-forward
# width, heads x columns of the column mixing; and whether this CPU has AVX2 and FMA
LIMITS: dict[str, int] = _simd.limits() if _simd is not None else {}

# one pool of worker threads for the process, as wide as the widest call so far
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pools_lock = threading.Lock()


def _forget_pools_in_child() -> None:
    """A forked child has none of its parent's threads: a fresh pool and lock."""
    global _pools_lock, _pool, _pool_size
    _pools_lock = threading.Lock()
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


def _shared_pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool, widened where a call asks for more workers than it has: replaced,
    not shut down (a call may still be handing work to the old one, which finishes it, and
    whose threads exit once nothing refers to it)."""
    global _pool, _pool_size
    with _pools_lock:
        if _pool is None or _pool_size < workers:
            _pool, _pool_size = ThreadPoolExecutor(workers, "mist-simd"), workers
        return _pool


def unavailable_reason() -> str | None:
    """Why the kernels cannot run here, or None when they can."""
    if _simd is None:
        return ("the extension mistmodel.backends._simd is not compiled (it is built by "
                "'pip install' where a C compiler is present)")
    if not LIMITS["cpu_ok"]:
        return "this CPU lacks AVX2 and FMA"
    return None


def _array(t: Tensor, what: str):
    """``t``'s memory for the C side (which checks dtype, shape and contiguity)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{what}: the SIMD kernels take CPU tensors, got one on {t.device}")
    return t.detach().numpy()


def _pieces(total: int, threads: int, minimum: int = MIN_WORK_PER_THREAD
            ) -> list[tuple[int, int]]:
    """``[0, total)`` cut into contiguous pieces, at most one per thread, at least
    ``minimum`` units each."""
    parts = max(1, min(threads, total // minimum))
    bounds = [round(i * total / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _run(call: Callable[[int, int], None], pieces: list[tuple[int, int]]) -> None:
    """``call(lo, hi)`` for every piece, side by side (the kernels release the GIL)."""
    if len(pieces) <= 1:
        for piece in pieces:
            call(*piece)
        return
    list(_shared_pool(len(pieces)).map(lambda piece: call(*piece), pieces))


def _threads(threads: int | None) -> int:
    """``threads`` checked; None means 1."""
    return check_threads(threads) or 1


def read_columns(cells: Tensor, row_mask: Tensor, queries: Tensor, eps: float,
                 threads: int = 1) -> Tensor | None:
    """``pooled[b, d, j] = sum_r softmax_r(<q_j, LN(x_bdr)> / LOG2E) LN(x_bdr)`` over the
    rows ``r`` with ``row_mask[b, r]``: cells ``(B, D, N, c)``, row_mask ``(B, N)`` bool,
    queries ``(J, c)`` (base-2 scores) -> ``(B, D, J, c)``.

    None where a query's scores could span more than ``MAX_SPREAD`` (the shifted powers of
    2 might underflow): the caller then computes the layer otherwise."""
    B, D, N, c = cells.shape
    shift = queries.norm(dim=-1) * c ** 0.5                   # |<q_j, LN(x)>| <= this
    if not bool((2 * shift < MAX_SPREAD).all()):
        return None
    out = torch.empty(B, D, queries.shape[0], c, dtype=torch.float32)
    args = [_array(t, f"read_columns {name}") for t, name in
            ((cells, "cells"), (row_mask, "row_mask"), (queries, "queries"),
             (shift, "shift"))]
    target = _array(out, "read_columns out")
    _run(lambda lo, hi: _simd.read_columns(*args, float(eps), target, lo, hi),
         _pieces(B * D, _threads(threads)))
    return out


def update_cells(cells: Tensor, keys: Tensor, key_bias: Tensor, values: Tensor, heads: int,
                 eps: float, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, eps2: float,
                 threads: int = 1) -> Tensor:
    """Cells read their column's keys, then a pre-norm feed-forward layer:
    ``u = x + sum_j softmax_j((<k_j, LN(x)> + kb_j) / LOG2E) v_j`` (softmax over the
    ``m = J / heads`` keys of each head), ``out = u + w2 silu(w1 LN(u) + b1) + b2``.

    cells ``(B, D, N, c)``; keys ``(B, D, J, c)``; key_bias ``(B, D, J)``; values
    ``(B, D, c, J)`` (channel-major); w1 ``(F, c)``; b1 ``(F,)``; w2 ``(c, F)``; b2 ``(c,)``
    -> ``(B, D, N, c)``."""
    B, D, N, c = cells.shape
    out = torch.empty(B, D, N, c, dtype=torch.float32)
    x, k, kb, v, a1, c1, a2, c2 = (
        _array(t, f"update_cells {name}") for t, name in
        ((cells, "cells"), (keys, "keys"), (key_bias, "key_bias"), (values, "values"),
         (w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")))
    target = _array(out, "update_cells out")
    _run(lambda lo, hi: _simd.update_cells(x, k, kb, v, int(heads), float(eps), a1, c1, a2,
                                           c2, float(eps2), target, lo, hi),
         _pieces(B * D, _threads(threads)))
    return out


def column_moments(index: Tensor, row_mask: Tensor, queries: Tensor, keys: Tensor,
                   threads: int = 1) -> Tensor:
    """The column attention's row sums of query-key products, from tables of per-entry
    queries and keys of head width 8: ``out[b, h, i, j] = sum_r <queries[e_bir, h],
    keys[e_bjr, h]>`` over the rows with ``row_mask[b, r]``, ``e_bir = index[b, i, r]``.

    index ``(B, D, N)`` int64; row_mask ``(B, N)`` bool; queries, keys ``(T, H, 8)`` ->
    ``(B, H, D, D)``.  Samples are split over the threads, or rows where there are fewer
    samples than threads (the parts' sums are then added, in a fixed order)."""
    B, D, N = index.shape
    H = queries.shape[1] if queries.dim() == 3 else 0
    args = [_array(t, f"column_moments {name}") for t, name in
            ((index, "index"), (row_mask, "row_mask"), (queries, "queries"), (keys, "keys"))]
    threads = _threads(threads)
    if B >= threads:                                  # whole samples per thread
        out = torch.empty(B, H, D, D, dtype=torch.float32)
        target = _array(out, "column_moments out")
        _run(lambda lo, hi: _simd.column_moments(*args, target, lo, hi, 0, N),
             _pieces(B, threads, minimum=1))
        return out
    pieces = _pieces(N, threads)                      # rows split: the parts' sums added
    parts = torch.zeros(max(len(pieces), 1), B, H, D, D, dtype=torch.float32)
    targets = {lo: _array(part, "column_moments out") for (lo, _), part in zip(pieces, parts)}
    _run(lambda lo, hi: _simd.column_moments(*args, targets[lo], 0, B, lo, hi), pieces)
    return parts.sum(0)


def column_mix(index: Tensor, side_by_side: Tensor, values: Tensor, one_plus_gate: Tensor,
               base: Tensor, threads: int = 1) -> Tensor:
    """The column attention's update of every cell, from tables of per-entry values:
    ``out[b, i, r] = base[e] + one_plus_gate[e] * sum_{h, j} side_by_side[b, i, h D + j]
    values[index[b, j, r], h]`` with ``e = index[b, i, r]``.

    index ``(B, D, N)`` int64; side_by_side ``(B, D, H * D)`` (the H attention maps side by
    side); values ``(T, H, c)``; one_plus_gate, base ``(T, c)`` -> ``(B, D, N, c)``.  Rows
    are split over the threads, in pieces of 64."""
    B, D, N = index.shape
    c = values.shape[-1]
    out = torch.empty(B, D, N, c, dtype=torch.float32)
    args = [_array(t, f"column_mix {name}") for t, name in
            ((index, "index"), (side_by_side, "side_by_side"), (values, "values"),
             (one_plus_gate, "one_plus_gate"), (base, "base"))]
    target = _array(out, "column_mix out")
    rows = B * N
    pieces = _pieces((rows + 63) // 64, _threads(threads))
    _run(lambda lo, hi: _simd.column_mix(*args, target, lo, hi),
         [(lo * 64, min(hi * 64, rows)) for lo, hi in pieces])
    return out
