"""Every inference backend computes the network's forward pass: one equivalence suite.

Each available backend is compared with the network itself (``network(...)`` under
``torch.no_grad``) on the shipped checkpoints and on small random networks, for the point
and the quantile variant, on padded batches of mixed shapes.  Backends whose optional
package is missing are skipped, saying what to install.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from mistmodel.backends import BACKENDS, available_backends, make_backend
from mistmodel.batching import collate
from mistmodel.mist import MIST, default_checkpoint, load_network
from mistmodel.model import MISTNet, ModelConfig

# 1e-5 nats, or 1e-6 of the value where it is larger: float32 carries about 7 digits, and
# far outside the trained range (estimates of ~30 nats at 1 + 63 dims) the torch path itself
# is ~7e-6 away from the same network run in float64
ABS_TOL, REL_TOL = 1e-5, 1e-6
# ONNX Runtime orders its float32 reductions differently: up to 1.4e-5 nats measured at 1 + 63
# columns (torch against itself across thread counts: 2e-6)
ABS_TOL_BY_BACKEND = {"onnx": 3e-5}
TAUS = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
# (n, dim_x, dim_y) per sample; each list is one padded batch
MIXED_ROWS = [(10, 1, 1), (2000, 2, 3), (57, 1, 4), (500, 3, 2)]
MIXED_COLUMNS = [(120, 32, 32), (300, 1, 63), (40, 20, 4), (10, 2, 9)]


def backend_or_skip(name: str):
    if name not in available_backends():
        pytest.skip(f"backend {name!r} is not installed here (pip install onnxruntime onnx)")
    return name


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    return backend_or_skip(request.param)


def shipped(variant: str) -> MISTNet:
    return load_network(default_checkpoint(variant))[0]


def random_network(variant: str, stats_features: bool = True, seed: int = 0) -> MISTNet:
    torch.manual_seed(seed)
    config = ModelConfig(variant=variant, width=8, heads=2, blocks=2, inducing=4,
                         summary_width=8, pair_width=8, head_hidden=16, quantile_knots=9,
                         stats_features=stats_features)
    return MISTNet(config).eval()


def padded_batch(shapes, seed: int = 0):
    """Inputs of one padded batch of dependent samples with the given shapes."""
    rng = np.random.default_rng(seed)
    pairs = []
    for n, dx, dy in shapes:
        x = rng.standard_normal((n, dx))
        y = x[:, :1] * rng.uniform(0.3, 2.0) + rng.standard_normal((n, dy))
        pairs.append((x, y))
    return collate(pairs).inputs()


def assert_same_forward(network: MISTNet, name: str, shapes, tau=None):
    inputs = padded_batch(shapes)
    with torch.no_grad():
        expected = network(*inputs, tau=tau)
    got = make_backend(name, network)(*inputs, tau)
    assert isinstance(got, torch.Tensor)
    assert got.shape == expected.shape
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, atol=ABS_TOL_BY_BACKEND.get(name, ABS_TOL),
                               rtol=REL_TOL,
                               msg=lambda m: f"backend {name!r} differs from the network: {m}")


@pytest.mark.parametrize("shapes", [MIXED_ROWS, MIXED_COLUMNS], ids=["rows", "columns"])
def test_shipped_point_checkpoint(backend_name, shapes):
    assert_same_forward(shipped("mist"), backend_name, shapes)


@pytest.mark.parametrize("shapes", [MIXED_ROWS, MIXED_COLUMNS], ids=["rows", "columns"])
def test_shipped_quantile_checkpoint(backend_name, shapes):
    assert_same_forward(shipped("mist_qr"), backend_name, shapes, tau=TAUS)


def test_quantile_default_tau_is_the_median(backend_name):
    network = shipped("mist_qr")
    inputs = padded_batch(MIXED_ROWS)
    run = make_backend(backend_name, network)
    median = run(*inputs, torch.tensor([0.5]))
    assert torch.equal(run(*inputs, None), median)


@pytest.mark.parametrize("variant", ["mist", "mist_qr"])
@pytest.mark.parametrize("stats_features", [True, False])
def test_random_small_networks(backend_name, variant, stats_features):
    network = random_network(variant, stats_features)
    tau = TAUS if variant == "mist_qr" else None
    assert_same_forward(network, backend_name, MIXED_ROWS + [(33, 5, 6)], tau=tau)


def test_estimator_answers_the_same_with_every_backend(backend_name):
    rng = np.random.default_rng(1)
    samples = [(rng.standard_normal((n, dx)), rng.standard_normal((n, dy)))
               for n, dx, dy in [(10, 1, 1), (500, 2, 3), (57, 1, 4), (200, 3, 2)]]
    reference = MIST.load(backend="torch").estimate_batch(samples)
    mist = MIST.load(backend=backend_name)
    np.testing.assert_allclose(mist.estimate_batch(samples), reference, rtol=REL_TOL,
                               atol=ABS_TOL)
    assert mist.runtime == make_backend(backend_name, mist.network).name in BACKENDS
    assert mist.runtime == backend_name or backend_name == "simd"  # simd may run torch here


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'tensorrt'.*'torch'.*'onnx'"):
        make_backend("tensorrt", random_network("mist"))


@pytest.mark.parametrize("threads", [None, 1, 3])
def test_backends_leave_torch_threads_as_they_were(backend_name, threads):
    network = random_network("mist")
    before = torch.get_num_threads()
    run = make_backend(backend_name, network, threads=threads)
    assert torch.get_num_threads() == before
    run(*padded_batch(MIXED_ROWS))
    assert torch.get_num_threads() == before
    values, row_mask, col_mask, col_type = padded_batch(MIXED_ROWS)
    with pytest.raises(Exception):
        run(values, row_mask[:, :5], col_mask, col_type)        # rows do not match
    assert torch.get_num_threads() == before


def test_bad_thread_count_is_refused(backend_name):
    with pytest.raises(ValueError, match="threads"):
        make_backend(backend_name, random_network("mist"), threads=0)


def test_onnx_graph_is_exported_once_per_set_of_weights():
    backend_or_skip("onnx")
    from mistmodel.backends.onnx import cached_embedding_graph

    network = random_network("mist", seed=3)
    first = cached_embedding_graph(network)
    assert cached_embedding_graph(network) is first
    with torch.no_grad():
        network.embed.tag.weight.add_(1.0)            # a weight inside the graph
    assert cached_embedding_graph(network) != first


def test_onnx_follows_changed_weights_and_survives_copies_and_concurrent_builds():
    import copy
    import pickle
    import threading

    backend_or_skip("onnx")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 2)), rng.standard_normal((200, 2))
    mist = MIST(random_network("mist", seed=4), backend="onnx", cross_check=False)
    value = mist.estimate(x, y)
    for twin in (pickle.loads(pickle.dumps(mist)), copy.deepcopy(mist)):
        assert twin.estimate(x, y) == value
    with torch.no_grad():
        weight = mist.network.embed.tag.weight                # a weight inside the graph
        weight.add_(torch.linspace(-1.0, 1.0, weight.numel()).view_as(weight))
    changed = MIST(mist.network, backend="torch", cross_check=False).estimate(x, y)
    assert abs(changed - value) > 1e-3
    assert mist.estimate(x, y) == pytest.approx(changed, abs=ABS_TOL_BY_BACKEND["onnx"])
    weight = mist.network.embed.tag.weight
    weight.data = weight.data * 1.5                           # replaced, not changed in place
    changed = MIST(mist.network, backend="torch", cross_check=False).estimate(x, y)
    assert mist.estimate(x, y) == pytest.approx(changed, abs=ABS_TOL_BY_BACKEND["onnx"])
    errors = []

    def build(seed):
        try:
            make_backend("onnx", random_network("mist", seed=100 + seed))
        except Exception as exc:        # the TorchScript exporter is not re-entrant
            errors.append(repr(exc))

    threads = [threading.Thread(target=build, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


def test_onnx_without_onnxruntime_says_what_to_install():
    script = ("import sys; sys.modules['onnxruntime'] = None\n"
              "from mistmodel.backends import make_backend\n"
              "from mistmodel.model import MISTNet\n"
              "try:\n"
              "    make_backend('onnx', MISTNet())\n"
              "except ImportError as exc:\n"
              "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert "pip install onnxruntime" in done.stdout
