"""Blocks of the network against direct implementations of their formulas (loops over
samples and heads, explicit einsums), with autograd on and off."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mistmodel import MIST
from mistmodel.model import (ColumnSetAttention, LearnedQueryReader, MISTNet, ModelConfig,
                             PairReadout, TiedColumnAttention)

B, D, N, C = 3, 5, 200, 16


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


@pytest.mark.parametrize("grad", [False, True])
def test_reader_is_multi_head_attention(grad):
    torch.manual_seed(0)
    reader, norm = LearnedQueryReader(C, 2), random_norm(2)
    queries = torch.randn(3, C)
    cells, mask = padded_cells(3)
    with torch.set_grad_enabled(grad):
        got = reader(norm(cells), mask, queries)
    want = multi_head_read(reader, norm(cells), mask, queries)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


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


@pytest.mark.parametrize("trained", [True, False])
@pytest.mark.parametrize("grad", [False, True])
def test_row_attention_and_pooling_are_their_formulas(network, trained, grad):
    torch.manual_seed(2)
    net = network if trained else MISTNet(network.config)
    att, pool = net.row_att[0], net.row_pool
    cells, row_mask = padded_cells(8)
    real = row_mask[:, None, :, None].expand_as(cells)
    with torch.no_grad():
        want_att = reference_row_attention(att, cells, row_mask)
        want_pool = reference_pooling(pool, cells, row_mask)
    with torch.set_grad_enabled(grad):
        got_att, got_pool = att(cells, row_mask), pool(cells, row_mask)
    torch.testing.assert_close(got_att[real], want_att[real], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_pool, want_pool, rtol=1e-4, atol=1e-4)


def test_column_set_attention_is_its_formula():
    torch.manual_seed(3)
    s, H = 12, 3
    layer = ColumnSetAttention(s, H, 2)
    cols = torch.randn(B, D, s)
    col_mask = torch.ones(B, D, dtype=torch.bool)
    col_mask[0, 2:] = False
    bias = torch.randn(B, H, D, D)
    e = s // H
    q, k, v = layer.qkv(layer.norm(cols)).split(s, dim=-1)
    want = torch.empty(B, D, s)
    for b in range(B):
        heads = []
        for h in range(H):
            r = slice(h * e, (h + 1) * e)
            logits = q[b, :, r] @ k[b, :, r].T / e ** 0.5 + bias[b, h]
            logits = logits.masked_fill(~col_mask[b][None, :], float("-inf"))
            heads.append(torch.softmax(logits, dim=-1) @ v[b, :, r])        # (D, e)
        want[b] = feed_forward(layer.ffn, cols[b] + layer.out(torch.cat(heads, dim=-1)))
    got = layer(cols, col_mask, bias)
    valid = col_mask[:, :, None].expand_as(got)
    torch.testing.assert_close(got[valid], want[valid].detach(), rtol=1e-4, atol=1e-5)


def test_pair_readout_sums_its_mlp_over_distinct_valid_pairs():
    torch.manual_seed(4)
    P, w = 3, 6
    readout = PairReadout(P, w)
    moments = torch.randn(B, P, D, D)
    col_mask = torch.ones(B, D, dtype=torch.bool)
    col_mask[1, 3:] = False
    col_type = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0], [0, 1, 1, 1, 1]])
    got = readout(moments, col_mask, col_type)
    for b in range(B):
        total, pairs = torch.zeros(w), 0
        for i in range(D):
            for j in range(D):
                if i == j or not (col_mask[b, i] and col_mask[b, j]):
                    continue
                kind = F.one_hot(2 * col_type[b, i] + col_type[b, j], 4).float()
                feats = torch.cat([moments[b, :, i, j] * readout.scale, kind])
                total, pairs = total + readout.net(feats), pairs + 1
        torch.testing.assert_close(got[b], torch.cat([total / 64.0, total / pairs]).detach(),
                                   rtol=1e-4, atol=1e-5)


def test_the_quantile_grid_follows_torch_s_device_context():
    with torch.device("meta"):
        net = MISTNet(ModelConfig(variant="mist_qr"))
    assert net.head.grid.device.type == "meta" == next(net.parameters()).device.type
