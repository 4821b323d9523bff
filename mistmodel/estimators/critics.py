"""Critic networks for the variational (neural) estimators.

A critic is a scalar function ``T(x, y)``. Both MINE and InfoNCE need its
value on every pair ``(x_i, y_j)`` of a batch: the diagonal holds samples of
the joint distribution, the off-diagonal entries samples of the product of
the marginals. :class:`ConcatCritic` is a multilayer perceptron on the
concatenation ``[x, y]``; its first layer is split into an X part and a Y
part, ``W [x; y] + b = W_x x + W_y y + b``, so the ``b x b`` score matrix costs
one first-layer product per row and per column instead of one per pair. The
function computed is exactly that of an MLP on ``[x, y]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ConcatCritic"]


class ConcatCritic(nn.Module):
    """MLP critic ``T(x, y)`` on ``[x, y]`` with ReLU hidden layers.

    Parameters
    ----------
    dx, dy
        Dimensions of X and Y.
    hidden
        Widths of the hidden layers (at least one).
    """

    def __init__(self, dx: int, dy: int, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must list at least one positive width; got {hidden!r}")
        self.first_x = nn.Linear(dx, hidden[0])
        self.first_y = nn.Linear(dy, hidden[0], bias=False)
        layers: list[nn.Module] = []
        for width_in, width_out in zip(hidden[:-1], hidden[1:]):
            layers += [nn.ReLU(), nn.Linear(width_in, width_out)]
        layers += [nn.ReLU(), nn.Linear(hidden[-1], 1)]
        self.rest = nn.Sequential(*layers)

    @classmethod
    def seeded(cls, dx: int, dy: int, hidden: Sequence[int], seed: int) -> "ConcatCritic":
        """A float32 critic on the CPU with the initial weights ``nn.Linear`` gives (uniform
        on +-1/sqrt(fan_in), weight then bias, layer by layer), drawn from a generator of
        its own seeded with ``seed``: torch's global generator, which other threads may be
        drawing from, is neither read nor reset."""
        with torch.device("meta"):
            critic = cls(dx, dy, hidden)
        critic = critic.to_empty(device="cpu").float()
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in critic.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                    if layer.bias is not None:
                        bound = 1.0 / math.sqrt(layer.in_features)
                        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        return critic

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores of the aligned pairs ``(x_i, y_i)``, shape ``(b,)``."""
        return self.rest(self.first_x(x) + self.first_y(y)).squeeze(-1)

    def pair_scores(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Score matrix ``S[i, j] = T(x_i, y_j)``, shape ``(b, b)``."""
        h = self.first_x(x)[:, None, :] + self.first_y(y)[None, :, :]
        return self.rest(h).squeeze(-1)
