"""Compiled CPU kernels for the network's per-cell layers, at inference.

A forward pass spends its time in layers that apply the same chain of small operations to
every cell of the sample matrix.  In torch each operation of the chain is a pass over all
cells (and the column attention first copies per-entry tables out to every cell); the C
kernels in ``_kernels.c`` run the whole chain on eight cells at a time in registers, one
pass over memory:

* :func:`column_moments`, :func:`column_mix` - the column attention, straight from the
  per-entry tables of :meth:`~mistmodel.model.TiedColumnAttention.forward_lookup`: the
  row sums of query-key products of every pair of columns, then every cell's mixed,
  gated update;
* :func:`read_columns` - ``J`` query vectors read every column: ``pooled[j] = sum_r
  softmax_r(<q_j, LN(x_r)>) LN(x_r)`` over the column's real rows (the inducing points
  reading a column; the pooling seed reading it);
* :func:`update_cells` - every cell reads its column's ``H x m`` keys (a softmax over the
  m keys of each head) and then passes a pre-norm feed-forward layer.

``LN`` is the layer norm without scale and shift; the callers (:mod:`mistmodel.model`)
fold those into the vectors and maps, as on the torch path.  Scores are in base 2.

The kernels are used under the same conditions as :mod:`mistmodel.fused` (float32 CPU
tensors, autograd off, at least ``MIN_ROWS`` cells), for sizes that fit their buffers
(cell width a multiple of 8 up to 64, up to 64 queries or keys per column, feed-forward
width up to 256, heads x columns up to 4096; the column sums need head width 8), and only
where the extension was compiled at install time, the CPU has AVX2 and FMA, and a
one-time check against the torch formulas passes here; everywhere else the network runs
its torch path, which is also the reference the tests compare the kernels with.
``MIST_NO_KERNELS=1`` turns them off for the process, :func:`kernels_disabled` for a
block of code.  Each call splits its columns (or rows) over :func:`thread_count` threads
(torch's thread count, or those of :func:`kernel_threads`); each output is computed by
one thread in a fixed order, so the result does not depend on the split - except
:func:`column_moments` for fewer samples than threads, whose per-thread partial sums are
added.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import Tensor

from .fused import LOG2E, MIN_ROWS

__all__ = ["kernels_available", "enabled", "use_kernels", "kernels_disabled", "kernel_threads",
           "thread_count", "read_columns",
           "update_cells", "column_moments", "column_mix", "MAX_SPREAD", "OPT_OUT_ENV"]

OPT_OUT_ENV = "MIST_NO_KERNELS"
# read_columns shifts query j's scores by their bound |q_j| sqrt(c); the largest power of
# 2 is then at least 2^(-2 |q_j| sqrt(c)).  Below this spread it cannot underflow.
MAX_SPREAD = 100.0
MIN_WORK_PER_THREAD = 8      # columns (or 64-row pieces) below which a call is not split

_lock = threading.RLock()
_state: dict[str, object] = {}
_pools: dict[int, ThreadPoolExecutor] = {}
_local = threading.local()


def _forget_pools_in_child() -> None:
    """A forked child has none of its parent's threads: fresh pools and lock, and no
    switch-off or half-done self-check left over from another thread of the parent."""
    global _lock
    _lock = threading.RLock()
    _pools.clear()
    _state.pop("off", None)
    if _state.pop("checking", None):
        _state.pop("ok", None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)

try:
    from . import _kernels as _ext
except ImportError:          # not compiled (no C compiler at install time)
    _ext = None


# the sizes the kernels' buffers hold and whether this CPU can run them (constants)
_LIMITS: dict[str, int] = _ext.limits() if _ext is not None else {}


# --------------------------------------------------------------------------------------
# when to use them
# --------------------------------------------------------------------------------------

def kernels_available() -> bool:
    """Whether the compiled kernels are present, usable on this CPU and agree with torch."""
    if "ok" in _state:
        return bool(_state["ok"])
    with _lock:
        if "ok" not in _state:
            _state["ok"] = False               # the self-check below runs the kernels
            _state["checking"] = True
            try:
                ok = (_ext is not None and bool(_LIMITS.get("cpu_ok"))
                      and os.environ.get(OPT_OUT_ENV, "") in ("", "0"))
                _state["ok"] = ok and _self_check()
            finally:
                _state.pop("checking", None)
        return bool(_state["ok"])


@contextlib.contextmanager
def kernels_disabled() -> Iterator[None]:
    """Within this block (in every thread) the network runs its torch path: for
    comparisons and benchmarks."""
    with _lock:
        _state["off"] = int(_state.get("off", 0)) + 1
    try:
        yield
    finally:
        with _lock:
            _state["off"] = max(0, int(_state.get("off", 0)) - 1)


def enabled() -> bool:
    """Whether the kernels are available and not switched off by :func:`kernels_disabled`."""
    return not _state.get("off") and kernels_available()


def use_kernels(t: Tensor, cells: int | None = None, vectors: int = 1, hidden: int = 1,
                mixed: int = 1) -> bool:
    """Whether to run the kernels on this call: ``t`` gives device, dtype and the cell
    width (its last axis), ``cells`` the number of cells (default: ``t``'s rows); the
    sizes the kernels hold in fixed buffers must fit too: ``vectors`` queries or keys per
    column, ``hidden`` feed-forward width, ``mixed`` heads x columns of the column mixing."""
    c = t.shape[-1]
    cells = t.numel() // max(c, 1) if cells is None else cells
    if not (t.device.type == "cpu" and t.dtype == torch.float32 and not torch.is_grad_enabled()
            and cells >= MIN_ROWS and c % 8 == 0 and enabled()):
        return False
    return (c <= _LIMITS["max_c"] and vectors <= _LIMITS["max_j"]
            and hidden <= _LIMITS["max_f"] and mixed <= _LIMITS["max_hd"])


def _self_check() -> bool:
    """Every kernel against its torch formula on a small padded batch."""
    gen = torch.Generator().manual_seed(0)
    B, D, N, c, H, m, Fw, T = 2, 3, 21, 16, 2, 4, 32, 40
    x = torch.randn(B, D, N, c, generator=gen) * 2 + 0.5
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 15:] = False
    q = torch.randn(5, c, generator=gen) * 0.3
    keys = torch.randn(B, D, H * m, c, generator=gen) * 0.3
    kb = torch.randn(B, D, H * m, generator=gen)
    vals = torch.randn(B, D, c, H * m, generator=gen)
    w1, b1 = torch.randn(Fw, c, generator=gen) * 0.3, torch.randn(Fw, generator=gen)
    w2, b2 = torch.randn(c, Fw, generator=gen) * 0.3, torch.randn(c, generator=gen)
    index = torch.randint(0, T, (B, D, N), generator=gen)
    tq, tk = torch.randn(T, H, 8, generator=gen), torch.randn(T, H, 8, generator=gen)
    tv, tg, tb = (torch.randn(T, H, c, generator=gen), torch.randn(T, c, generator=gen),
                  torch.randn(T, c, generator=gen))
    mix = torch.softmax(torch.randn(B, D, H * D, generator=gen), dim=-1)
    try:
        got = (read_columns(x, mask, q, 1e-5, threads=1),
               update_cells(x, keys, kb, vals, H, 1e-5, w1, b1, w2, b2, 1e-5, threads=1),
               column_moments(index, mask, tq, tk, threads=1),
               column_mix(index, mix, tv, tg, tb, threads=1))
    except (RuntimeError, ValueError):
        return False
    want = (reference_read(x, mask, q, 1e-5),
            reference_update(x, keys, kb, vals, H, 1e-5, w1, b1, w2, b2, 1e-5),
            reference_moments(index, mask, tq, tk), reference_mix(index, mix, tv, tg, tb))
    return all(g is not None and g.shape == w.shape and torch.allclose(g, w, rtol=1e-4, atol=1e-4)
               for g, w in zip(got, want))


# --------------------------------------------------------------------------------------
# the formulas, in torch (the self-check's and the tests' reference)
# --------------------------------------------------------------------------------------

def reference_read(cells: Tensor, row_mask: Tensor, queries: Tensor, eps: float) -> Tensor:
    normed = F.layer_norm(cells, (cells.shape[-1],), eps=eps)               # (B, D, N, c)
    scores = (normed @ queries.T) * (1 / LOG2E)                             # (B, D, N, J)
    scores = scores.masked_fill(~row_mask[:, None, :, None], float("-inf"))
    return torch.softmax(scores, dim=2).transpose(2, 3) @ normed            # (B, D, J, c)


def reference_update(cells: Tensor, keys: Tensor, key_bias: Tensor, values: Tensor,
                     heads: int, eps: float, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor,
                     eps2: float) -> Tensor:
    B, D, N, c = cells.shape
    J = keys.shape[2]
    normed = F.layer_norm(cells, (c,), eps=eps)
    scores = (normed @ keys.transpose(2, 3) + key_bias[:, :, None]) * (1 / LOG2E)
    w = torch.softmax(scores.view(B, D, N, heads, J // heads), dim=-1).view(B, D, N, J)
    u = cells + w @ values.transpose(2, 3)
    return u + F.linear(F.silu(F.linear(F.layer_norm(u, (c,), eps=eps2), w1, b1)), w2, b2)


def reference_moments(index: Tensor, row_mask: Tensor, queries: Tensor, keys: Tensor
                      ) -> Tensor:
    q, k = queries[index], keys[index]                                      # (B, D, N, H, e)
    q = q * row_mask[:, None, :, None, None].to(q.dtype)
    return torch.einsum("binhe,bjnhe->bhij", q, k)


def reference_mix(index: Tensor, side_by_side: Tensor, values: Tensor, one_plus_gate: Tensor,
                  base: Tensor) -> Tensor:
    B, D, N = index.shape
    H = values.shape[1]
    v = values[index].permute(0, 3, 1, 2, 4).reshape(B, H * D, -1)          # (B, H D, N c)
    mixed = (side_by_side @ v).view(B, D, N, -1)
    return base[index] + one_plus_gate[index] * mixed


# --------------------------------------------------------------------------------------
# the kernels
# --------------------------------------------------------------------------------------

def _ptr(t: Tensor) -> int:
    return t.data_ptr()


def _on_cpu(t: Tensor, what: str) -> None:
    if t.device.type != "cpu":
        raise ValueError(f"{what}: the compiled kernels take CPU tensors, got one on "
                         f"{t.device}")


def _f32(t: Tensor) -> Tensor:
    """``t`` as a contiguous float32 CPU tensor (the kernels read its memory directly)."""
    _on_cpu(t, "kernel input")
    return t.detach().to(torch.float32).contiguous()


def _expect(t: Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(t.shape) != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {tuple(t.shape)}")


def _index(index: Tensor, entries: int, what: str) -> Tensor:
    _on_cpu(index, what)
    idx = index.contiguous()
    if (idx.dtype != torch.int64 or idx.numel() == 0
            or not (0 <= int(idx.min()) and int(idx.max()) < entries)):
        raise ValueError(f"{what}: index must be int64 entries in [0, {entries})")
    return idx


def thread_count() -> int:
    """The threads a kernel call splits its work over: those set by :func:`kernel_threads`
    in this thread, else torch's thread count."""
    return int(getattr(_local, "threads", 0)) or torch.get_num_threads()


def _threads(threads: int | None) -> int:
    return max(1, threads) if threads is not None else thread_count()


@contextlib.contextmanager
def kernel_threads(threads: int) -> Iterator[None]:
    """Within this block (in the calling thread) each kernel call splits its work over
    ``threads`` threads, whatever torch's own thread count."""
    before = getattr(_local, "threads", 0)
    _local.threads = max(1, int(threads))
    try:
        yield
    finally:
        _local.threads = before


def _pieces(total: int, threads: int | None, minimum: int = MIN_WORK_PER_THREAD
            ) -> list[tuple[int, int]]:
    """``[0, total)`` cut into contiguous pieces, one per thread (see :func:`_threads`),
    at least ``minimum`` units each."""
    parts = max(1, min(_threads(threads), total // minimum))
    bounds = [round(i * total / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _run(call: Callable[[int, int], None], pieces: list[tuple[int, int]]) -> None:
    """``call(lo, hi)`` for every piece, side by side (the kernels release the GIL)."""
    if not pieces:
        return
    if len(pieces) == 1:
        call(*pieces[0])
        return
    with _lock:
        pool = _pools.get(len(pieces))
        if pool is None:
            pool = _pools[len(pieces)] = ThreadPoolExecutor(len(pieces), "mist-kernels")
    list(pool.map(lambda piece: call(*piece), pieces))


def read_columns(cells: Tensor, row_mask: Tensor, queries: Tensor, eps: float,
                 threads: int | None = None) -> Tensor | None:
    """``pooled[b, d, j] = sum_r softmax_r(<q_j, LN(x_bdr)> / LOG2E) LN(x_bdr)`` over the
    rows ``r`` with ``row_mask[b, r]``: cells ``(B, D, N, c)``, row_mask ``(B, N)`` bool,
    queries ``(J, c)`` (base-2 scores) -> ``(B, D, J, c)``.

    None where a query's scores could span more than ``MAX_SPREAD`` (the shifted powers of
    2 might underflow); callers then use the torch path."""
    B, D, N, c = cells.shape
    q = _f32(queries)
    J = q.shape[0]
    _expect(q, (J, c), "read_columns queries")
    _expect(row_mask, (B, N), "read_columns row_mask")
    shift = q.norm(dim=-1) * c ** 0.5                       # |<q_j, LN(x)>| <= this
    if not bool((2 * shift < MAX_SPREAD).all()):
        return None
    x, mask = _f32(cells), row_mask.to(torch.uint8).contiguous()
    out = torch.empty(B, D, J, c, dtype=torch.float32)
    flat_x, flat_out = x.view(B * D, N, c), out.view(B * D, J, c)

    def call(lo: int, hi: int) -> None:
        _ext.read_columns(_ptr(flat_x[lo]), _ptr(mask), lo, hi - lo, D, N, c, _ptr(q),
                          _ptr(shift), J, float(eps), _ptr(flat_out[lo]))

    _run(call, _pieces(B * D, threads))
    return out


def update_cells(cells: Tensor, keys: Tensor, key_bias: Tensor, values: Tensor, heads: int,
                 eps: float, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, eps2: float,
                 threads: int | None = None) -> Tensor:
    """Cells read their column's keys, then a pre-norm feed-forward layer:
    ``u = x + sum_j softmax_j((<k_j, LN(x)> + kb_j) / LOG2E) v_j`` (softmax over the
    ``m = J / heads`` keys of each head), ``out = u + w2 silu(w1 LN(u) + b1) + b2``.

    cells ``(B, D, N, c)``; keys ``(B, D, J, c)``; key_bias ``(B, D, J)``; values
    ``(B, D, c, J)`` (channel-major); w1 ``(F, c)``; b1 ``(F,)``; w2 ``(c, F)``; b2 ``(c,)``
    -> ``(B, D, N, c)``."""
    B, D, N, c = cells.shape
    J, Fw = keys.shape[-2], w1.shape[0]
    for t, shape, what in ((keys, (B, D, J, c), "keys"), (key_bias, (B, D, J), "key_bias"),
                           (values, (B, D, c, J), "values"), (w1, (Fw, c), "w1"),
                           (b1, (Fw,), "b1"), (w2, (c, Fw), "w2"), (b2, (c,), "b2")):
        _expect(t, shape, f"update_cells {what}")
    x, k, kb, v = _f32(cells), _f32(keys), _f32(key_bias), _f32(values)
    w1, b1, w2, b2 = _f32(w1), _f32(b1), _f32(w2), _f32(b2)
    out = torch.empty_like(x)
    flat = [t.view(B * D, -1) for t in (x, k, kb, v, out)]

    def call(lo: int, hi: int) -> None:
        fx, fk, fkb, fv, fo = (t[lo] for t in flat)
        _ext.update_cells(_ptr(fx), hi - lo, N, c, _ptr(fk), _ptr(fkb), _ptr(fv), J, heads,
                          float(eps), _ptr(w1), _ptr(b1), Fw, _ptr(w2), _ptr(b2), float(eps2),
                          _ptr(fo))

    _run(call, _pieces(B * D, threads))
    return out


def column_moments(index: Tensor, row_mask: Tensor, queries: Tensor, keys: Tensor,
                   threads: int | None = None) -> Tensor:
    """The column attention's row sums of query-key products, from tables of per-entry
    queries and keys of head width 8: ``out[b, h, i, j] = sum_r <queries[e_bir, h],
    keys[e_bjr, h]>`` over the rows with ``row_mask[b, r]``, ``e_bir = index[b, i, r]``.

    index ``(B, D, N)`` long; row_mask ``(B, N)`` bool; queries, keys ``(T, H, 8)`` ->
    ``(B, H, D, D)``.  Samples are split over the threads, or rows where there are fewer
    samples than threads (the parts' sums are then added, in a fixed order)."""
    B, D, N = index.shape
    T, H, e = queries.shape
    if e != 8 or keys.shape != queries.shape:
        raise ValueError(f"column_moments: queries and keys must be (T, H, 8), got "
                         f"{tuple(queries.shape)} and {tuple(keys.shape)}")
    _expect(row_mask, (B, N), "column_moments row_mask")
    idx = _index(index, T, "column_moments")
    mask = row_mask.to(torch.uint8).contiguous()
    q, k = _f32(queries), _f32(keys)
    threads = _threads(threads)
    if B >= threads:                               # whole samples per thread
        out = torch.empty(B, H, D, D, dtype=torch.float32)

        def call(lo: int, hi: int) -> None:
            for b in range(lo, hi):
                _ext.column_moments(_ptr(idx[b]), _ptr(mask[b]), _ptr(q), _ptr(k), D, N, H,
                                    0, N, _ptr(out[b]))

        _run(call, _pieces(B, threads, minimum=1))
        return out
    # fewer samples than threads: each thread sums a range of rows, the parts are added
    pieces = _pieces(N, threads)
    parts = torch.zeros(len(pieces), B, H, D, D, dtype=torch.float32)
    part_of = {lo: part for (lo, _), part in zip(pieces, parts)}

    def call_rows(lo: int, hi: int) -> None:
        part = part_of[lo]
        for b in range(B):
            _ext.column_moments(_ptr(idx[b]), _ptr(mask[b]), _ptr(q), _ptr(k), D, N, H,
                                lo, hi, _ptr(part[b]))

    _run(call_rows, pieces)
    return parts.sum(0)


def column_mix(index: Tensor, side_by_side: Tensor, values: Tensor, one_plus_gate: Tensor,
               base: Tensor, threads: int | None = None) -> Tensor:
    """The column attention's update of every cell, from tables of per-entry values:
    ``out[b, i, r] = base[e] + one_plus_gate[e] * sum_{h, j} side_by_side[b, i, h D + j]
    values[index[b, j, r], h]`` with ``e = index[b, i, r]``.

    index ``(B, D, N)`` long; side_by_side ``(B, D, H * D)`` (the H attention maps side by
    side); values ``(T, H, c)``; one_plus_gate, base ``(T, c)`` -> ``(B, D, N, c)``.  Rows
    are split over the threads."""
    B, D, N = index.shape
    T, H, c = values.shape
    _expect(side_by_side, (B, D, H * D), "column_mix side_by_side")
    _expect(one_plus_gate, (T, c), "column_mix one_plus_gate")
    _expect(base, (T, c), "column_mix base")
    idx = _index(index, T, "column_mix")
    mix, v, g, b = _f32(side_by_side), _f32(values), _f32(one_plus_gate), _f32(base)
    out = torch.empty(B, D, N, c, dtype=torch.float32)

    def call(lo: int, hi: int) -> None:          # rows lo .. hi-1 of the batch's B * N rows
        for s in range(lo // N, (hi - 1) // N + 1):
            r0, r1 = max(lo - s * N, 0), min(hi - s * N, N)
            _ext.column_mix(_ptr(idx[s]), _ptr(mix[s]), _ptr(v), _ptr(g), _ptr(b), D, N, H, c,
                            r0, r1, _ptr(out[s]))

    pieces = _pieces((B * N + 63) // 64, threads)       # in pieces of 64 rows
    _run(call, [(lo * 64, min(hi * 64, B * N)) for lo, hi in pieces])
    return out
