"""MINE: mutual information neural estimation (Belghazi et al., ICML 2018).

The critic maximises the Donsker-Varadhan bound

    I(X; Y) >= E_P[T] - log E_Q[exp T],

``P`` the joint distribution, ``Q`` the product of the marginals. Within a
batch of ``b`` rows the diagonal pairs ``(x_i, y_i)`` are samples of ``P``
and all ``b (b - 1)`` off-diagonal pairs ``(x_i, y_j)`` samples of ``Q``.

The minibatch gradient of ``log E_Q[exp T]`` is biased, because the
denominator ``E_Q[exp T]`` is itself estimated from the batch. As in the
paper, the denominator of that gradient is replaced by an exponential moving
average ``m`` of the batch values of ``E_Q[exp T]`` (rate ``ema_rate``); the
training loss is ``-(mean_P T - mean_Q exp(T) / m)`` with ``m`` held fixed,
whose gradient is ``-(E_P grad T - E_Q[exp(T) grad T] / m)``. Everything is
computed in log space (``logsumexp``) so large critic values do not overflow.

The reported value is the Donsker-Varadhan bound on the held-out rows (see
:mod:`.neural` for splitting, batching and early stopping).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..per_thread import PerThread
from .neural import NeuralEstimator

__all__ = ["MINE"]


def _off_diagonal(scores: torch.Tensor) -> torch.Tensor:
    b = scores.shape[0]
    mask = ~torch.eye(b, dtype=torch.bool, device=scores.device)
    return scores[mask]


def _log_mean_exp(values: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(values, dim=0) - math.log(values.numel())


class MINE(NeuralEstimator):
    """MINE with the moving-average gradient correction.

    Takes the parameters of :class:`~mistmodel.estimators.neural.NeuralEstimator`
    plus ``ema_rate``, the weight of the newest batch in the moving average of
    ``E_Q[exp T]``.
    """

    name = "MINE"

    #: The calling thread's running log-average of the marginal term.
    _log_ma = PerThread()

    def __init__(
        self,
        hidden: Sequence[int] = (64, 64),
        batch_size: int = 64,
        lr: float = 1e-3,
        max_steps: int = 1000,
        eval_every: int = 25,
        patience: int = 8,
        test_fraction: float = 0.5,
        grad_clip: float = 10.0,
        standardize: bool = True,
        seed: int = 0,
        device: str = "auto",
        threads: int | None = None,
        ema_rate: float = 0.01,
    ) -> None:
        super().__init__(
            hidden=hidden,
            batch_size=batch_size,
            lr=lr,
            max_steps=max_steps,
            eval_every=eval_every,
            patience=patience,
            test_fraction=test_fraction,
            grad_clip=grad_clip,
            standardize=standardize,
            seed=seed,
            device=device,
            threads=threads,
        )
        if not 0.0 < ema_rate <= 1.0:
            raise ValueError(f"ema_rate must lie in (0, 1]; got {ema_rate}")
        self.ema_rate = float(ema_rate)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "ema_rate": self.ema_rate}

    def _reset(self) -> None:
        self._log_ma = None

    def _batch_loss(self, scores: torch.Tensor) -> torch.Tensor:
        joint = scores.diagonal().mean()
        log_marginal = _log_mean_exp(_off_diagonal(scores))
        current = log_marginal.detach()
        if self._log_ma is None:
            self._log_ma = current
        else:
            self._log_ma = torch.logaddexp(
                self._log_ma + math.log1p(-self.ema_rate) if self.ema_rate < 1.0
                else torch.tensor(-math.inf, device=current.device),
                current + math.log(self.ema_rate),
            )
        return -(joint - torch.exp(log_marginal - self._log_ma))

    def _held_out_bound(self, blocks: list[torch.Tensor]) -> float:
        joint = torch.cat([s.diagonal() for s in blocks]).mean()
        marginal = torch.cat([_off_diagonal(s) for s in blocks])
        return float(joint - _log_mean_exp(marginal))
