"""The compiled CPU kernels: each against its torch formula, split over threads, guarded
against bad input."""
from __future__ import annotations

import os
import select
import signal

import pytest
import torch

from mistmodel import kernels
from mistmodel.model import InducedRowAttention


def test_the_kernels_are_built_and_used_on_this_machine():
    assert kernels._ext is not None, "mistmodel._kernels was not compiled at install time"
    if kernels._ext.limits()["cpu_ok"]:
        assert kernels.kernels_available()
        with torch.inference_mode():
            assert kernels.use_kernels(torch.zeros(4096, 16))
    else:                                        # a CPU without AVX2 / FMA: torch path only
        assert not kernels.kernels_available()


def cells_and_mask(seed, B, D, N, c):
    gen = torch.Generator().manual_seed(seed)
    cells = torch.randn(B, D, N, c, generator=gen) * 1.7 + 0.3
    mask = torch.ones(B, N, dtype=torch.bool)
    if B > 1:
        mask[1, max(1, N // 2):] = False          # a padded sample
    return cells, mask, gen


SHAPES = [(2, 3, 1, 8), (2, 3, 7, 16), (3, 2, 8, 16), (2, 5, 13, 32), (1, 4, 200, 16),
          (2, 3, 57, 64)]


@pytest.mark.parametrize("B,D,N,c", SHAPES)
@pytest.mark.parametrize("J", [1, 2, 5, 16])
def test_read_columns_is_its_formula(B, D, N, c, J):
    cells, mask, gen = cells_and_mask(1, B, D, N, c)
    queries = torch.randn(J, c, generator=gen) * 0.4
    want = kernels.reference_read(cells, mask, queries, 1e-5)
    got = kernels.read_columns(cells, mask, queries, 1e-5, threads=1)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for threads in (2, 3):                       # any split of the columns, the same bytes
        assert torch.equal(kernels.read_columns(cells, mask, queries, 1e-5, threads=threads), got)


def test_read_columns_ignores_padded_rows():
    cells, mask, gen = cells_and_mask(2, 2, 3, 40, 16)
    queries = torch.randn(4, 16, generator=gen)
    changed = cells.clone()
    changed[1, :, 20:] = 1e6                     # only padded rows differ
    assert torch.equal(kernels.read_columns(cells, mask, queries, 1e-5),
                       kernels.read_columns(changed, mask, queries, 1e-5))


def test_read_columns_refuses_queries_its_shift_cannot_bound():
    cells, mask, _ = cells_and_mask(3, 2, 2, 30, 16)
    big = torch.full((2, 16), kernels.MAX_SPREAD / 8)        # 2 |q| sqrt(c) = 4 MAX_SPREAD
    assert kernels.read_columns(cells, mask, big, 1e-5) is None


@pytest.mark.parametrize("B,D,N,c", SHAPES)
@pytest.mark.parametrize("H,m,F", [(1, 4, 16), (2, 8, 32), (4, 2, 64)])
def test_update_cells_is_its_formula(B, D, N, c, H, m, F):
    cells, _, gen = cells_and_mask(4, B, D, N, c)
    J = H * m
    keys = torch.randn(B, D, J, c, generator=gen) * 0.5
    key_bias = torch.randn(B, D, J, generator=gen) * 3
    values = torch.randn(B, D, c, J, generator=gen)
    w1, b1 = torch.randn(F, c, generator=gen) * 0.4, torch.randn(F, generator=gen)
    w2, b2 = torch.randn(c, F, generator=gen) * 0.4, torch.randn(c, generator=gen)
    args = (cells, keys, key_bias, values, H, 1e-5, w1, b1, w2, b2, 1e-4)
    want = kernels.reference_update(*args)
    got = kernels.update_cells(*args, threads=1)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert torch.equal(kernels.update_cells(*args, threads=3), got)


def test_update_cells_silu_and_softmax_hold_at_extreme_scores():
    B, D, N, c, H, m, F = 1, 2, 16, 16, 2, 4, 32
    cells, _, gen = cells_and_mask(5, B, D, N, c)
    keys = torch.randn(B, D, H * m, c, generator=gen) * 60     # scores of +-1000: one winner
    key_bias = torch.randn(B, D, H * m, generator=gen) * 200
    values = torch.randn(B, D, c, H * m, generator=gen)
    w1 = torch.randn(F, c, generator=gen) * 80                 # silu of +-500
    b1, w2, b2 = torch.zeros(F), torch.randn(c, F, generator=gen) * 0.01, torch.zeros(c)
    args = (cells, keys, key_bias, values, H, 1e-5, w1, b1, w2, b2, 1e-5)
    got = kernels.update_cells(*args)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, kernels.reference_update(*args), rtol=1e-4, atol=1e-3)


def tables(seed, T, H, c):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(T, H, 8, generator=gen), torch.randn(T, H, 8, generator=gen),
            torch.randn(T, H, c, generator=gen), torch.randn(T, c, generator=gen),
            torch.randn(T, c, generator=gen), gen)


@pytest.mark.parametrize("B,D,N", [(1, 1, 9), (2, 5, 13), (3, 8, 40), (2, 13, 33), (1, 64, 70)])
@pytest.mark.parametrize("H", [1, 2])
def test_column_moments_are_their_formula(B, D, N, H):
    q, k, *_, gen = tables(6, 50, H, 16)
    index = torch.randint(0, 50, (B, D, N), generator=gen)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[-1, N // 3:] = False
    want = kernels.reference_moments(index, mask, q, k)
    got = kernels.column_moments(index, mask, q, k, threads=1)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    split = kernels.column_moments(index, mask, q, k, threads=2)
    if B >= 2:                                  # samples split: the same bytes
        assert torch.equal(split, got)
    else:                                       # rows split: partial sums added
        torch.testing.assert_close(split, got, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("B,D,N", [(1, 1, 9), (2, 5, 13), (3, 8, 40), (2, 13, 130)])
@pytest.mark.parametrize("H,c", [(1, 8), (2, 16), (2, 24), (4, 32), (1, 64)])
def test_column_mix_is_its_formula(B, D, N, H, c):
    *_, values, gate, base, gen = tables(7, 60, H, c)
    index = torch.randint(0, 60, (B, D, N), generator=gen)
    side_by_side = torch.softmax(torch.randn(B, D, H * D, generator=gen), dim=-1)
    want = kernels.reference_mix(index, side_by_side, values, gate, base)
    got = kernels.column_mix(index, side_by_side, values, gate, base, threads=1)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    for threads in (2, 3):                      # rows split anywhere, the same bytes
        assert torch.equal(kernels.column_mix(index, side_by_side, values, gate, base,
                                              threads=threads), got)


def test_bad_input_is_refused_with_a_message():
    q, k, values, gate, base, gen = tables(8, 30, 2, 16)
    index = torch.randint(0, 30, (2, 3, 10), generator=gen)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mix = torch.softmax(torch.randn(2, 3, 6, generator=gen), dim=-1)
    with pytest.raises(ValueError, match="entries in \\[0, 30\\)"):
        kernels.column_mix(index + 1, mix, values, gate, base)            # past the table
    with pytest.raises(ValueError, match="entries in"):
        kernels.column_moments(index - 1, mask, q, k)                     # negative
    with pytest.raises(ValueError, match="entries in"):
        kernels.column_mix(index.int(), mix, values, gate, base)          # not int64
    with pytest.raises(ValueError, match="\\(T, H, 8\\)"):
        kernels.column_moments(index, mask, values, values)               # head width 16
    with pytest.raises(ValueError, match="side_by_side: expected shape"):
        kernels.column_mix(index, mix[:, :2], values, gate, base)
    cells = torch.randn(2, 3, 10, 16)
    with pytest.raises(ValueError, match="queries: expected shape"):
        kernels.read_columns(cells, mask, torch.randn(4, 8), 1e-5)
    with pytest.raises(ValueError, match="keys: expected shape"):
        kernels.update_cells(cells, torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8),
                             torch.randn(2, 3, 16, 8), 2, 1e-5, torch.randn(32, 16),
                             torch.randn(32), torch.randn(16, 32), torch.randn(16), 1e-5)
    with pytest.raises(ValueError, match="unsupported sizes c=12"):      # the C side's check
        kernels._ext.column_mix(index.data_ptr(), 0, 0, 0, 0, 3, 10, 2, 12, 0, 10, 0)


@torch.inference_mode()
def test_when_the_kernels_are_not_used():
    big = torch.zeros(4096, 16)
    assert kernels.use_kernels(big)
    assert not kernels.use_kernels(torch.zeros(4096, 12))             # width not a multiple of 8
    assert not kernels.use_kernels(big.double())
    assert not kernels.use_kernels(torch.zeros(100, 16))              # too few cells
    assert not kernels.use_kernels(big[:1], cells=100)
    with kernels.kernels_disabled():
        assert not kernels.use_kernels(big)
    assert kernels.use_kernels(big)
    with torch.inference_mode(False), torch.enable_grad():
        assert not kernels.use_kernels(torch.zeros(4096, 16))         # training: torch path


def test_a_failed_self_check_or_the_opt_out_switches_them_off(monkeypatch):
    real = kernels._ext

    class Broken:                                 # a build that computes something else
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def read_columns(*args):                  # the layer norm's eps 0.5, not 1e-5
            real.read_columns(*args[:10], 0.5, *args[11:])

    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setattr(kernels, "_ext", Broken())
    assert not kernels.kernels_available()
    monkeypatch.setattr(kernels, "_ext", real)
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setenv(kernels.OPT_OUT_ENV, "1")
    assert not kernels.kernels_available()
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.delenv(kernels.OPT_OUT_ENV)
    assert kernels.kernels_available()


def test_a_forked_child_runs_the_kernels_on_its_own_threads():
    cells, mask, gen = cells_and_mask(12, 2, 8, 64, 16)
    queries = torch.randn(4, 16, generator=gen)
    want = kernels.read_columns(cells, mask, queries, 1e-5, threads=2)     # pool made here
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                          # the child: a pool inherited without its threads
        try:                              # would wait forever
            got = kernels.read_columns(cells, mask, queries, 1e-5, threads=2)
            os.write(write, b"1" if torch.equal(got, want) else b"0")
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 60)
    answer = os.read(read, 1) if ready else b"timeout"
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"1"


def test_kernel_threads_sets_the_split_for_this_thread_only():
    before = torch.get_num_threads()
    with kernels.kernel_threads(3):
        assert len(kernels._pieces(64, None)) == 3
        assert torch.get_num_threads() == before              # torch's own count untouched
        cells, mask, gen = cells_and_mask(13, 2, 8, 64, 16)
        queries = torch.randn(4, 16, generator=gen)
        assert torch.equal(kernels.read_columns(cells, mask, queries, 1e-5),
                           kernels.read_columns(cells, mask, queries, 1e-5, threads=1))
    assert len(kernels._pieces(64, None)) == min(before, 8)


def test_any_thread_split_gives_the_same_bytes():
    B, D, N, c, H, m, F = 3, 8, 520, 16, 2, 8, 32               # 24 columns, 1,560 rows
    assert len(kernels._pieces(B * D, 3)) == 3 == len(kernels._pieces((B * N + 63) // 64, 3))
    cells, mask, gen = cells_and_mask(14, B, D, N, c)
    queries = torch.randn(16, c, generator=gen) * 0.3
    keys = torch.randn(B, D, H * m, c, generator=gen) * 0.3
    key_bias, values = torch.randn(B, D, H * m, generator=gen), torch.randn(B, D, c, H * m)
    ffn = (torch.randn(F, c, generator=gen) * 0.3, torch.randn(F), torch.randn(c, F) * 0.3,
           torch.randn(c))
    q, k, tv, tg, tb, _ = tables(15, 700, H, c)
    index = torch.randint(0, 700, (B, D, N), generator=gen)
    mix = torch.softmax(torch.randn(B, D, H * D, generator=gen), dim=-1)
    runs = {t: (kernels.read_columns(cells, mask, queries, 1e-5, threads=t),
                kernels.update_cells(cells, keys, key_bias, values, H, 1e-5, *ffn, 1e-5,
                                     threads=t),
                kernels.column_moments(index, mask, q, k, threads=t),
                kernels.column_mix(index, mix, tv, tg, tb, threads=t)) for t in (1, 2, 3)}
    for t in (2, 3):
        for split, whole in zip(runs[t], runs[1]):
            assert torch.equal(split, whole)


def test_column_moments_keep_their_digits_over_many_rows():
    q, k, *_, gen = tables(16, 3000, 2, 16)
    q, k = q + 1.0, k + 1.0                      # sums of 10,000 positive-mean products
    index = torch.randint(0, 3000, (1, 6, 10_000), generator=gen)
    mask = torch.ones(1, 10_000, dtype=torch.bool)
    exact = kernels.reference_moments(index, mask, q.double(), k.double())
    got = kernels.column_moments(index, mask, q, k, threads=1)
    assert ((got.double() - exact).abs() / exact.abs()).max() < 2e-6


def test_outputs_are_float32_whatever_torch_default_dtype():
    before = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        cells, mask, gen = cells_and_mask(17, 2, 3, 20, 16)
        got = kernels.read_columns(cells.float(), mask, torch.randn(4, 16).float() * 0.3, 1e-5)
        assert got.dtype == torch.float32
    finally:
        torch.set_default_dtype(before)


def test_sizes_beyond_the_kernels_buffers_take_the_torch_path():
    big = torch.zeros(4096, 16)
    with torch.inference_mode():
        assert kernels.use_kernels(big, vectors=64, hidden=256, mixed=4096)
        assert not kernels.use_kernels(big, vectors=65)
        assert not kernels.use_kernels(big, hidden=257)
        assert not kernels.use_kernels(big, mixed=4097)
    torch.manual_seed(3)
    att = InducedRowAttention(16, 2, 33, 32).eval()         # 66 keys, hidden width 512
    cells, mask, _ = cells_and_mask(18, 3, 4, 100, 16)
    with torch.inference_mode():
        got = att(cells, mask)
        with kernels.kernels_disabled():
            want = att(cells, mask)
    assert torch.equal(got, want)                            # the torch path both times


def test_tensors_off_the_cpu_or_empty_batches():
    cells, mask, gen = cells_and_mask(19, 2, 3, 20, 16)
    with pytest.raises(ValueError, match="CPU tensors"):
        kernels.read_columns(cells.to("meta"), mask, torch.randn(4, 16), 1e-5)
    with pytest.raises(ValueError, match="CPU tensors"):
        kernels.column_mix(torch.zeros(1, 2, 3, dtype=torch.long, device="meta"),
                           torch.zeros(1, 2, 4), torch.zeros(5, 2, 16), torch.zeros(5, 16),
                           torch.zeros(5, 16))
    empty = kernels.read_columns(cells[:, :0], mask, torch.randn(4, 16) * 0.1, 1e-5)
    assert empty.shape == (2, 0, 4, 16)
