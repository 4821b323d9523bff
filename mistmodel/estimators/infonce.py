"""InfoNCE (van den Oord et al., 2018, "Representation learning with
contrastive predictive coding").

For a batch of ``b`` rows with critic scores ``S[i, j] = T(x_i, y_j)``,

    I(X; Y) >= mean_i [ S[i, i] - logsumexp_j S[i, j] ] + log b.

Each term in the mean is at most 0, so the bound never exceeds ``log b``:
InfoNCE cannot report more than ``log(batch size)`` nats, however strong the
dependence. The reported value is the bound on the held-out rows, cut into
blocks of at most the training batch size ``b`` (each block contributes its
own ``log b_block``), so it obeys the same ceiling ``log b``, or the lower mean
of ``log b_block`` (``last_info["ceiling"]``; a
:class:`~mistmodel.caller_warnings.CeilingWarning` from 60% of it); see
:mod:`.neural` for splitting, batching and early stopping.
"""

from __future__ import annotations

import math

import torch

from .neural import NeuralEstimator

__all__ = ["InfoNCE"]


def _per_row_terms(scores: torch.Tensor) -> torch.Tensor:
    return scores.diagonal() - torch.logsumexp(scores, dim=1)


class InfoNCE(NeuralEstimator):
    """InfoNCE with a critic on ``[x, y]``; parameters as NeuralEstimator."""

    name = "InfoNCE"

    def _reset(self) -> None:
        pass

    def _batch_loss(self, scores: torch.Tensor) -> torch.Tensor:
        return -_per_row_terms(scores).mean()

    def _ceiling(self, blocks: list[int]) -> float:
        """``sum(b log b) / sum(b)`` over the held-out blocks: each row's term is at most
        0, so the bound is at most this."""
        return sum(b * math.log(b) for b in blocks) / sum(blocks)

    def _held_out_bound(self, blocks: list[torch.Tensor]) -> float:
        total = 0.0
        rows = 0
        for s in blocks:
            b = s.shape[0]
            total += float(_per_row_terms(s).sum()) + b * math.log(b)
            rows += b
        return total / rows
