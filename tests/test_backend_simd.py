"""The ``"simd"`` backend: its kernels against their torch formulas (shapes, padding,
thread splits, bad input), the backend against the network, and where it hands over to
the ``"torch"`` backend."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mistmodel.backends import _simd_ops as ops
from mistmodel.backends.eager import TorchBackend
from mistmodel.backends.simd import SimdBackend, SimdUnavailableWarning, unsupported_reason
from mistmodel.batching import collate
from mistmodel.mist import MIST, default_checkpoint, load_network
from mistmodel.model import MISTNet, ModelConfig

REASON = ops.unavailable_reason()
needs_kernels = pytest.mark.skipif(REASON is not None, reason=f"SIMD kernels absent: {REASON}")
TAUS = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])


# --------------------------------------------------------------------------------------
# the kernels' formulas, in torch
# --------------------------------------------------------------------------------------

def reference_read(cells, row_mask, queries, eps):
    normed = F.layer_norm(cells, (cells.shape[-1],), eps=eps)               # (B, D, N, c)
    scores = (normed @ queries.T) / ops.LOG2E                               # (B, D, N, J)
    scores = scores.masked_fill(~row_mask[:, None, :, None], float("-inf"))
    return torch.softmax(scores, dim=2).transpose(2, 3) @ normed            # (B, D, J, c)


def reference_update(cells, keys, key_bias, values, heads, eps, w1, b1, w2, b2, eps2):
    B, D, N, c = cells.shape
    J = keys.shape[2]
    normed = F.layer_norm(cells, (c,), eps=eps)
    scores = (normed @ keys.transpose(2, 3) + key_bias[:, :, None]) / ops.LOG2E
    w = torch.softmax(scores.view(B, D, N, heads, J // heads), dim=-1).view(B, D, N, J)
    u = cells + w @ values.transpose(2, 3)
    return u + F.linear(F.silu(F.linear(F.layer_norm(u, (c,), eps=eps2), w1, b1)), w2, b2)


def reference_moments(index, row_mask, queries, keys):
    q = queries[index] * row_mask[:, None, :, None, None].to(queries.dtype)  # (B, D, N, H, e)
    return torch.einsum("binhe,bjnhe->bhij", q, keys[index])


def reference_mix(index, side_by_side, values, one_plus_gate, base):
    B, D, N = index.shape
    H = values.shape[1]
    v = values[index].permute(0, 3, 1, 2, 4).reshape(B, H * D, -1)          # (B, H D, N c)
    return base[index] + one_plus_gate[index] * (side_by_side @ v).view(B, D, N, -1)


def cells_and_mask(seed, B, D, N, c):
    gen = torch.Generator().manual_seed(seed)
    cells = torch.randn(B, D, N, c, generator=gen) * 1.7 + 0.3
    mask = torch.ones(B, N, dtype=torch.bool)
    if B > 1:
        mask[1, max(1, N // 2):] = False                 # a padded sample
    return cells, mask, gen


def tables(seed, T, H, c):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(T, H, 8, generator=gen), torch.randn(T, H, 8, generator=gen),
            torch.randn(T, H, c, generator=gen), torch.randn(T, c, generator=gen),
            torch.randn(T, c, generator=gen), gen)


def update_args(seed, B, D, N, c, H, m, Fw):
    cells, _, gen = cells_and_mask(seed, B, D, N, c)
    J = H * m
    return (cells, torch.randn(B, D, J, c, generator=gen) * 0.5,
            torch.randn(B, D, J, generator=gen) * 3, torch.randn(B, D, c, J, generator=gen), H,
            1e-5, torch.randn(Fw, c, generator=gen) * 0.4, torch.randn(Fw, generator=gen),
            torch.randn(c, Fw, generator=gen) * 0.4, torch.randn(c, generator=gen), 1e-4)


# --------------------------------------------------------------------------------------
# the kernels
# --------------------------------------------------------------------------------------

CELL_SHAPES = [(2, 3, 1, 8), (2, 3, 7, 16), (3, 2, 8, 16), (2, 5, 13, 32), (1, 4, 200, 16),
               (2, 3, 57, 64), (1, 2, 10_000, 16)]


@needs_kernels
@pytest.mark.parametrize("B,D,N,c", CELL_SHAPES)
@pytest.mark.parametrize("J", [1, 2, 5, 16])
def test_read_columns_is_its_formula(B, D, N, c, J):
    cells, mask, gen = cells_and_mask(1, B, D, N, c)
    queries = torch.randn(J, c, generator=gen) * 0.4
    got = ops.read_columns(cells, mask, queries, 1e-5, threads=1)
    torch.testing.assert_close(got, reference_read(cells, mask, queries, 1e-5),
                               rtol=1e-4, atol=1e-5)
    for threads in (2, 3):                       # any split of the columns, the same bytes
        assert torch.equal(ops.read_columns(cells, mask, queries, 1e-5, threads), got)


@needs_kernels
def test_read_columns_ignores_padded_rows_and_declines_unbounded_scores():
    cells, mask, gen = cells_and_mask(2, 2, 3, 40, 16)
    queries = torch.randn(4, 16, generator=gen)
    changed = cells.clone()
    changed[1, :, 20:] = 1e6                     # only padded rows differ
    assert torch.equal(ops.read_columns(cells, mask, queries, 1e-5),
                       ops.read_columns(changed, mask, queries, 1e-5))
    big = torch.full((2, 16), ops.MAX_SPREAD / 8)             # 2 |q| sqrt(c) = 4 MAX_SPREAD
    assert ops.read_columns(cells, mask, big, 1e-5) is None


@needs_kernels
@pytest.mark.parametrize("B,D,N,c", CELL_SHAPES[:-1])
@pytest.mark.parametrize("H,m,Fw", [(1, 4, 16), (2, 8, 32), (4, 2, 64)])
def test_update_cells_is_its_formula(B, D, N, c, H, m, Fw):
    args = update_args(4, B, D, N, c, H, m, Fw)
    got = ops.update_cells(*args, threads=1)
    torch.testing.assert_close(got, reference_update(*args), rtol=1e-4, atol=1e-4)
    for threads in (2, 3):
        assert torch.equal(ops.update_cells(*args, threads=threads), got)


@needs_kernels
def test_update_cells_holds_at_extreme_scores():
    B, D, N, c, H, m, Fw = 1, 2, 16, 16, 2, 4, 32
    cells, _, gen = cells_and_mask(5, B, D, N, c)
    keys = torch.randn(B, D, H * m, c, generator=gen) * 60     # scores of +-1000: one winner
    key_bias = torch.randn(B, D, H * m, generator=gen) * 200
    values = torch.randn(B, D, c, H * m, generator=gen)
    w1 = torch.randn(Fw, c, generator=gen) * 80                # silu of +-500
    b1, w2, b2 = torch.zeros(Fw), torch.randn(c, Fw, generator=gen) * 0.01, torch.zeros(c)
    args = (cells, keys, key_bias, values, H, 1e-5, w1, b1, w2, b2, 1e-5)
    got = ops.update_cells(*args)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, reference_update(*args), rtol=1e-4, atol=1e-3)


@needs_kernels
@pytest.mark.parametrize("B,D,N", [(1, 1, 9), (2, 5, 13), (3, 8, 40), (2, 13, 33),
                                   (1, 64, 70), (2, 7, 1), (1, 3, 10_000)])
@pytest.mark.parametrize("H", [1, 2])
def test_column_moments_are_their_formula(B, D, N, H):
    q, k, *_, gen = tables(6, 50, H, 16)
    index = torch.randint(0, 50, (B, D, N), generator=gen)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[-1, max(1, N // 3):] = False
    got = ops.column_moments(index, mask, q, k, threads=1)
    # Against float64 sums, within a few roundings of the sum of |terms| (a float32
    # reference is itself off by far more at 10,000 rows on some CPUs' BLAS).
    exact = reference_moments(index, mask, q.double(), k.double())
    size = reference_moments(index, mask, q.double().abs(), k.double().abs())
    assert torch.all((got.double() - exact).abs() <= 16 * 2.0 ** -24 * size + 1e-6)
    split = ops.column_moments(index, mask, q, k, threads=2)
    if B >= 2:                                  # samples split: the same bytes
        assert torch.equal(split, got)
    else:                                       # rows split: partial sums added
        torch.testing.assert_close(split, got, rtol=1e-5, atol=1e-4)


@needs_kernels
def test_column_moments_keep_their_digits_over_many_rows():
    q, k, *_, gen = tables(16, 3000, 2, 16)
    q, k = q + 1.0, k + 1.0                      # sums of 10,000 positive-mean products
    index = torch.randint(0, 3000, (1, 6, 10_000), generator=gen)
    mask = torch.ones(1, 10_000, dtype=torch.bool)
    exact = reference_moments(index, mask, q.double(), k.double())
    got = ops.column_moments(index, mask, q, k, threads=1)
    assert ((got.double() - exact).abs() / exact.abs()).max() < 2e-6


@needs_kernels
@pytest.mark.parametrize("B,D,N", [(1, 1, 9), (2, 5, 13), (3, 8, 40), (2, 13, 130),
                                   (1, 57, 7), (2, 2, 1)])
@pytest.mark.parametrize("H,c", [(1, 8), (2, 16), (2, 24), (4, 32), (1, 64)])
def test_column_mix_is_its_formula(B, D, N, H, c):
    *_, values, gate, base, gen = tables(7, 60, H, c)
    index = torch.randint(0, 60, (B, D, N), generator=gen)
    side_by_side = torch.softmax(torch.randn(B, D, H * D, generator=gen), dim=-1)
    got = ops.column_mix(index, side_by_side, values, gate, base, threads=1)
    torch.testing.assert_close(got, reference_mix(index, side_by_side, values, gate, base),
                               rtol=1e-4, atol=1e-4)
    for threads in (2, 3):                      # rows split anywhere, the same bytes
        assert torch.equal(ops.column_mix(index, side_by_side, values, gate, base, threads),
                           got)


@needs_kernels
def test_one_two_and_three_threads_give_the_same_bytes():
    B, D, N, c, H, m, Fw = 3, 8, 520, 16, 2, 8, 32               # 24 columns, 1,560 rows
    cells, mask, gen = cells_and_mask(14, B, D, N, c)
    queries = torch.randn(16, c, generator=gen) * 0.3
    update = update_args(15, B, D, N, c, H, m, Fw)
    q, k, tv, tg, tb, _ = tables(15, 700, H, c)
    index = torch.randint(0, 700, (B, D, N), generator=gen)
    mix = torch.softmax(torch.randn(B, D, H * D, generator=gen), dim=-1)
    runs = {t: (ops.read_columns(cells, mask, queries, 1e-5, threads=t),
                ops.update_cells(*update, threads=t),
                ops.column_moments(index, mask, q, k, threads=t),
                ops.column_mix(index, mix, tv, tg, tb, threads=t)) for t in (1, 2, 3)}
    for t in (2, 3):
        for split, whole in zip(runs[t], runs[1]):
            assert torch.equal(split, whole)


@needs_kernels
def test_bad_input_is_refused_with_a_message():
    q, k, values, gate, base, gen = tables(8, 30, 2, 16)
    index = torch.randint(0, 30, (2, 3, 10), generator=gen)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mix = torch.softmax(torch.randn(2, 3, 6, generator=gen), dim=-1)
    cells = torch.randn(2, 3, 10, 16)
    with pytest.raises(ValueError, match=r"index holds 30, outside the table's entries \[0, 30\)"):
        ops.column_mix(index + 1, mix, values, gate, base)
    with pytest.raises(ValueError, match="index holds -1"):
        ops.column_moments(index - 1, mask, q, k)
    with pytest.raises(ValueError, match="index must hold int64"):
        ops.column_mix(index.int(), mix, values, gate, base)
    with pytest.raises(ValueError, match=r"queries must have shape \(\d+, \d+, 8\)"):
        ops.column_moments(index, mask, values, values)                   # head width 16
    with pytest.raises(ValueError,
                       match=r"side_by_side must have shape \(2, 3, 6\), got \(2, 2, 6\)"):
        ops.column_mix(index, mix[:, :2].contiguous(), values, gate, base)
    with pytest.raises(ValueError, match="cells must hold float32"):
        ops.read_columns(cells.double(), mask, torch.randn(4, 16) * 0.1, 1e-5)
    with pytest.raises(ValueError, match="cells must be a C-contiguous"):
        ops.read_columns(cells.transpose(1, 2), mask, torch.randn(4, 16) * 0.1, 1e-5)
    with pytest.raises(ValueError, match=r"row_mask must have shape \(2, 10\)"):
        ops.read_columns(cells, mask[:, :5].contiguous(), torch.randn(4, 16) * 0.1, 1e-5)
    with pytest.raises(ValueError, match="keys must have shape"):
        ops.update_cells(cells, torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8),
                         torch.randn(2, 3, 16, 8), 2, 1e-5, torch.randn(32, 16),
                         torch.randn(32), torch.randn(16, 32), torch.randn(16), 1e-5)
    with pytest.raises(ValueError, match="unsupported sizes c=12"):
        ops.column_mix(index, mix, torch.randn(30, 2, 12), torch.randn(30, 12),
                       torch.randn(30, 12))
    with pytest.raises(ValueError, match="CPU tensors, got one on meta"):
        ops.read_columns(cells.to("meta"), mask, torch.randn(4, 16) * 0.1, 1e-5)
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        ops.column_mix(index, mix, values, gate, base, threads=0)


@needs_kernels
def test_a_forked_child_runs_the_kernels_on_its_own_threads():
    cells, mask, gen = cells_and_mask(12, 2, 8, 64, 16)
    queries = torch.randn(4, 16, generator=gen)
    want = ops.read_columns(cells, mask, queries, 1e-5, threads=2)       # pool made here
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                          # the child: a pool inherited without its threads
        try:                              # would wait forever
            got = ops.read_columns(cells, mask, queries, 1e-5, threads=2)
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


# --------------------------------------------------------------------------------------
# the backend
# --------------------------------------------------------------------------------------

MIXED_ROWS = [(10, 1, 1), (2000, 2, 3), (57, 1, 4), (500, 3, 2)]
MIXED_COLUMNS = [(120, 32, 32), (300, 1, 63), (40, 20, 4), (10, 2, 9)]


def padded_batch(shapes, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    pairs = []
    for n, dx, dy in shapes:
        x = rng.standard_normal((n, dx))
        y = x[:, :1] * rng.uniform(0.3, 2.0) + rng.standard_normal((n, dy))
        pairs.append((np.round(x, 1), y) if ties else (x, y))
    return collate(pairs).inputs()


def random_network(variant="mist", seed=0, **config):
    torch.manual_seed(seed)
    settings = dict(variant=variant, width=8, heads=2, blocks=2, inducing=4, summary_width=8,
                    pair_width=8, head_hidden=16, quantile_knots=9)
    return MISTNet(ModelConfig(**{**settings, **config})).eval()


def assert_same_as_torch(network, inputs, tau=None, threads=None):
    want = TorchBackend(network)(*inputs, tau)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimdUnavailableWarning)
        got = SimdBackend(network, threads=threads)(*inputs, tau)
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-6)


@pytest.fixture(scope="module", params=["mist", "mist_qr"])
def shipped(request):
    return load_network(default_checkpoint(request.param))[0]


@needs_kernels
@pytest.mark.parametrize("shapes", [MIXED_ROWS, MIXED_COLUMNS, [(500, 8, 8)] * 3,
                                    [(10, 1, 1)], [(700, 1, 1), (33, 1, 1)]],
                         ids=["rows", "columns", "8+8", "n10", "d1"])
def test_shipped_checkpoints_as_the_torch_backend(shipped, shapes):
    tau = TAUS if shipped.is_quantile else None
    assert_same_as_torch(shipped, padded_batch(shapes, ties=len(shapes) == 1), tau, threads=2)


@needs_kernels
@pytest.mark.parametrize("config", [{}, {"stats_features": False}, {"blocks": 1, "width": 16},
                                    {"blocks": 0}, {"variant": "mist_qr", "heads": 1}],
                         ids=["blocks2-headwidth4", "no-stats", "headwidth8", "blocks0", "qr"])
def test_random_networks_as_the_torch_backend(config):
    network = random_network(**config)
    tau = TAUS if network.is_quantile else None
    assert_same_as_torch(network, padded_batch(MIXED_ROWS, seed=1), tau, threads=1)


@needs_kernels
def test_queries_beyond_the_kernels_bound_and_strided_inputs():
    network = random_network(width=16, blocks=1)
    with torch.no_grad():
        network.row_pool.seed.mul_(1e3)          # pooling scores too spread for read_columns
    values, row_mask, col_mask, col_type = padded_batch(MIXED_ROWS)
    strided = (values.transpose(1, 2).contiguous().transpose(1, 2),
               row_mask.t().contiguous().t(), col_mask, col_type)
    assert not strided[0].is_contiguous() and not strided[1].is_contiguous()
    assert_same_as_torch(network, strided)


@needs_kernels
def test_the_backend_reads_the_network_and_leaves_torch_threads_as_they_were():
    network = random_network(width=16, blocks=1)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    threads = torch.get_num_threads()
    run = SimdBackend(network, threads=threads + 1)
    run(*padded_batch(MIXED_ROWS))
    assert torch.get_num_threads() == threads
    values, row_mask, col_mask, col_type = padded_batch(MIXED_ROWS)
    with pytest.raises(RuntimeError):
        run(values, row_mask, col_mask, col_type[:, :1])        # fails inside the call
    assert torch.get_num_threads() == threads
    after = network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in network.parameters())


@needs_kernels
def test_calls_of_every_width_share_one_pool_of_worker_threads():
    import threading
    import time

    network = load_network(default_checkpoint("mist"))[0]
    run = SimdBackend(network, threads=12)
    for shapes in ([(100, 2, 2)], [(500, 8, 8)], [(2000, 16, 16)], [(800, 4, 4)],
                   [(3000, 32, 32)], [(50, 1, 1)]):
        run(*padded_batch(shapes))
    time.sleep(0.5)                         # replaced pools' threads exit when idle
    workers = [t for t in threading.enumerate() if t.name.startswith("mist-simd")]
    assert 1 < len(workers) <= 12
    # a narrower pool handed to a call before another widened it still takes its work
    from mistmodel.backends import _simd_ops

    narrow = _simd_ops._shared_pool(1)
    _simd_ops._shared_pool(_simd_ops._pool_size + 1)
    assert narrow.submit(lambda: 7).result() == 7


@needs_kernels
def test_any_thread_count_gives_the_same_bytes():
    network = load_network(default_checkpoint("mist"))[0]
    inputs = padded_batch([(500, 3, 5), (200, 8, 8), (57, 1, 1)])
    runs = [SimdBackend(network, threads=t)(*inputs) for t in (1, 2, 3)]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        SimdBackend(network, threads=0)


@pytest.mark.parametrize("config,reason", [
    ({"width": 12, "heads": 2}, "cell width 12 is not a multiple of 8"),
    ({"width": 8, "inducing": 40}, "heads x inducing points 2 x 40 exceed"),
    ({"width": 8, "ffn_mult": 40}, "feed-forward width 320 exceeds")])
def test_an_architecture_the_kernels_do_not_implement_runs_the_torch_backend(config, reason):
    network = random_network(**config)
    inputs = padded_batch(MIXED_ROWS)
    expected = REASON if REASON is not None else reason
    with pytest.warns(SimdUnavailableWarning, match=expected):
        run = SimdBackend(network)
    assert torch.equal(run(*inputs), TorchBackend(network)(*inputs))
    assert run.name == "torch"
    with pytest.warns(SimdUnavailableWarning, match=expected):
        mist = MIST(network, backend="simd")
    assert mist.backend == "simd" and mist.runtime == "torch" and "runtime='torch'" in repr(mist)


@needs_kernels
def test_other_networks_and_inputs_run_the_torch_backend():
    class Modified(MISTNet):                                 # may compute something else
        pass

    with pytest.warns(SimdUnavailableWarning, match="a Modified, not a MISTNet"):
        SimdBackend(Modified(random_network().config))
    network = random_network(width=16, blocks=1)
    network.row_att[0].ffn.net[1] = torch.nn.GELU()
    with pytest.warns(SimdUnavailableWarning, match=r"row_att.0.ffn is not Linear -> SiLU"):
        SimdBackend(network)
    wide = random_network(width=16, blocks=1).double()
    with pytest.warns(SimdUnavailableWarning, match="not float32"):
        run = SimdBackend(wide)
    inputs = [t.double() if t.is_floating_point() else t for t in padded_batch(MIXED_ROWS)]
    got = run(*inputs)
    assert got.dtype == torch.float64
    assert torch.equal(got, TorchBackend(wide)(*inputs))
    assert unsupported_reason(random_network(width=16, blocks=1)) is None


def test_an_install_without_the_extension_warns_and_runs_the_torch_backend():
    script = """
import sys, warnings
class Absent:                       # an install where the extension did not compile
    def find_spec(self, name, path=None, target=None):
        if name == "mistmodel.backends._simd":
            raise ImportError("not built")
sys.meta_path.insert(0, Absent())
import torch
from mistmodel.backends.simd import SimdBackend, SimdUnavailableWarning
from mistmodel.backends.eager import TorchBackend
from mistmodel.model import MISTNet
torch.manual_seed(0)
net = MISTNet().eval()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    run = SimdBackend(net)
assert [w.category for w in caught] == [SimdUnavailableWarning], caught
assert "not compiled" in str(caught[0].message), caught[0].message
args = (torch.randn(2, 30, 3), torch.ones(2, 30, dtype=torch.bool),
        torch.ones(2, 3, dtype=torch.bool), torch.tensor([[0, 1, 1], [0, 0, 1]]))
assert torch.equal(run(*args), TorchBackend(net)(*args))
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
