"""Runtimes that run a trained :class:`~mistmodel.model.MISTNet` for inference, chosen once.

    run = make_backend("onnx", network, threads=2)
    out = run(values, row_mask, col_mask, col_type, tau)   # == network(...), a tensor

A backend is a callable with the network's forward signature: padded inputs in, ``(B,)``
estimates or ``(B, T)`` quantiles out (``tau`` None for the point model); its ``name``
says which runtime it runs.  The network
and its weights stay the single source: a backend only decides how the same maths runs.

* ``"torch"`` (:mod:`.eager`): the network itself under ``torch.inference_mode``; always
  available, on any device;
* ``"onnx"`` (:mod:`.onnx`): the network's cell-level work as an exported graph run by
  ONNX Runtime on CPU; needs ``pip install onnxruntime onnx``;
* ``"simd"`` (:mod:`.simd`): the per-cell layers as compiled AVX2 kernels (built by
  ``pip install`` where a C compiler is present); where they cannot run the network it
  warns and runs ``"torch"``;
* ``"auto"``: ``"simd"`` where its kernels can run the network here, else ``"torch"``,
  without a warning.

``threads`` (every backend): CPU threads of the computation, scoped to the backend (each
backend sets torch's thread count for the torch work of each call and restores it; an
ONNX Runtime session and the SIMD kernels have their own pools).  ``None`` keeps the
runtimes' defaults and leaves torch's thread settings as the caller left them.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["BACKENDS", "Backend", "make_backend", "available_backends", "check_threads"]

Backend = Callable[..., torch.Tensor]

# name -> (module, class, the optional packages it needs)
_REGISTRY = {
    "torch": (".eager", "TorchBackend", ()),
    "onnx": (".onnx", "OnnxBackend", ("onnxruntime", "onnx")),
    "simd": (".simd", "SimdBackend", ()),
}
BACKENDS = tuple(_REGISTRY)


def check_threads(threads: int | None) -> int | None:
    """``threads`` if it is None or a positive integer, else a ``ValueError``."""
    if threads is not None and (isinstance(threads, (bool, np.bool_))
                                or not isinstance(threads, (int, np.integer)) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None; got {threads!r}")
    return None if threads is None else int(threads)


def available_backends() -> tuple[str, ...]:
    """The backends whose optional packages are installed here."""
    from importlib.util import find_spec

    return tuple(name for name, (_, _, needs) in _REGISTRY.items()
                 if all(find_spec(package) is not None for package in needs))


def make_backend(name: str, network: torch.nn.Module, **options: Any) -> Backend:
    """The backend ``name`` for ``network`` (see the module docstring).

    Raises ``ValueError`` for an unknown name (listing the known ones) and ``ImportError``
    (saying what to install) when the backend's optional package is missing.
    """
    if name == "auto":
        from .simd import SimdBackend, unsupported_reason

        if unsupported_reason(network) is None:
            return SimdBackend(network, **options, auto=True)
        name = "torch"
    if name not in _REGISTRY:
        known = ", ".join(map(repr, BACKENDS + ("auto",)))
        installed = ", ".join(map(repr, available_backends()))
        raise ValueError(f"unknown backend {name!r}; choose one of {known} "
                         f"(installed here: {installed})")
    module, cls, _ = _REGISTRY[name]
    return getattr(import_module(module, __name__), cls)(network, **options)
