"""The fast CPU linear, layer norm and softmax agree with torch's, and are used only with
autograd off."""
from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mistmodel.fused as fused
from mistmodel import MIST
from mistmodel.fused import (LOG2E, MAX_GAP, MIN_ROWS, centre_and_scale, fused_available,
                             layer_norm, linear, softmax_base2)


@pytest.fixture
def plain_only(monkeypatch):
    """Force the F.linear path, as on a torch build without the fused op."""
    fused_available()
    monkeypatch.setitem(fused._state, "op", None)


def cases():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 120, 16, generator=gen)               # 1,200 rows >= MIN_ROWS
    w = torch.randn(32, 16, generator=gen)
    b = torch.randn(32, generator=gen)
    yield x, w, b, None
    yield x, w, b, "silu"
    yield x.transpose(1, 2), w[8:16], b[8:16], None            # strided input, weight slice
    yield x, w[:16].t(), None, "silu"                          # transposed weight, no bias
    yield torch.randn(1500, 1, generator=gen), w[:, :1], b, "silu"


@pytest.mark.parametrize("case", range(5))
def test_inference_path_matches_f_linear(case):
    x, w, b, act = list(cases())[case]
    expected = F.linear(x, w, b)
    if act == "silu":
        expected = F.silu(expected)
    with torch.inference_mode():
        got = linear(x, w, b, act=act)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_with_autograd_it_is_f_linear_exactly():
    x, w, b, _ = next(cases())
    w = w.clone().requires_grad_(True)
    out = linear(x, w, b, act="silu")
    assert torch.equal(out, F.silu(F.linear(x, w, b)))
    out.sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


def test_fallback_is_f_linear_exactly(plain_only):
    x, w, b, _ = next(cases())
    with torch.inference_mode():
        assert torch.equal(linear(x, w, b, act="silu"), F.silu(F.linear(x, w, b)))


def test_small_inputs_take_f_linear_exactly():
    x, w, b, _ = next(cases())
    small = x[:, :, :8]                                          # 80 rows < MIN_ROWS
    assert small.numel() < MIN_ROWS * small.shape[-1]
    with torch.inference_mode():
        assert torch.equal(linear(small, w, b, act="silu"), F.silu(F.linear(small, w, b)))


def test_fused_path_is_taken_for_large_inputs(monkeypatch):
    # Replace the op by a marker: if large inputs did not reach it, the result would differ.
    fused_available()
    monkeypatch.setitem(fused._state, "op", lambda x, w, b, attr, *_: torch.full((1,), 7.0))
    x, w, b, _ = next(cases())
    with torch.inference_mode():
        assert float(linear(x, w, b)[0]) == 7.0


@pytest.mark.parametrize("shift", [0.0, 40.0])
def test_layer_norm_matches_torch(shift):
    gen = torch.Generator().manual_seed(3)
    norm = torch.nn.LayerNorm(16)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(16, generator=gen) + 0.5)
        norm.bias.copy_(torch.randn(16, generator=gen))
    x = torch.randn(4, 3, 200, 16, generator=gen) * 3.0 + shift   # a large common offset too
    x[0, 0, 0] = 1.0                                             # a constant cell: variance 0
    expected = norm(x)
    with torch.inference_mode():
        got = layer_norm(x, norm)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-5)


def test_layer_norm_with_autograd_or_small_is_torch_exactly():
    norm = torch.nn.LayerNorm(16)
    x = torch.randn(2000, 16)
    assert torch.equal(layer_norm(x, norm), norm(x))              # autograd on
    with torch.inference_mode():
        assert torch.equal(layer_norm(x[:10], norm), norm(x[:10]))  # too few rows


def test_layer_norm_parts_match_torch():
    gen = torch.Generator().manual_seed(4)
    norm = torch.nn.LayerNorm(16)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(16, generator=gen) + 0.5)
        norm.bias.copy_(torch.randn(16, generator=gen))
    x = torch.randn(3, 4, 150, 16, generator=gen) * 2.0 + 1.0
    bare = F.layer_norm(x, (16,), eps=norm.eps)                  # no scale and shift
    for grad in (False, True):                                  # fast path, torch path
        with torch.set_grad_enabled(grad):
            got = layer_norm(x, norm, affine=False)
            centred, scale = centre_and_scale(x, norm)
        torch.testing.assert_close(got, bare, rtol=1e-5, atol=2e-5)
        assert scale.shape == x.shape[:-1] + (1,)
        torch.testing.assert_close(centred * scale * norm.weight + norm.bias, norm(x),
                                   rtol=1e-5, atol=2e-5)
    assert torch.equal(layer_norm(x, norm, affine=False), bare)  # autograd on: torch's own


def softmax_case(shape=(6, 16, 2, 8, 300)):
    gen = torch.Generator().manual_seed(5)
    return torch.randn(*shape, generator=gen) * 4.0              # a softmax over axis 3


def test_base2_softmax_matches_torch():
    x = softmax_case()
    want = torch.softmax(x, dim=3)
    assert x.numel() >= MIN_ROWS * x.shape[-1]                   # large enough: fast path
    with torch.inference_mode():
        fast = softmax_base2(x * LOG2E, dim=3)
    torch.testing.assert_close(fast, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(softmax_base2(x * LOG2E, dim=3), want, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():                                # last axis: torch's kernel
        torch.testing.assert_close(softmax_base2(x * LOG2E, dim=-1), torch.softmax(x, -1),
                                   rtol=1e-5, atol=1e-6)


def test_base2_softmax_skips_the_maximum_only_within_the_promised_gap():
    x = softmax_case() * LOG2E
    shifted = x - x.amax(dim=(3, 4), keepdim=True)               # <= 0: the caller's promise
    gap = -shifted.amax(dim=3, keepdim=True).amin(dim=4, keepdim=True)
    assert float(gap.max()) < MAX_GAP
    want = torch.softmax(x / LOG2E, dim=3)
    with torch.inference_mode():
        torch.testing.assert_close(softmax_base2(shifted, 3, gap=gap), want,
                                   rtol=1e-5, atol=1e-6)
        # A broken promise shows that the maximum was really skipped: 2^(x + 200)
        # overflows without it ...
        assert torch.isnan(softmax_base2(shifted + 200.0, 3, gap=gap)).any()
        # ... and a gap at or beyond MAX_GAP makes it subtract the maximum again.
        far = gap.clone()
        far.view(-1)[0] = MAX_GAP
        torch.testing.assert_close(softmax_base2(shifted + 200.0, 3, gap=far), want,
                                   rtol=1e-5, atol=1e-6)


def test_unknown_activation_is_refused():
    x, w, b, _ = next(cases())
    with pytest.raises(ValueError, match="act must be"):
        linear(x, w, b, act="gelu")


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 wheels only")
def test_fused_op_is_used_on_this_cpu_build():
    # torch's CPU wheels for x86-64 ship oneDNN; if this fails, MIST still works, slower.
    assert fused_available()


def sample_set():
    rng = np.random.default_rng(8)
    out = []
    for n, dx, dy in [(200, 6, 6), (40, 1, 3), (90, 12, 2)]:
        x = rng.standard_normal((n, dx))
        out.append((x, x[:, :1] + rng.standard_normal((n, dy))))
    return out


@pytest.mark.parametrize("variant", ["mist", "mist_qr"])
def test_estimates_agree_with_and_without_the_fused_path(variant, monkeypatch):
    mist = MIST.load(variant=variant)
    samples = sample_set()
    fast = mist.estimate_batch(samples)
    fused_available()
    monkeypatch.setitem(fused._state, "op", None)
    plain = mist.estimate_batch(samples)
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-5)
