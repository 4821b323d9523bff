"""Training objectives of the MIST network.

* ``mist`` (point estimate): squared error on I(X;Y) in nats, plus (``log_weight > 0``)
  squared error on the log scale, ``(log(pred + eps) - log(true + eps))^2``
  (:func:`point_loss`).  In nats alone an error of 0.1 at MI near 0 vanishes beside errors
  on samples whose MI is 20 nats; on the log scale it weighs as much as a 10% error at any
  MI, so independence and weak dependence count;
* ``mist_qr`` (quantiles): the pinball loss at taus drawn per sample, in nats plus
  (``log_weight > 0``) on the same log scale (:func:`quantile_loss`).  A quantile of
  ``g(I)`` for increasing ``g`` is ``g`` of the quantile of ``I``, so both terms have the
  same minimiser: the log term changes which errors count, not what is estimated.
"""
from __future__ import annotations

from torch import Tensor

__all__ = ["pinball_loss", "log_scale", "point_loss", "quantile_loss"]


def pinball_loss(pred: Tensor, target: Tensor, tau: Tensor) -> Tensor:
    """Mean pinball (quantile) loss; ``pred``, ``tau``: ``(B, T)``; ``target``: ``(B,)``.

    ``max(tau (y - q), (tau - 1) (y - q))``: its expectation over ``y`` is smallest when
    ``q`` is the ``tau``-quantile of ``y``.
    """
    diff = target[:, None] - pred
    return (tau * diff).maximum((tau - 1.0) * diff).mean()


def log_scale(mi: Tensor, eps: float) -> Tensor:
    """``log(max(mi, 0) + eps)``: the scale on which small MI counts (increasing in ``mi``)."""
    return (mi.clamp_min(0.0) + eps).log()


def point_loss(pred: Tensor, target: Tensor, log_weight: float = 0.0, eps: float = 0.02
               ) -> Tensor:
    """Squared error in nats plus ``log_weight`` times squared error on :func:`log_scale`."""
    loss = ((pred - target) ** 2).mean()
    if log_weight:
        loss = loss + log_weight * ((log_scale(pred, eps) - log_scale(target, eps)) ** 2).mean()
    return loss


def quantile_loss(pred: Tensor, target: Tensor, tau: Tensor, log_weight: float = 0.0,
                  eps: float = 0.02) -> Tensor:
    """Pinball loss in nats plus ``log_weight`` times the pinball loss on :func:`log_scale`."""
    loss = pinball_loss(pred, target, tau)
    if log_weight:
        loss = loss + log_weight * pinball_loss(log_scale(pred, eps), log_scale(target, eps), tau)
    return loss
