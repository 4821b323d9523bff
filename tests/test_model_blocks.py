"""Blocks of the network against direct implementations of their formulas, on the fast
inference path (large inputs, autograd off) and the training path alike."""
from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

import mistmodel.fused as fused
from mistmodel import MIST, kernels
from mistmodel.model import LearnedQueryReader, MISTNet, TiedColumnAttention, fold_layer_norm

B, D, N, C = 3, 5, 200, 16          # 3,000 cells: large enough for the fast path
WIDE = 32                           # columns enough for the fast softmax (B * D * 16 keys)


def padded_cells(seed: int, d: int = D) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    cells = torch.randn(B, d, N, C, generator=gen) * 1.5 + 0.4
    row_mask = torch.ones(B, N, dtype=torch.bool)
    row_mask[1, 150:] = False                                   # a padded sample
    return cells, row_mask


def random_norm(seed: int) -> torch.nn.LayerNorm:
    gen = torch.Generator().manual_seed(seed)
    norm = torch.nn.LayerNorm(C)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(C, generator=gen) + 0.5)
        norm.bias.copy_(torch.randn(C, generator=gen))
    return norm


def test_fold_layer_norm_moves_the_affine_map_into_the_linear_map():
    norm, lin = random_norm(1), torch.nn.Linear(C, 32)
    x = torch.randn(400, C)
    w, b = fold_layer_norm(norm, lin.weight, lin.bias)
    torch.testing.assert_close(F.linear(F.layer_norm(x, (C,)), w, b), lin(norm(x)),
                               rtol=1e-5, atol=1e-5)
    w0, b0 = fold_layer_norm(norm, lin.weight, None)             # a map without bias
    torch.testing.assert_close(F.linear(F.layer_norm(x, (C,)), w0, b0),
                               F.linear(norm(x), lin.weight), rtol=1e-5, atol=1e-5)


def multi_head_read(reader: LearnedQueryReader, items, mask, queries):
    """Textbook multi-head attention of the queries over each column's valid items."""
    H, e = reader.heads, C // reader.heads
    q = reader.q(queries).view(-1, H, e)                                 # (Q, H, e)
    k = reader.k(items).unflatten(-1, (H, e))                            # (B, D, N, H, e)
    v = reader.v(items).unflatten(-1, (H, e))
    logits = torch.einsum("qhe,bdnhe->bdhqn", q, k) / e ** 0.5
    logits = logits.masked_fill(~mask[:, None, None, None, :], float("-inf"))
    heads = torch.einsum("bdhqn,bdnhe->bdqhe", torch.softmax(logits, dim=-1), v)
    return reader.out(heads.flatten(-2))                                 # (B, D, Q, c)


def test_reader_is_multi_head_attention_with_the_norm_and_scale_folded_in():
    torch.manual_seed(0)
    reader, norm = LearnedQueryReader(C, 2), random_norm(2)
    queries = torch.randn(3, C)
    cells, mask = padded_cells(3)
    want = multi_head_read(reader, norm(cells), mask, queries)
    torch.testing.assert_close(reader(norm(cells), mask, queries), want, rtol=1e-4, atol=1e-5)
    centred = cells - cells.mean(-1, keepdim=True)
    scale = torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + norm.eps)
    torch.testing.assert_close(reader(centred, mask, queries, norm=norm, scale=scale), want,
                               rtol=1e-4, atol=1e-5)
    bare = F.layer_norm(cells, (C,), eps=norm.eps)
    torch.testing.assert_close(reader(bare, mask, queries, norm=norm), want,
                               rtol=1e-4, atol=1e-5)


def test_reader_ignores_padded_rows():
    torch.manual_seed(0)
    reader, queries = LearnedQueryReader(C, 2), torch.randn(3, C)
    cells, mask = padded_cells(4)
    changed = cells.clone()
    changed[1, :, 150:] = 99.0                                   # only padded rows differ
    with torch.inference_mode():
        torch.testing.assert_close(reader(cells, mask, queries), reader(changed, mask, queries))


def reference_column_attention(att: TiedColumnAttention, cells, row_mask, col_mask, bias):
    """The layer's docstring formula, one head and one sample at a time."""
    H, e = att.heads, C // att.heads
    h = att.norm(cells)
    wq, wk = att.qk.weight.split(C)
    bq, bk = att.qk.bias.split(C)
    out = cells + att.out_bias
    gate = 1.0 + att.gate(h)
    moments = torch.zeros(cells.shape[0], H, cells.shape[1], cells.shape[1])
    for b in range(cells.shape[0]):
        rows = row_mask[b]
        n = int(rows.sum())
        mixed = torch.zeros_like(cells[b])
        for i in range(H):
            r = slice(i * e, (i + 1) * e)
            q = F.linear(h[b], wq[r], bq[r])[:, rows]                    # (D, n, e)
            k = F.linear(h[b], wk[r], bk[r])[:, rows]
            moments[b, i] = torch.einsum("ine,jne->ij", q, k) / (n * e ** 0.5)
            logits = moments[b, i] + bias[b, i]
            logits = logits.masked_fill(~col_mask[b][None, :], float("-inf"))
            a = torch.softmax(logits, dim=-1)                            # (D, D)
            v = F.linear(h[b], att.value.weight[i * C:(i + 1) * C])      # (D, N, c)
            mixed = mixed + torch.einsum("ij,jnc->inc", a, v)
        out[b] = out[b] + mixed * gate[b]
    return out, moments


@pytest.mark.parametrize("grad", [False, True])
def test_column_attention_is_its_formula(grad):
    torch.manual_seed(1)
    att = TiedColumnAttention(C, 2)
    with torch.no_grad():
        att.out_bias.normal_()
    cells, row_mask = padded_cells(5)
    col_mask = torch.ones(B, D, dtype=torch.bool)
    col_mask[2, 3:] = False                                      # padded columns
    bias = torch.randn(B, 2, D, D)
    n = row_mask.sum(1)
    with torch.set_grad_enabled(grad):
        got, moments = att(cells, row_mask, col_mask, bias, n)
        want, want_moments = reference_column_attention(att, cells, row_mask, col_mask, bias)
    real = row_mask[:, None, :, None] & col_mask[:, :, None, None]
    torch.testing.assert_close(torch.where(real, got, 0.0), torch.where(real, want, 0.0),
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(moments, want_moments, rtol=1e-4, atol=1e-5)


def feed_forward(ffn, x):
    inner, _, outer = ffn.net
    return x + outer(F.silu(inner(ffn.norm(x))))


def reference_row_attention(att, cells, row_mask):
    """InducedRowAttention's docstring, written out with plain multi-head attention."""
    H, e = att.heads, C // att.heads
    B_, D_, N_, _ = cells.shape
    m = att.inducing.shape[0]
    normed = att.norm(cells)
    induced = att.inducing + multi_head_read(att.read, normed, row_mask, att.inducing)
    induced = feed_forward(att.induced_ffn, induced)                     # (B, D, m, c)
    k, v = att.kv(att.norm_induced(induced)).view(B_, D_, m, 2, H, e).unbind(3)
    q = att.q(normed).unflatten(-1, (H, e))                              # (B, D, N, H, e)
    w = torch.softmax(torch.einsum("bdnhe,bdmhe->bdnhm", q, k) / e ** 0.5, dim=-1)
    heads = torch.einsum("bdnhm,bdmhe->bdnhe", w, v).flatten(-2)         # (B, D, N, c)
    return feed_forward(att.ffn, cells + att.out(heads))


def reference_pooling(pool, cells, row_mask):
    pooled = pool.seed + multi_head_read(pool.read, pool.norm(cells), row_mask, pool.seed)
    return pool.proj(pooled.squeeze(2))


@pytest.fixture(scope="module")
def network():
    return MIST.load().network                                   # trained weights


@pytest.fixture(scope="module")
def row_attention(network):
    return network.row_att[0]


def counting_exp2(monkeypatch) -> list:
    calls: list = []
    real_exp2 = torch.exp2
    monkeypatch.setattr(torch, "exp2", lambda t: calls.append(1) or real_exp2(t))
    return calls


def on_torch_path(module, *args):
    """The module with autograd on: every fast path in ``mistmodel.fused`` is off."""
    with torch.enable_grad():
        return module(*args).detach()


def compiled(on: bool):
    """The compiled kernels (:mod:`mistmodel.kernels`) on, or the torch fast path."""
    assert not on or kernels.kernels_available()
    return contextlib.nullcontext() if on else kernels.kernels_disabled()


@pytest.mark.parametrize("trained", [True, False])
@pytest.mark.parametrize("with_kernels", [True, False])
def test_row_attention_and_pooling_are_their_formulas(network, trained, with_kernels):
    torch.manual_seed(2)
    net = network if trained else MISTNet(network.config)
    att, pool = net.row_att[0], net.row_pool
    cells, row_mask = padded_cells(8, WIDE)
    real = row_mask[:, None, :, None].expand_as(cells)
    with torch.no_grad():
        want_att = reference_row_attention(att, cells, row_mask)
        want_pool = reference_pooling(pool, cells, row_mask)
    with torch.inference_mode(), compiled(with_kernels):
        fast_att, fast_pool = att(cells, row_mask), pool(cells, row_mask)
    for got in (fast_att, on_torch_path(att, cells, row_mask)):
        torch.testing.assert_close(got[real], want_att[real], rtol=1e-4, atol=1e-4)
    for got in (fast_pool, on_torch_path(pool, cells, row_mask)):
        torch.testing.assert_close(got, want_pool, rtol=1e-4, atol=1e-4)


def test_row_attention_softmax_shortcut_changes_nothing(row_attention, monkeypatch):
    cells, row_mask = padded_cells(6, WIDE)
    reference = on_torch_path(row_attention, cells, row_mask)    # torch's softmax
    calls = counting_exp2(monkeypatch)
    with torch.inference_mode(), compiled(False):
        shortcut = row_attention(cells, row_mask)                # shifted, maximum skipped
        assert calls                                             # the shortcut was taken
        monkeypatch.setattr(fused, "MAX_GAP", -1.0)
        with_maximum = row_attention(cells, row_mask)            # maximum subtracted
    torch.testing.assert_close(shortcut, with_maximum, rtol=1e-5, atol=1e-5)
    real = row_mask[:, None, :, None].expand_as(cells)
    torch.testing.assert_close(shortcut[real], reference[real], rtol=1e-4, atol=1e-4)


def test_row_attention_with_large_keys_falls_back_to_the_maximum(row_attention, monkeypatch):
    att = copy.deepcopy(row_attention)
    with torch.no_grad():
        att.kv.weight.mul_(40.0)                                 # bounds too loose
    cells, row_mask = padded_cells(7, WIDE)
    calls = counting_exp2(monkeypatch)
    with torch.inference_mode(), compiled(False):
        fast = att(cells, row_mask)
    assert not calls                                             # the shortcut was refused
    reference = on_torch_path(att, cells, row_mask)
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-3)
