"""Cells as positions in a score table: exact values, same network output, checked input."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import mistmodel.mist as mist_module
from mistmodel import MIST
from mistmodel.batching import ScoreLookup, collate
from mistmodel.copula import normal_score_index, normal_scores, score_table
from mistmodel.model import MISTNet, ModelConfig


def mixed_samples():
    """Different n, dim_x != dim_y, d = 1, ties, a constant column: a padded batch."""
    rng = np.random.default_rng(5)
    out = []
    for n, dx, dy in [(120, 3, 2), (37, 1, 4), (120, 5, 5), (12, 1, 1), (64, 2, 6)]:
        x = rng.standard_normal((n, dx))
        y = x[:, :1] * 0.8 + rng.standard_normal((n, dy))
        out.append((x, y))
    out[2] = (np.round(out[2][0]), out[2][1])                     # ties in every X column
    out[4][1][:, 3] = 2.5                                         # a constant Y column
    return out


@pytest.mark.parametrize("n", [1, 2, 7, 50])
def test_index_points_at_each_cells_normal_score(n):
    rng = np.random.default_rng(n)
    a = rng.integers(0, 3, size=(n, 4)).astype(float)             # many ties
    a[:, 0] = rng.standard_normal(n)                              # and a tie-free column
    idx = normal_score_index(a)
    assert idx.shape == a.shape and idx.min() >= 0 and idx.max() <= 2 * n - 2
    np.testing.assert_array_equal(score_table(n)[idx], normal_scores(a))
    assert (idx[:, 0] % 2 == 0).all()                             # integer ranks: even positions


def test_collate_lookup_reproduces_the_values_exactly():
    batch = collate(mixed_samples())
    lk = batch.lookup
    assert lk is not None and float(lk.table[0]) == 0.0
    assert lk.index.shape == batch.values.transpose(1, 2).shape   # (B, D, N): column-major
    assert torch.equal(lk.table[lk.index].transpose(1, 2), batch.values)
    real = batch.row_mask[:, None, :] & batch.col_mask[:, :, None]
    assert (lk.index[~real] == 0).all()                           # padding points at the 0.0
    # one block of 2 n - 1 scores per distinct n, after the padding entry
    assert lk.table.numel() == 1 + sum(2 * n - 1 for n in {120, 37, 12, 64})


def test_no_lookup_without_the_copula_or_for_normalised_input():
    samples = mixed_samples()
    assert collate(samples, copula=False).lookup is None
    assert collate(samples, normalized=True).lookup is None
    plain = collate(samples, with_lookup=False)
    assert plain.lookup is None and torch.equal(plain.values, collate(samples).values)


@pytest.mark.parametrize("variant", ["mist", "mist_qr"])
@pytest.mark.parametrize("grad", [False, True])
def test_network_output_is_the_same_with_and_without_lookup(variant, grad):
    torch.manual_seed(0)
    net = MISTNet(ModelConfig(variant=variant, blocks=2)).eval()   # a second block too
    batch = collate(mixed_samples())
    taus = torch.tensor([0.1, 0.5, 0.9])
    kw = {"tau": taus} if variant == "mist_qr" else {}
    with torch.set_grad_enabled(grad):
        plain = net(*batch.inputs(), **kw)
        fast = net(*batch.inputs(), lookup=batch.lookup, **kw)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    if grad:                                                      # gradients reach the embedding
        fast.sum().backward()
        assert net.embed.value[0].weight.grad.abs().sum() > 0


def test_lookup_is_really_used():
    net = MISTNet().eval()
    batch = collate(mixed_samples())
    lk = batch.lookup
    shifted = ScoreLookup(torch.cat([lk.table[:1], lk.table[1:] + 0.5]), lk.index)
    with torch.inference_mode():
        a = net(*batch.inputs(), lookup=lk)
        b = net(*batch.inputs(), lookup=shifted)
    assert (a - b).abs().max() > 1e-3


def test_a_table_without_zero_first_is_refused():
    net = MISTNet().eval()
    batch = collate(mixed_samples())
    bad = ScoreLookup(batch.lookup.table + 1.0, batch.lookup.index)
    with pytest.raises(ValueError, match="table\\[0\\] == 0"):
        net(*batch.inputs(), lookup=bad)


def test_shipped_mist_estimates_do_not_change_with_the_lookup(monkeypatch):
    mist = MIST.load()
    samples = mixed_samples()
    fast = mist.estimate_batch(samples)
    original = mist_module.collate
    monkeypatch.setattr(mist_module, "collate",
                        lambda *a, **k: dataclasses.replace(original(*a, **k), lookup=None))
    plain = mist.estimate_batch(samples)
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-6)
