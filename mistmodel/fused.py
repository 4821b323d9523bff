"""Fast CPU inference for narrow layers: ``linear`` and ``layer_norm``.

``linear(x, weight, bias, act)``: ``F.linear`` (then SiLU), fused on CPU inference.

The network applies narrow linear maps (16 -> 8, 16 -> 32, ...) to tens of thousands of
cells.  For such shapes the generic matrix product behind ``F.linear`` is slow on CPU and
the bias and activation each cost another pass over memory.  oneDNN's fused linear, which
torch ships for its own compiler (``torch.ops.mkldnn._linear_pointwise``), does product,
bias and SiLU in one call: on 64,000 rows (one thread) 1.2x faster than ``F.linear`` for
16 -> 16, 1.5x for 32 -> 16 and 16 -> 32 with SiLU, 5.7x for 16 -> 8.  Each call costs
~40 us more, so below ``MIN_ROWS`` rows (where ``F.linear`` takes 8-25 us) it is not used.

It is used only where it cannot change training or results beyond float rounding: float32
CPU tensors with autograd off (``torch.inference_mode`` or ``torch.no_grad``), and only
after a one-time check against ``F.linear`` on this machine.  Anywhere else, and where
the op is missing, this is exactly ``F.linear`` (then ``F.silu``).

``layer_norm(x, norm)``: ``norm(x)`` for an ``nn.LayerNorm`` over the last axis.  Over
16 channels torch's CPU kernel spends its time per row, not per number; under the same
conditions as ``linear`` the mean and the variance are instead taken as matrix-vector
products over all rows at once (two-pass: centre, then average the squares): on 64,000
rows of 16, 2.4-2.7 ms against 4.2-4.7 ms, equal to ``F.layer_norm`` up to float rounding.
``layer_norm(x, norm, affine=False)`` stops before the norm's scale and shift, and
``centre_and_scale(x, norm)`` before the division, for callers that fold the rest into
the linear map that follows: inside a forward pass each pass over 64,000 cells of 16
costs 0.5-1.8 ms here, several times what the same operation takes in isolation.

``softmax_base2(x, dim)``: ``2^x`` normalised over ``dim``, i.e. ``softmax(x ln 2)``, for
scores already multiplied by ``LOG2E`` (callers fold the factor into the product that
makes them).  Over an axis that is not the last, with many numbers after it, torch's CPU
softmax takes 3.4-3.9 ms on 1M floats, where maximum, ``exp2`` (twice as fast as ``exp``
here), sum and division as separate passes take 1.8-2.3 ms; under the same conditions as
``linear`` the latter is used.  With ``gap``, a caller that has shifted the scores below 0
by a proven bound also skips the maximum (two passes less).
"""
from __future__ import annotations

import functools
import math
import threading

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["linear", "layer_norm", "centre_and_scale", "softmax_base2", "LOG2E",
           "fused_available"]

_ATTR = {None: "none", "silu": "swish"}
_lock = threading.Lock()
_state: dict[str, object] = {}


def _op():
    ops = getattr(torch.ops, "mkldnn", None)
    if ops is None or not torch.backends.mkldnn.is_available():
        return None
    try:
        return ops._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


def _self_check(op) -> bool:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 37, 16, generator=gen)
    w = torch.randn(8, 16, generator=gen)
    b = torch.randn(8, generator=gen)
    try:
        with torch.inference_mode():
            plain = op(x, w, b, "none", [], "")
            silu = op(x, w, None, "swish", [], "")
    except RuntimeError:
        return False
    return (plain.shape == (3, 37, 8)
            and torch.allclose(plain, F.linear(x, w, b), rtol=1e-4, atol=1e-5)
            and torch.allclose(silu, F.silu(F.linear(x, w)), rtol=1e-4, atol=1e-5))


def fused_available() -> bool:
    """Whether the fused CPU path is present and agrees with ``F.linear`` here."""
    if "op" in _state:                                     # decided: no lock on the hot path
        return _state["op"] is not None
    with _lock:
        if "op" not in _state:
            op = _op()
            _state["op"] = op if (op is not None and _self_check(op)) else None
        return _state["op"] is not None


MIN_ROWS = 1024   # below this, the fused op's fixed cost per call (~40 us) outweighs its gain
MIN_INNER = 64    # softmax_base2: below this many numbers after the axis, torch's kernel wins
MAX_GAP = 100.0   # softmax_base2: 2^-100 is far inside float32's normal range
LOG2E = 1.0 / math.log(2.0)


def _fast(x: Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and x.numel() >= MIN_ROWS * x.shape[-1] and fused_available())


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None,
           act: str | None = None) -> Tensor:
    """``F.linear(x, weight, bias)``, followed by SiLU when ``act == "silu"``."""
    if act not in _ATTR:
        raise ValueError(f"act must be None or 'silu', got {act!r}")
    if _fast(x):
        return _state["op"](x, weight, bias, _ATTR[act], [], "")
    out = F.linear(x, weight, bias)
    return F.silu(out) if act == "silu" else out


@functools.lru_cache(maxsize=8)
def _averager(c: int) -> Tensor:
    return torch.full((1, c), 1.0 / c)


def _plain_norm(norm: torch.nn.LayerNorm, c: int) -> bool:
    return norm.normalized_shape == (c,) and norm.elementwise_affine and norm.bias is not None


def centre_and_scale(x: Tensor, norm: torch.nn.LayerNorm) -> tuple[Tensor, Tensor]:
    """``x - mean`` ``(..., c)`` and ``scale = 1 / sqrt(var + eps)`` ``(..., 1)`` over the
    last axis: ``norm(x) == centred * scale * norm.weight + norm.bias``."""
    c = x.shape[-1]
    if not (_fast(x) and _plain_norm(norm, c)):
        centred = x - x.mean(-1, keepdim=True)
        return centred, torch.rsqrt((centred * centred).mean(-1, keepdim=True) + norm.eps)
    average = _averager(c)                                 # (1, c): the mean as a product
    centred = x - linear(x, average)                       # (..., c)
    variance = linear(centred * centred, average)          # (..., 1)
    return centred, variance.add_(norm.eps).rsqrt_()


def layer_norm(x: Tensor, norm: torch.nn.LayerNorm, affine: bool = True) -> Tensor:
    """``norm(x)`` (a LayerNorm over the last axis), faster on CPU inference.  With
    ``affine=False``, ``(x - mean) / sqrt(var + eps)``: the normalised values before the
    norm's scale and shift."""
    c = x.shape[-1]
    if not (_fast(x) and _plain_norm(norm, c)):
        return norm(x) if affine else F.layer_norm(x, (c,), eps=norm.eps)
    centred, scale = centre_and_scale(x, norm)
    normed = centred.mul_(scale)
    return torch.addcmul(norm.bias, normed, norm.weight) if affine else normed


def softmax_base2(x: Tensor, dim: int, gap: Tensor | None = None) -> Tensor:
    """``torch.softmax(x / LOG2E, dim)``: ``2^x`` normalised over ``dim``.

    ``gap`` (optional, broadcastable to ``x`` without ``dim``): the caller's guarantee
    that ``x`` is already shifted so that no value exceeds 0 (beyond rounding) and the
    largest of each slice is at least ``-gap``.  Where every gap is below ``MAX_GAP`` the
    powers of 2 can neither overflow nor all vanish, and the maximum is not subtracted
    (two passes over memory less)."""
    dim = dim % x.dim()
    inner = math.prod(x.shape[dim + 1:])
    if not (_fast(x) and inner >= MIN_INNER):
        return torch.softmax(x * (1.0 / LOG2E), dim)
    if gap is not None and bool((gap < MAX_GAP).all()):
        out = torch.exp2(x)
    else:
        out = (x - x.amax(dim, keepdim=True)).exp2_()
    return out.div_(out.sum(dim, keepdim=True))
