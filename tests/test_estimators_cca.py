"""CCA: closed form, canonical correlations, regularisation when n < dx + dy."""

from __future__ import annotations

import math

import warnings

import numpy as np
import pytest

from mistmodel.estimators import CCA
from mistmodel.estimators.cca import canonical_correlations, gaussian_bias


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
    for bad in (1.5, -0.1, "oas", float("nan"), True, None):
        with pytest.raises(ValueError, match="shrinkage"):
            CCA(shrinkage=bad)


def dense_cov(d: int, c: float) -> np.ndarray:
    return (1 - c) * np.eye(2 * d) + c * np.ones((2 * d, 2 * d))


def sparse_cov(d: int, rho: float) -> np.ndarray:
    cov = np.eye(2 * d)
    i = np.arange(d)
    cov[i, d + i] = cov[d + i, i] = rho
    return cov


def gaussian_sample(cov: np.ndarray, n: int, seed: int):
    z = np.random.default_rng(seed).standard_normal((n, cov.shape[0])) @ np.linalg.cholesky(cov).T
    d = cov.shape[0] // 2
    return z[:, :d], z[:, d:]


@pytest.mark.parametrize("family", ["dense", "sparse"])
@pytest.mark.parametrize("d", [1, 4, 16, 32])
def test_within_five_percent_when_n_is_much_larger_than_d(family: str, d: int) -> None:
    cov = dense_cov(d, 0.8) if family == "dense" else sparse_cov(d, 0.8)
    truth = gaussian_mi(cov, d)
    x, y = gaussian_sample(cov, 5000, seed=d)
    est = CCA()
    value = est.estimate(x, y)
    assert abs(value - truth) <= 0.05 * truth, (value, truth)
    assert est.last_info["form_used"] == "unbiased"
    assert est.last_info["shrinkage_used"] == 0.0


def test_unbiased_where_the_plug_in_is_far_off() -> None:
    # n = 300, 32 + 32 dimensions: the plug-in value is more than twice the
    # truth; the bias-corrected one is within 10%.
    cov = dense_cov(32, 0.5)
    truth = gaussian_mi(cov, 32)
    x, y = gaussian_sample(cov, 300, seed=1)
    plug_in = CCA(shrinkage=0.0).estimate(x, y)
    value = CCA().estimate(x, y)
    assert plug_in > 2 * truth
    assert abs(value - truth) < 0.1 * truth


def test_bias_correction_matches_the_plug_in_bias_on_average() -> None:
    # 200 Gaussian samples of n = 40 in 4 + 4 dimensions: the plug-in's mean
    # excess over the truth equals gaussian_bias (its standard error here is
    # about 0.015), and the corrected estimate is unbiased.
    cov = sparse_cov(4, 0.6)
    truth = gaussian_mi(cov, 4)
    plug, corrected = [], []
    for seed in range(200):
        x, y = gaussian_sample(cov, 40, seed)
        plug.append(CCA(shrinkage=0.0).estimate(x, y))
        corrected.append(CCA(shrinkage="unbiased").estimate(x, y))
    bias = gaussian_bias(40, 4, 4)
    assert bias > 0.2
    assert abs(np.mean(plug) - truth - bias) < 0.07
    assert abs(np.mean(corrected) - truth) < 0.07


def test_auto_picks_the_form_by_rows_per_dimension() -> None:
    est = CCA()
    assert est.form(16, 4, 4) == "unbiased" and est.form(15, 4, 4) == "shrunk"
    assert CCA(shrinkage="ledoit-wolf").form(10_000, 1, 1) == "shrunk"
    x, y = gaussian_sample(sparse_cov(4, 0.6), 12, seed=0)
    value = est.estimate(x, y)
    assert np.isfinite(value) and value >= 0.0
    assert est.last_info["form_used"] == "shrunk" and est.last_info["shrinkage_used"] > 0.0
    with pytest.raises(ValueError, match=r"needs n > dx \+ dy \+ 1 rows; got n = 9"):
        CCA(shrinkage="unbiased").estimate(x[:9], y[:9])


def test_small_n_sanity() -> None:
    # A few rows per dimension: finite, and independent data gives a small value.
    for n, d in ((20, 2), (30, 4), (60, 8)):
        rng = np.random.default_rng(n)
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        value = CCA().estimate(x, y)
        assert np.isfinite(value) and abs(value) < 0.5


def test_the_bootstrap_form_is_that_of_the_columns_the_estimate_reads() -> None:
    # nine constant columns beside one: the estimate uses the unbiased form (one column),
    # and so must its interval, not "replacement-bc" counted on ten columns
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 1))
    y = 0.6 * x + 0.8 * rng.standard_normal((20, 1))
    padded = np.hstack([x, np.ones((20, 9))])
    est = CCA()
    assert est.interval(padded, y, n_boot=200) == pytest.approx(est.interval(x, y, n_boot=200))


def test_a_singular_bootstrap_replicate_is_left_out_with_a_warning() -> None:
    # 14 + 1 columns at n = 30: a resample holds about 19 distinct rows, sometimes too few
    rng = np.random.default_rng(21)
    x = rng.standard_normal((30, 14))
    y = x[:, :1] + rng.standard_normal((30, 1))
    est = CCA()
    assert np.isfinite(est.estimate(x, y))
    found = False
    for seed in range(20):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lo, hi = est.interval(x, y, n_boot=100, seed=seed)
        assert lo <= hi
        found = found or any("left out" in str(w.message) for w in caught)
    assert found


def test_a_shrunk_form_interval_warns_that_it_can_miss_the_mi() -> None:
    # 8 pairs at correlation 0.5 (MI 1.15 nats) from 24 rows: the shrunk form reads far
    # low, and its bootstrap interval lies wholly below the MI; the unbiased form's covers it
    from mistmodel.caller_warnings import ShrinkageBiasWarning

    d, n = 8, 24
    truth = -0.5 * d * math.log(1 - 0.25)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, d))
    y = 0.5 * x + math.sqrt(0.75) * rng.standard_normal((n, d))
    with pytest.warns(ShrinkageBiasWarning, match="shrunk form"):
        lo, hi = CCA().interval(x, y, n_boot=50)
    assert hi < truth
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShrinkageBiasWarning)
        warnings.simplefilter("ignore", RuntimeWarning)   # replicates with too few rows
        lo, hi = CCA(shrinkage="unbiased").interval(x, y, n_boot=50)
        assert lo <= truth <= hi
        CCA(shrinkage=0.0).bootstrap_distribution(x[:, :4], y[:, :4], n_boot=20)   # plug-in
        CCA().interval(x[:, :2], y[:, :2], n_boot=20)                # n >= 2 (dx + dy)
    with pytest.warns(ShrinkageBiasWarning):
        CCA(shrinkage=0.1).bootstrap_distribution(x, y, n_boot=20)
