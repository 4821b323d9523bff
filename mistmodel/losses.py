"""Training objectives of the MIST network.

* ``mist`` (point estimate): squared error on I(X;Y) in nats (``F.mse_loss``);
* ``mist_qr`` (quantiles): the pinball loss below, at taus drawn per sample.
"""
from __future__ import annotations

from torch import Tensor

__all__ = ["pinball_loss"]


def pinball_loss(pred: Tensor, target: Tensor, tau: Tensor) -> Tensor:
    """Mean pinball (quantile) loss; ``pred``, ``tau``: ``(B, T)``; ``target``: ``(B,)``.

    ``max(tau (y - q), (tau - 1) (y - q))``: its expectation over ``y`` is smallest when
    ``q`` is the ``tau``-quantile of ``y``.
    """
    diff = target[:, None] - pred
    return (tau * diff).maximum((tau - 1.0) * diff).mean()
