"""The network's exact sample statistics: correlation and Gaussian-copula MI features."""
from __future__ import annotations

import numpy as np
import torch

from mistmodel.batching import collate
from mistmodel.model import SampleStatistics


def gaussian_mi(corr: np.ndarray, dx: int, shrink: float) -> float:
    reg = (1 - shrink) * corr + shrink * np.eye(len(corr))
    logdet = (lambda m: np.linalg.slogdet(m)[1])
    return max(0.0, 0.5 * (logdet(reg[:dx, :dx]) + logdet(reg[dx:, dx:]) - logdet(reg)))


def test_features_equal_the_closed_form_in_a_padded_batch():
    rng = np.random.default_rng(2)
    shapes = [(200, 2, 3), (45, 1, 1), (120, 4, 2)]
    samples = []
    for n, dx, dy in shapes:
        z = rng.standard_normal((n, dx + dy))
        z[:, dx:] += 0.9 * z[:, :1]                                   # dependence X -> Y
        samples.append((z[:, :dx], z[:, dx:]))
    batch = collate(samples)
    with torch.no_grad():
        corr, feats = SampleStatistics()(batch.values, batch.row_mask, batch.col_mask,
                                         batch.col_type, with_mi=True)
    for b, (n, dx, dy) in enumerate(shapes):
        v = batch.values[b, :n, :dx + dy].double().numpy()
        want = np.corrcoef(v, rowvar=False)
        np.testing.assert_allclose(corr[b, :dx + dy, :dx + dy].numpy(), want, atol=1e-5)
        assert (corr[b, dx + dy:] == 0).all() and (corr[b, :, dx + dy:] == 0).all()
        for col, shrink in ((3, 0.02), (5, (dx + dy) / (n + dx + dy))):
            assert abs(10.0 * float(feats[b, col]) - gaussian_mi(want, dx, shrink)) < 1e-4
            assert abs(float(feats[b, col + 1]) - np.log1p(gaussian_mi(want, dx, shrink))) < 1e-5
        np.testing.assert_allclose(feats[b, :3].numpy(),
                                   [np.log(n) / 6, np.log(dx) / 3, np.log(dy) / 3], rtol=1e-6)
