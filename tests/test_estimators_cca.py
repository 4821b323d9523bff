"""CCA: closed form, canonical correlations, regularisation when n < dx + dy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mistmodel.estimators import CCA
from mistmodel.estimators.cca import canonical_correlations


def gaussian_mi(cov: np.ndarray, dx: int) -> float:
    return 0.5 * (
        np.linalg.slogdet(cov[:dx, :dx])[1]
        + np.linalg.slogdet(cov[dx:, dx:])[1]
        - np.linalg.slogdet(cov)[1]
    )


def test_equals_gaussian_formula_on_the_sample_covariance() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 3))
    y = x @ rng.standard_normal((3, 4)) + rng.standard_normal((300, 4))
    want = gaussian_mi(np.cov(np.hstack([x, y]).T), 3)
    assert abs(CCA(shrinkage=0.0).estimate(x, y) - want) < 1e-9


def test_dense_gaussian_truth() -> None:
    rng = np.random.default_rng(1)
    d = 3
    cov = 0.5 * np.eye(2 * d) + 0.5
    z = rng.multivariate_normal(np.zeros(2 * d), cov, size=20000)
    truth = gaussian_mi(cov, d)
    assert abs(truth - 0.413) < 1e-3
    assert abs(CCA().estimate(z[:, :d], z[:, d:]) - truth) < 0.02


def test_canonical_correlation_of_a_known_pair() -> None:
    rng = np.random.default_rng(2)
    n, rho = 50000, 0.6
    x = rng.standard_normal((n, 2))
    y = np.column_stack([rho * x[:, 1] + math.sqrt(1 - rho**2) * rng.standard_normal(n),
                         rng.standard_normal(n)])
    r, lam = canonical_correlations(x, y, 0.0)
    assert lam == 0.0
    assert abs(r[0] - rho) < 0.01 and r[1] < 0.02


@pytest.mark.parametrize("n,dx,dy", [(10, 1, 7), (10, 64, 64), (5, 3, 3), (3, 1, 1)])
def test_fewer_rows_than_dimensions_does_not_crash(n: int, dx: int, dy: int) -> None:
    rng = np.random.default_rng(n + dx)
    x = rng.standard_normal((n, dx))
    y = rng.standard_normal((n, dy))
    est = CCA()
    value = est.estimate(x, y)
    assert np.isfinite(value) and value >= 0.0
    assert 0.0 < est.last_info["shrinkage_used"] <= 1.0


def test_unregularised_singular_block_is_a_clear_error() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6))
    y = rng.standard_normal((4, 1))
    with pytest.raises(ValueError, match="singular"):
        CCA(shrinkage=0.0).estimate(x, y)


def test_bad_shrinkage() -> None:
    with pytest.raises(ValueError, match="shrinkage"):
        CCA(shrinkage=1.5)
    with pytest.raises(ValueError, match="shrinkage"):
        CCA(shrinkage="oas")
