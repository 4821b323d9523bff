"""Gaussian mutual information from canonical correlations.

If ``(X, Y)`` is jointly Gaussian, ``I(X; Y) = -1/2 sum_i log(1 - rho_i^2)``
where ``rho_i`` are the canonical correlations, the singular values of
``R_XX^{-1/2} R_XY R_YY^{-1/2}``. For any other distribution this is the
mutual information of the Gaussian with the same covariance (a lower bound
on the true value when the marginals are Gaussian, and otherwise just the
linear part of the dependence).

The sample correlation matrix ``R`` of the standardised columns is shrunk
towards the identity, ``R_s = (1 - lambda) R + lambda I``, before the
canonical correlations are taken. Shrinking the joint matrix shrinks its
blocks by the same amount, so ``R_s`` stays a valid correlation matrix and is
positive definite for any ``lambda > 0``, also when ``n < dx + dy`` (where
``R`` itself is singular and every unregularised canonical correlation is
1). By default ``lambda`` is the Ledoit-Wolf estimate of the optimal
shrinkage intensity (sklearn.covariance.ledoit_wolf_shrinkage), which is of
order ``(dx + dy) / n`` and vanishes as ``n`` grows; it also tempers the
upward bias of the plug-in estimate, which sees spurious correlations in
small samples.

The plug-in estimate is biased upwards by roughly ``dx dy / (2 n)`` nats
(more when ``n`` is close to ``dx + dy``), which is comparable to its
standard error already at moderate dimension. Intervals therefore use the
bias-corrected percentile bootstrap ("replacement-bc", see :mod:`.base`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Estimator

__all__ = ["CCA", "canonical_correlations"]


def _shrunk_correlation(z: np.ndarray, shrinkage: float | str) -> tuple[np.ndarray, float]:
    """Correlation matrix of the columns of ``z`` shrunk towards the identity."""
    n = z.shape[0]
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    corr = (z.T @ z) / n
    if shrinkage == "ledoit-wolf":
        from sklearn.covariance import ledoit_wolf_shrinkage   # ~2 s to import: only when used
        lam = float(ledoit_wolf_shrinkage(z, assume_centered=True))
    else:
        lam = float(shrinkage)
    corr = (1.0 - lam) * corr
    corr[np.diag_indices_from(corr)] = 1.0
    return corr, lam


def canonical_correlations(
    x: np.ndarray, y: np.ndarray, shrinkage: float | str = "ledoit-wolf"
) -> tuple[np.ndarray, float]:
    """Canonical correlations (descending) and the shrinkage intensity used.

    ``x`` and ``y`` must be validated 2-D float arrays without constant
    columns (see :func:`mistmodel.estimators.base.check_xy`).
    """
    dx = x.shape[1]
    corr, lam = _shrunk_correlation(np.hstack([x, y]), shrinkage)
    rxx, ryy, rxy = corr[:dx, :dx], corr[dx:, dx:], corr[:dx, dx:]
    try:
        lx = np.linalg.cholesky(rxx)
        ly = np.linalg.cholesky(ryy)
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            "the correlation matrix of x or y is singular (collinear columns, or "
            f"n <= dx + dy without shrinkage; shrinkage used: {lam:g}); use "
            "shrinkage='ledoit-wolf' or a positive shrinkage"
        ) from exc
    # Whitened cross-correlation L_x^{-1} R_xy L_y^{-T}.
    m = np.linalg.solve(lx, rxy)
    m = np.linalg.solve(ly, m.T).T
    rho = np.linalg.svd(m, compute_uv=False)
    return np.clip(rho, 0.0, 1.0), lam


class CCA(Estimator):
    """Gaussian-assumption mutual information from canonical correlations.

    Parameters
    ----------
    shrinkage
        "ledoit-wolf" (default) or a number in [0, 1]: how far the sample
        correlation matrix is pulled towards the identity. 0 gives the plain
        plug-in estimate: infinite when a canonical correlation is 1 (for
        instance when n <= dx + dy), and a clear error when the correlation
        matrix of x or of y alone is singular.
    seed
        Unused (the estimate is deterministic); kept for a uniform interface.
    """

    name = "CCA"
    bootstrap = "replacement-bc"

    def __init__(self, shrinkage: float | str = "ledoit-wolf", seed: int = 0) -> None:
        if shrinkage != "ledoit-wolf":
            try:
                value = float(shrinkage)
            except (TypeError, ValueError):
                value = float("nan")
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"shrinkage must be 'ledoit-wolf' or a number in [0, 1]; got {shrinkage!r}"
                )
            shrinkage = value
        self.shrinkage = shrinkage
        self.seed = int(seed)
        self._info: dict[str, Any] = {}

    def settings(self) -> dict[str, Any]:
        return {"shrinkage": self.shrinkage, "seed": self.seed}

    @property
    def min_rows(self) -> int:
        return 3

    def _estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        rho, lam = canonical_correlations(x, y, self.shrinkage)
        self._info = {
            "shrinkage_used": lam,
            "canonical_correlations": [float(r) for r in rho],
        }
        with np.errstate(divide="ignore"):
            value = -0.5 * np.sum(np.log1p(-(rho**2)))
        return float(value)

    def _run_info(self) -> dict[str, Any]:
        return dict(self._info)
