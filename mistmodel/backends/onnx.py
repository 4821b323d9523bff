"""The ``"onnx"`` backend: the network's cell-level work run by ONNX Runtime on CPU.

The network runs in three steps (:meth:`~mistmodel.model.MISTNet.statistics`,
:meth:`~mistmodel.model.MISTNet.embed_dataset`, :meth:`~mistmodel.model.MISTNet.predict`).
The middle one, all the work on cells, is exported once per set of weights to an ONNX graph
whose batch, row and column axes are dynamic, and runs in an ONNX Runtime session.  The
sample statistics (float64, with a Cholesky factorisation, which ONNX has no operator for)
and the small head run in torch, in the network's own code.  The graph computes the same
formulas as the network; results differ from the ``"torch"`` backend by float32 rounding
(about 1e-6 nats).

Exported graphs are kept in memory, keyed by a hash of the network's configuration and
weights, so building a second backend for the same weights skips the export.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor, nn

from ..threads import torch_threads
from . import check_threads

__all__ = ["OnnxBackend", "export_embedding_graph", "cached_embedding_graph", "weights_key",
           "OPSET"]

OPSET = 17
INPUTS = ("values", "row_mask", "col_mask", "col_type", "corr", "feats")
DYNAMIC_AXES = {"values": {0: "batch", 1: "rows", 2: "columns"},
                "row_mask": {0: "batch", 1: "rows"},
                "col_mask": {0: "batch", 1: "columns"},
                "col_type": {0: "batch", 1: "columns"},
                "corr": {0: "batch", 1: "columns", 2: "columns"},
                "feats": {0: "batch"},
                "embedding": {0: "batch"}}
CACHED_GRAPHS = 8

_graphs: OrderedDict[str, bytes] = OrderedDict()
_graphs_lock = threading.Lock()
# torch's TorchScript exporter keeps global state while it runs: one export at a time
_export_lock = threading.RLock()


def _onnxruntime():
    """ONNX Runtime, after checking that the exporter's ``onnx`` package is there too."""
    try:
        import onnx  # noqa: F401  (torch's exporter writes the graph with it)
        import onnxruntime
    except ImportError as exc:
        raise ImportError(f"the 'onnx' backend needs ONNX Runtime and onnx ({exc}): "
                          "pip install onnxruntime onnx (or pip install mist[onnx])") from exc
    return onnxruntime


class _Embedding(nn.Module):
    """The exported function: :meth:`MISTNet.embed_dataset` of the wrapped network."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, values: Tensor, row_mask: Tensor, col_mask: Tensor, col_type: Tensor,
                corr: Tensor, feats: Tensor) -> Tensor:
        return self.network.embed_dataset(values, row_mask, col_mask, col_type, corr, feats)


def _example_inputs(network: nn.Module) -> tuple[Tensor, ...]:
    """A small padded batch to trace with: 2 samples, 7 rows, 2 + 3 columns, the second
    sample with padded rows and a padded column (sizes distinct, so no axis is mistaken
    for another)."""
    gen = torch.Generator().manual_seed(0)
    dtype = next(network.parameters()).dtype
    values = torch.randn(2, 7, 5, generator=gen, dtype=dtype)
    row_mask = torch.ones(2, 7, dtype=torch.bool)
    row_mask[1, 5:] = False
    col_mask = torch.ones(2, 5, dtype=torch.bool)
    col_mask[1, 0] = False
    col_type = torch.tensor([[0, 0, 1, 1, 1]] * 2)
    values = values * row_mask[:, :, None] * col_mask[:, None, :]
    corr, feats = network.statistics(values, row_mask, col_mask, col_type)
    return values, row_mask, col_mask, col_type, corr, feats


def weights_key(network: nn.Module) -> str:
    """A hash of the network's configuration and weights."""
    digest = hashlib.sha256(json.dumps(network.config.to_dict(), sort_keys=True).encode())
    for name, tensor in network.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def export_embedding_graph(network: nn.Module) -> bytes:
    """The ONNX graph (serialised) of ``network.embed_dataset`` with dynamic batch, rows
    and columns; inputs :data:`INPUTS`, output ``embedding``."""
    buffer = io.BytesIO()
    # the exporter's deprecation warnings meet the process's filters as they stand
    with _export_lock, torch.no_grad():
        torch.onnx.export(_Embedding(network), _example_inputs(network), buffer,
                          dynamo=False, opset_version=OPSET, input_names=list(INPUTS),
                          output_names=["embedding"], dynamic_axes=DYNAMIC_AXES)
    return buffer.getvalue()


def cached_embedding_graph(network: nn.Module) -> bytes:
    """:func:`export_embedding_graph`, once per set of weights (the last
    :data:`CACHED_GRAPHS` kept in memory)."""
    key = weights_key(network)
    with _graphs_lock:
        if key in _graphs:
            _graphs.move_to_end(key)
            return _graphs[key]
    with _export_lock:                 # threads asking for one graph wait for one export
        with _graphs_lock:
            if key in _graphs:
                return _graphs[key]
        graph = export_embedding_graph(network)
        with _graphs_lock:
            _graphs[key] = graph
            while len(_graphs) > CACHED_GRAPHS:
                _graphs.popitem(last=False)
    return graph


def _weights_state(network: nn.Module) -> bytes:
    """A digest of the network's tensors (dtypes, shapes and contents): it changes with
    any write, also one through ``p.data`` or ``p.detach().numpy()``, which leaves the
    tensor's ``_version`` as it was."""
    digest = hashlib.blake2b(digest_size=16)
    for t in (*network.parameters(), *network.buffers()):
        t = t.detach().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.digest()


def _forget_locks_in_child() -> None:
    """A forked child has none of its parent's threads: locks one of them held are free."""
    global _graphs_lock, _export_lock
    _graphs_lock, _export_lock = threading.Lock(), threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


class OnnxBackend:
    """Statistics and head in torch, :meth:`MISTNet.embed_dataset` in ONNX Runtime.

    ``threads``: the session's intra-op threads (None: ONNX Runtime's default, one per
    physical core), which sleep between operators rather than spin, and torch's thread
    count for the torch steps of each call, restored after it (None: left alone).  The
    network must be on the CPU.  The graph holds the weights the network had when the
    session was built; a call after the network's weights changed (in place, also through
    ``p.data`` or a numpy view, or replaced) builds a new one.  A pickled or copied
    backend builds its session again.
    """

    name = "onnx"

    def __init__(self, network: nn.Module, threads: int | None = None):
        ort = _onnxruntime()
        devices = {p.device.type for p in network.parameters()}
        if devices != {"cpu"}:
            raise ValueError(f"the 'onnx' backend runs on the CPU, but the network is on "
                             f"{sorted(devices)}; load it with device='cpu' or use "
                             "backend='torch'")
        self.threads = check_threads(threads)
        self.network = network
        self._session_lock = threading.Lock()
        self._build_session()

    def _build_session(self) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        # threads wait for work asleep, not spinning: the CPU is often shared with other jobs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        weights = _weights_state(self.network)        # the state the graph is made from
        session = ort.InferenceSession(cached_embedding_graph(self.network), options,
                                       providers=["CPUExecutionProvider"])
        # the exporter drops inputs the graph does not read (corr without statistics);
        # the weights' state is published last: a call that sees it finds the new session
        self.session, self._inputs = session, [i.name for i in session.get_inputs()]
        self._weights = weights

    def __getstate__(self) -> dict:
        return {"network": self.network, "threads": self.threads}

    def __setstate__(self, state: dict) -> None:
        self.network, self.threads = state["network"], state["threads"]
        self._session_lock = threading.Lock()
        self._build_session()

    def __call__(self, values: Tensor, row_mask: Tensor, col_mask: Tensor, col_type: Tensor,
                 tau: Tensor | None = None) -> Tensor:
        if _weights_state(self.network) != self._weights:
            with self._session_lock:
                if _weights_state(self.network) != self._weights:
                    self._build_session()
        # the torch steps (statistics, head) on ``threads`` torch threads, restored after
        with torch_threads(self.threads), torch.inference_mode():
            corr, feats = self.network.statistics(values, row_mask, col_mask, col_type)
            given = dict(zip(INPUTS, (values, row_mask.bool(), col_mask.bool(),
                                      col_type.long(), corr, feats)))
            feed = {name: np.ascontiguousarray(given[name].cpu().numpy())
                    for name in self._inputs}
            embedding = torch.from_numpy(self.session.run(None, feed)[0])
            return self.network.predict(embedding, tau)
