"""The ``"torch"`` backend: the network's own forward pass, under ``torch.inference_mode``."""
from __future__ import annotations

import torch
from torch import Tensor

from ..threads import torch_threads
from . import check_threads

__all__ = ["TorchBackend"]


class TorchBackend:
    """``network(...)`` with autograd off; ``threads`` torch threads during each call."""

    name = "torch"

    def __init__(self, network: torch.nn.Module, threads: int | None = None):
        self.network = network
        self.threads = check_threads(threads)

    def __call__(self, values: Tensor, row_mask: Tensor, col_mask: Tensor, col_type: Tensor,
                 tau: Tensor | None = None) -> Tensor:
        with torch_threads(self.threads), torch.inference_mode():
            return self.network(values, row_mask, col_mask, col_type, tau=tau)
