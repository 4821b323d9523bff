"""The backends follow weights changed behind torch's back, leave torch's thread settings
and the warning filters of other threads alone, apply ``threads`` to every torch step, and
check again after unpickling whether the SIMD kernels can run."""
from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch

from mistmodel.backends import available_backends, make_backend
from mistmodel.backends import _simd_ops as ops
from mistmodel.backends.eager import TorchBackend
from mistmodel.backends.simd import SimdBackend
from mistmodel.batching import collate
from mistmodel.model import MISTNet, ModelConfig

needs_onnx = pytest.mark.skipif("onnx" not in available_backends(),
                                reason="pip install onnxruntime onnx")
needs_kernels = pytest.mark.skipif(ops.unavailable_reason() is not None,
                                   reason=f"SIMD kernels absent: {ops.unavailable_reason()}")


def random_network(seed: int = 0) -> MISTNet:
    torch.manual_seed(seed)
    config = ModelConfig(variant="mist", width=8, heads=2, blocks=2, inducing=4,
                         summary_width=8, pair_width=8, head_hidden=16)
    return MISTNet(config).eval()


def padded_batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    pairs = []
    for n, dx, dy in [(200, 2, 3), (57, 1, 4)]:
        x = rng.standard_normal((n, dx))
        pairs.append((x, x[:, :1] + rng.standard_normal((n, dy))))
    return collate(pairs).inputs()


@pytest.fixture
def two_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@needs_onnx
@pytest.mark.parametrize("how", ["p.data", "numpy view"])
def test_onnx_follows_weights_written_without_a_version_bump(how):
    network = random_network(seed=21)
    run = make_backend("onnx", network)
    inputs = padded_batch()
    before = run(*inputs)
    weight = network.embed.tag.weight                       # a weight inside the graph
    if how == "p.data":
        weight.data.mul_(3.0)
    else:
        weight.detach().numpy()[...] *= 3.0
    want = TorchBackend(network)(*inputs)
    assert (want - before).abs().max() > 1e-3
    torch.testing.assert_close(run(*inputs), want, atol=3e-5, rtol=1e-6)


@needs_onnx
def test_onnx_threads_apply_to_its_torch_steps(two_torch_threads):
    network = random_network(seed=22)
    run = make_backend("onnx", network, threads=1)
    seen = []
    statistics = network.statistics

    def counting(*args):
        seen.append(torch.get_num_threads())
        return statistics(*args)

    network.statistics = counting
    run(*padded_batch())
    assert seen == [1]
    assert torch.get_num_threads() == 2


@needs_onnx
def test_onnx_export_keeps_the_filters_other_threads_install_meanwhile(monkeypatch):
    import mistmodel.backends.onnx as onnx_backend

    monkeypatch.setattr(onnx_backend, "_graphs", OrderedDict())     # a real export
    exporting = threading.Event()
    example_inputs = onnx_backend._example_inputs

    def slow_example_inputs(network):
        exporting.set()
        time.sleep(0.5)
        return example_inputs(network)

    monkeypatch.setattr(onnx_backend, "_example_inputs", slow_example_inputs)
    with warnings.catch_warnings():
        builder = threading.Thread(target=make_backend, args=("onnx", random_network(23)))
        builder.start()
        assert exporting.wait(60)
        warnings.simplefilter("error", RuntimeWarning)
        builder.join(120)
        with pytest.raises(RuntimeWarning, match="still an error"):
            warnings.warn("still an error", RuntimeWarning)


@needs_onnx
def test_the_onnx_export_warns_of_nothing_but_its_own_deprecation():
    """The pair bias gathers by a flat index: advanced indexing made the exporter warn that
    negative indices give incorrect results."""
    from mistmodel.backends.onnx import export_embedding_graph

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_embedding_graph(random_network(25))
    assert [str(w.message)[:80] for w in caught
            if not issubclass(w.category, DeprecationWarning)] == []


@needs_kernels
def test_simd_without_threads_leaves_torch_threads_to_threads_starting_meanwhile(
        two_torch_threads):
    network = random_network(seed=24)
    run = SimdBackend(network)
    in_call, call_done, seen = threading.Event(), threading.Event(), {}
    statistics = network.statistics

    def signalling(*args):
        seen["in call"] = torch.get_num_threads()
        in_call.set()
        time.sleep(0.2)
        return statistics(*args)

    def starts_during_the_call():
        in_call.wait(60)
        seen["during"] = torch.get_num_threads()
        call_done.wait(60)
        seen["after"] = torch.get_num_threads()

    network.statistics = signalling
    other = threading.Thread(target=starts_during_the_call)
    other.start()
    run(*padded_batch())
    call_done.set()
    other.join(60)
    assert seen == {"in call": 2, "during": 2, "after": 2}
    assert torch.get_num_threads() == 2


CHILD = """
import pickle, sys, warnings
from pathlib import Path
sys.modules["mistmodel.backends._simd"] = None          # an install without the kernels
import torch
from mistmodel.backends.eager import TorchBackend
from mistmodel.backends.simd import SimdUnavailableWarning
inputs = torch.load(sys.argv[2])
for name in ("simd", "auto"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = pickle.loads(Path(sys.argv[1], f"{name}.pkl").read_bytes())
    categories = [w.category.__name__ for w in caught]
    same = torch.equal(run(*inputs), TorchBackend(run.network)(*inputs))
    print(name, run.name, categories, same)
"""


@needs_kernels
def test_unpickled_where_the_kernels_cannot_run_the_simd_backend_runs_torch(tmp_path):
    network = random_network(seed=25)
    for name in ("simd", "auto"):
        run = make_backend(name, network)
        assert run.name == "simd"
        (tmp_path / f"{name}.pkl").write_bytes(pickle.dumps(run))
    torch.save(padded_batch(), tmp_path / "inputs.pt")
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path),
                           str(tmp_path / "inputs.pt")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["simd torch ['SimdUnavailableWarning'] True",
                                        "auto torch [] True"]
