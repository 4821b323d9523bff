"""Bootstrap intervals: coverage of the true MI, schemes, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mistmodel.estimators import CCA, KSG, BootstrapError, InfoNCE

RHO = 0.5
TRUTH = -0.5 * math.log(1 - RHO**2)


def bivariate(rng: np.random.Generator, n: int):
    x = rng.standard_normal((n, 1))
    y = RHO * x + math.sqrt(1 - RHO**2) * rng.standard_normal((n, 1))
    return x, y


def coverage(est, n: int, reps: int, n_boot: int, levels: tuple[float, ...]) -> dict[float, float]:
    rng = np.random.default_rng(20240601)
    hits = dict.fromkeys(levels, 0)
    for r in range(reps):
        x, y = bivariate(rng, n)
        values = est.bootstrap_distribution(x, y, n_boot=n_boot, seed=r)
        for level in levels:
            lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
            hits[level] += lo <= TRUTH <= hi
    return {level: h / reps for level, h in hits.items()}


@pytest.mark.parametrize(
    "est",
    [KSG(k=5), CCA(shrinkage=0.0)],
    ids=["KSG-subsample", "CCA-replacement-bc"],
)
def test_coverage_near_nominal_on_gaussian_data(est) -> None:
    # 100 datasets: the 90% interval should cover ~90 times (sd 3), the 50%
    # interval ~50 times (sd 5). Too narrow or too wide intervals both fail.
    cov = coverage(est, n=200, reps=100, n_boot=80, levels=(0.5, 0.9))
    assert 0.80 <= cov[0.9] <= 0.98
    assert 0.35 <= cov[0.5] <= 0.65


class _PlainPercentileCCA(CCA):
    bootstrap = "replacement"


def test_bias_corrected_interval_where_the_bias_is_large() -> None:
    # The plug-in CCA (no shrinkage, no bias correction) in 8 + 8 dimensions
    # at n = 300 is biased upwards by about its standard error: the plain
    # percentile interval (centred near truth plus twice the bias) almost
    # never covers; the bias-corrected one does.
    rng = np.random.default_rng(11)
    d, n, c = 8, 300, 0.5
    cov = (1 - c) * np.eye(2 * d) + c * np.ones((2 * d, 2 * d))
    truth = 0.5 * (-math.log(1 - c) + 2 * math.log(1 + (d - 1) * c) - math.log(1 + (2 * d - 1) * c))
    hits = {"bc": 0, "plain": 0}
    reps = 30
    for r in range(reps):
        z = rng.multivariate_normal(np.zeros(2 * d), cov, size=n)
        for key, est in (("bc", CCA(shrinkage=0.0)), ("plain", _PlainPercentileCCA(shrinkage=0.0))):
            lo, hi = est.interval(z[:, :d], z[:, d:], level=0.9, n_boot=50, seed=r)
            hits[key] += lo <= truth <= hi
    assert hits["bc"] >= 0.75 * reps
    assert hits["plain"] <= 0.4 * reps


def test_ksg_uses_subsamples_without_duplicates() -> None:
    # With replacement, duplicated rows would be each other's nearest
    # neighbours and push every replicate far above the estimate.
    rng = np.random.default_rng(1)
    x, y = bivariate(rng, 300)
    est = KSG()
    value = est.estimate(x, y)
    lo, hi = est.interval(x, y, n_boot=50)
    assert lo < value < hi
    assert hi - value < 0.2 and value - lo < 0.2


def test_interval_is_reproducible_and_seed_dependent() -> None:
    rng = np.random.default_rng(2)
    x, y = bivariate(rng, 120)
    est = CCA()
    assert est.interval(x, y, n_boot=30, seed=4) == est.interval(x, y, n_boot=30, seed=4)
    assert est.interval(x, y, n_boot=30, seed=4) != est.interval(x, y, n_boot=30, seed=5)


def test_wider_level_gives_wider_interval() -> None:
    rng = np.random.default_rng(3)
    x, y = bivariate(rng, 150)
    est = KSG()
    lo90, hi90 = est.interval(x, y, level=0.9, n_boot=40)
    lo50, hi50 = est.interval(x, y, level=0.5, n_boot=40)
    assert lo90 <= lo50 <= hi50 <= hi90


def test_neural_interval_runs_at_its_smallest_n() -> None:
    rng = np.random.default_rng(4)
    x, y = bivariate(rng, 16)
    est = InfoNCE(max_steps=30)
    assert est.min_bootstrap_rows == 16
    lo, hi = est.interval(x, y, n_boot=4)
    assert np.isfinite(lo) and np.isfinite(hi) and lo < hi
    with pytest.raises(BootstrapError, match="n = 15 rows is too small.*needs n >= 16"):
        est.interval(x[:15], y[:15], n_boot=4)


def test_bad_interval_arguments() -> None:
    rng = np.random.default_rng(5)
    x, y = bivariate(rng, 50)
    with pytest.raises(ValueError, match="level"):
        KSG().interval(x, y, level=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        KSG().interval(x, y, n_boot=1)
    with pytest.raises(ValueError, match="subsample"):
        KSG(k=5).interval(x[:7], y[:7])


def test_constant_input_interval_is_zero() -> None:
    rng = np.random.default_rng(6)
    y = rng.standard_normal((40, 2))
    assert KSG().interval(np.zeros((40, 1)), y, n_boot=10) == (0.0, 0.0)


@pytest.mark.parametrize("c", [0.0, 0.5])
def test_unbiased_cca_interval_covers_in_many_dimensions(c) -> None:
    # The default CCA removes its Gaussian bias itself, so its interval is the
    # bootstrap spread re-centred on the estimate; shifting it by the bootstrap's
    # bias estimate as well would centre it a whole bias below the truth.
    d, n, reps = 8, 300, 30
    cov = (1 - c) * np.eye(2 * d) + c * np.ones((2 * d, 2 * d))
    truth = 0.5 * (np.linalg.slogdet(cov[:d, :d])[1] * 2 - np.linalg.slogdet(cov)[1])
    chol = np.linalg.cholesky(cov)
    hits = 0
    for r in range(reps):
        z = np.random.default_rng(100 + r).standard_normal((n, 2 * d)) @ chol.T
        lo, hi = CCA().interval(z[:, :d], z[:, d:], level=0.9, n_boot=60, seed=r)
        hits += lo <= truth <= hi
    assert hits >= 0.8 * reps
