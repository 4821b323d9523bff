"""Ground truth of every family: closed forms, check values, and Monte Carlo checks."""
import numpy as np
import pytest
from scipy import integrate, stats

import mistgen
from mistgen import FAMILIES, PriorError, ShapeError
from mistgen.families import additive_noise_mi, gaussian_mi, student_mi_correction
from mistgen.families.base import lvm_correlation


def mi_of(spec, dx, dy, **params):
    return mistgen.sample(spec, 2, dx, dy, 0, params=params).mi


# -- check values from FAMILIES.md ------------------------------------------------------

def test_bivariate_normal_check_value():
    assert mi_of("normal-dense", 1, 1, off_diag=0.75) == pytest.approx(0.413, abs=1e-3)


@pytest.mark.parametrize("d, expected", [(2, 0.294), (3, 0.413), (5, 0.593), (25, 1.292), (50, 1.624)])
def test_dense_check_values(d, expected):
    assert mi_of("normal-dense", d, d, off_diag=0.5) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("dx, dy, c", [(1, 1, 0.3), (3, 7, 0.2), (64, 64, 0.45), (1, 64, 0.1)])
def test_dense_closed_form(dx, dy, c):
    closed = 0.5 * (-np.log(1 - c) + np.log(1 + (dx - 1) * c) + np.log(1 + (dy - 1) * c)
                    - np.log(1 + (dx + dy - 1) * c))
    assert mi_of("normal-dense", dx, dy, off_diag=c) == pytest.approx(closed, abs=1e-10)


@pytest.mark.parametrize("d", [2, 3, 9, 64])
def test_two_pair_check_value_any_dim(d):
    assert mi_of("normal-2pair", d, d, k=2, strength=2.0) == pytest.approx(1.022, abs=1e-3)


@pytest.mark.parametrize("dx, dy, k, s", [(1, 1, 1, 0.3), (5, 3, 3, 4.9), (40, 64, 17, 1.5)])
def test_sparse_closed_form(dx, dy, k, s):
    rho = s**2 / (1 + s**2)
    assert mi_of("normal-sparse", dx, dy, k=k, strength=s) == pytest.approx(
        -(k / 2) * np.log(1 - rho**2), abs=1e-10)


@pytest.mark.parametrize("d, nu, expected", [(1, 1, 0.224), (2, 1, 0.432), (2, 2, 0.193),
                                             (3, 2, 0.291), (3, 3, 0.179), (5, 2, 0.448),
                                             (5, 3, 0.299)])
def test_student_identity_check_values(d, nu, expected):
    assert mi_of("student-identity", d, d, nu=float(nu)) == pytest.approx(expected, abs=1e-3)


def test_student_equals_gaussian_plus_correction():
    params = dict(nu=3.5, off_diag=0.3)
    g = mi_of("normal-dense", 4, 6, off_diag=0.3)
    assert mi_of("student-dense", 4, 6, **params) == pytest.approx(
        g + student_mi_correction(3.5, 4, 6), abs=1e-12)


@pytest.mark.parametrize("nu, dx, dy, expected", [
    # 50-digit values of the direct form (mpmath)
    (1e3, 1, 1, 4.996664e-07), (1e4, 8, 3, 1.198841e-07), (1e5, 1, 1, 4.999967e-11),
    (1e8, 32, 32, 5.119997e-14), (1e10, 1, 1, 5.0e-21), (1e4, 256, 256, 3.116633e-04),
])
def test_student_correction_keeps_its_precision_at_many_degrees_of_freedom(nu, dx, dy, expected):
    assert student_mi_correction(nu, dx, dy) == pytest.approx(expected, rel=1e-6)


def test_student_correction_is_continuous_where_its_series_takes_over():
    from mistgen.families.student import ASYMPTOTIC_FROM_NU, _g, _mixed_difference

    for dx, dy in [(1, 1), (8, 3), (32, 32), (256, 256)]:
        direct = _mixed_difference(_g, ASYMPTOTIC_FROM_NU / 2, dx / 2, dy / 2)
        assert student_mi_correction(ASYMPTOTIC_FROM_NU, dx, dy) == pytest.approx(direct, rel=1e-8)


@pytest.mark.parametrize("eps, expected", [(0.1, 1.709), (0.75, 0.333)])
def test_additive_noise_check_values(eps, expected):
    assert mi_of("additive_noise", 1, 1, epsilon=[eps]) == pytest.approx(expected, abs=1e-3)
    assert mi_of("additive_noise", 3, 3, epsilon=[eps] * 3) == pytest.approx(3 * expected, abs=3e-3)


def test_lvm_matches_raw_covariance():
    dx, dy, k, a, lam, b, eta = 3, 4, 2, 0.7, 1.3, 0.9, 2.1
    raw = (a**2 * np.ones((7, 7)) + np.eye(7)
           + b**2 * np.block([[np.ones((3, 3)), np.zeros((3, 4))], [np.zeros((4, 3)), np.ones((4, 4))]]))
    for i in range(k):
        e = np.zeros(7)
        e[i] = e[dx + i] = 1
        raw += lam**2 * np.outer(e, e)
    for j in [2, 3 + 2, 3 + 3]:  # coordinates i >= k on both sides
        raw[j, j] += eta**2
    corr = lvm_correlation(dx, dy, k, a, lam, b, eta)
    dsq = np.sqrt(np.diag(raw))
    np.testing.assert_allclose(corr, raw / np.outer(dsq, dsq), atol=1e-14)
    params = {"k": k, "alpha": a, "lambda": lam, "beta": b, "eta": eta}
    assert mi_of("normal-lvm", dx, dy, **params) == pytest.approx(gaussian_mi(raw, dx), abs=1e-12)


# -- shapes -------------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES.names())
@pytest.mark.parametrize("dx, dy", [(1, 1), (2, 7), (64, 64), (64, 3)])
def test_every_family_takes_every_shape_it_allows(family, dx, dy):
    fam = FAMILIES.get(family)
    if fam.shape_problem(dx, dy):
        with pytest.raises(ShapeError, match=family):
            mistgen.sample(family, 20, dx, dy, seed=1)
        return
    s = mistgen.sample(family, 20, dx, dy, seed=1)
    assert s.x.shape == (20, dx) and s.y.shape == (20, dy)
    assert np.isfinite(s.x).all() and np.isfinite(s.y).all()
    assert np.isfinite(s.mi) and s.mi >= 0


def test_shape_errors_name_the_problem():
    with pytest.raises(ShapeError, match="normal-2pair.*dim_x, dim_y >= 2"):
        mistgen.sample("normal-2pair-base", 10, 1, 5, 0)
    with pytest.raises(ShapeError, match="additive_noise.*dim_x == dim_y"):
        mistgen.sample("additive_noise-base", 10, 2, 3, 0)
    with pytest.raises(ShapeError, match="spiral"):
        mistgen.sample("normal-dense-spiral", 10, 1, 3, 0)
    with pytest.raises(ShapeError, match="n must be >= 2"):
        mistgen.sample("normal-dense-base", 1, 2, 2, 0)
    with pytest.raises(ShapeError, match="dim_y must be >= 1"):
        mistgen.sample("normal-dense-base", 10, 2, 0, 0)


# -- priors -------------------------------------------------------------------------------

def test_default_priors_follow_the_paper():
    draws = [mistgen.sample("student-sparse-base", 2, 6, 6, seed).params for seed in range(300)]
    nus = [p["nu"] for p in draws]
    ks = [p["k"] for p in draws]
    strengths = [p["strength"] for p in draws]
    assert 1 <= min(nus) and max(nus) <= 10
    assert set(ks) == set(range(1, 7))
    assert 0.1 <= min(strengths) and max(strengths) <= 5
    eps = mistgen.sample("additive_noise", 2, 32, 32, 3).params["epsilon"]
    assert len(eps) == 32 and 0.1 <= min(eps) and max(eps) <= 2


def test_prior_overrides_and_bad_priors():
    priors = {"normal-dense": {"off_diag": [0.2, 0.25]}}
    for seed in range(20):
        c = mistgen.sample("normal-dense", 2, 3, 3, seed, priors=priors).params["off_diag"]
        assert 0.2 <= c <= 0.25
    with pytest.raises(PriorError, match="no parameter 'offdiag'"):
        mistgen.sample("normal-dense", 2, 3, 3, 0, priors={"normal-dense": {"offdiag": [0, 1]}})
    with pytest.raises(PriorError, match="needs parameter\\(s\\) strength"):
        mistgen.sample("normal-sparse", 2, 3, 3, 0, params={"k": 1})
    with pytest.raises(PriorError, match="integers 1 <= low <= high"):
        mistgen.sample("normal-lvm", 2, 3, 3, 0, priors={"normal-lvm": {"k": [0, 2]}})
    with pytest.raises(PriorError, match="low <= high"):
        mistgen.sample("normal-dense", 2, 3, 3, 0, priors={"normal-dense": {"off_diag": [0.4, 0.1]}})


def test_explicit_parameters_are_those_the_family_has():
    with pytest.raises(PriorError, match="no parameter\\(s\\) 'offdiag'"):
        mistgen.sample("normal-dense", 10, 2, 2, 0, params={"off_diag": 0.2, "offdiag": 0.9})
    with pytest.raises(PriorError, match="k must be 2"):
        mistgen.sample("normal-2pair", 10, 4, 4, 0, params={"k": 4, "strength": 2.0})
    drawn = mistgen.sample("student-2pair", 10, 4, 4, 0)        # parameters a draw records
    assert mistgen.sample("student-2pair", 10, 4, 4, 0, params=drawn.params).mi == drawn.mi
    table = mistgen.sample("discrete-table", 10, 1, 1, 0)
    assert mistgen.sample("discrete-table", 10, 1, 1, 0, params=table.params).mi == table.mi


# -- Monte Carlo: the sampled data follow the stated distribution -------------------------

@pytest.mark.parametrize("spec, dx, dy", [("normal-dense", 3, 4), ("normal-sparse", 4, 2),
                                          ("normal-lvm", 3, 3), ("normal-2pair", 2, 5)])
def test_gaussian_sample_covariance(spec, dx, dy):
    s = mistgen.sample(spec, 200_000, dx, dy, seed=7)
    fam = FAMILIES.get(spec)
    target = fam.matrix(s.params, dx, dy)
    emp = np.cov(np.hstack([s.x, s.y]), rowvar=False)
    np.testing.assert_allclose(emp, target, atol=0.015)
    assert s.mi == pytest.approx(gaussian_mi(target, dx), abs=1e-12)


def test_student_sample_covariance_and_marginals():
    nu = 6.0
    s = mistgen.sample("student-dense", 200_000, 2, 3, seed=3, params={"nu": nu, "off_diag": 0.4})
    xy = np.hstack([s.x, s.y])
    target = nu / (nu - 2) * FAMILIES.get("student-dense").matrix(s.params, 2, 3)
    np.testing.assert_allclose(np.cov(xy, rowvar=False), target, rtol=0.05, atol=0.03)
    for j in range(5):  # each coordinate is t(nu) since the dispersion has unit diagonal
        assert stats.kstest(xy[:20_000, j], stats.t(nu).cdf).pvalue > 1e-3


def test_additive_noise_distribution():
    s = mistgen.sample("additive_noise", 50_000, 2, 2, seed=4, params={"epsilon": [0.3, 1.2]})
    noise = s.y - s.x
    for j, eps in enumerate([0.3, 1.2]):
        assert stats.kstest(s.x[:, j], "uniform").pvalue > 1e-3
        assert stats.kstest(noise[:, j], stats.uniform(-eps, 2 * eps).cdf).pvalue > 1e-3
    assert abs(np.corrcoef(noise[:, 0], s.x[:, 0])[0, 1]) < 0.02


def _mi_by_grid_integration(logpdf_joint, logpdf_x, logpdf_y, m=1601):
    """I = E[log p(x,y) / p(x) p(y)], integrated on a tan-warped grid covering R^2."""
    theta = np.linspace(-np.pi / 2, np.pi / 2, m + 2)[1:-1]
    u = np.tan(theta)
    w = (theta[1] - theta[0]) / np.cos(theta) ** 2
    X, Y = np.meshgrid(u, u, indexing="ij")
    lj = logpdf_joint(np.stack([X, Y], -1))
    integrand = np.exp(lj) * (lj - logpdf_x(X) - logpdf_y(Y))
    return float(np.sum(integrand * w[:, None] * w[None, :]))


@pytest.mark.parametrize("nu, rho", [(1.5, 0.0), (3.0, 0.6)])
def test_student_1x1_mi_by_numerical_integration(nu, rho):
    shape = np.array([[1, rho], [rho, 1]])
    joint = stats.multivariate_t(loc=[0, 0], shape=shape, df=nu)
    marg = stats.t(nu)
    numeric = _mi_by_grid_integration(joint.logpdf, marg.logpdf, marg.logpdf)
    label = mi_of("student-dense", 1, 1, nu=nu, off_diag=rho)
    assert label == pytest.approx(numeric, abs=2e-3)


def test_gaussian_1x1_mi_by_numerical_integration():
    joint = stats.multivariate_normal(mean=[0, 0], cov=[[1, 0.75], [0.75, 1]])
    numeric = _mi_by_grid_integration(joint.logpdf, stats.norm.logpdf, stats.norm.logpdf)
    assert mi_of("normal-dense", 1, 1, off_diag=0.75) == pytest.approx(numeric, abs=1e-3)


@pytest.mark.parametrize("eps", [0.1, 0.3, 0.5, 0.75, 1.9])
def test_additive_1x1_mi_by_numerical_integration(eps):
    # I = h(Y) - h(Y | X) with h(Y | X) = log(2 eps) and p(y) the overlap of [y-eps, y+eps] with [0, 1].
    def p(y):
        return max(0.0, min(1.0, y + eps) - max(0.0, y - eps)) / (2 * eps)

    def neg_plogp(y):
        v = p(y)
        return -v * np.log(v) if v > 0 else 0.0

    pts = sorted({-eps, eps, 1 - eps, 1 + eps})
    h_y = sum(integrate.quad(neg_plogp, a, b, epsabs=1e-12)[0] for a, b in zip(pts, pts[1:]))
    numeric = h_y - np.log(2 * eps)
    assert additive_noise_mi(eps) == pytest.approx(numeric, abs=1e-6)
    assert mi_of("additive_noise", 1, 1, epsilon=[eps]) == pytest.approx(numeric, abs=1e-6)


# -- process state: BLAS threads ------------------------------------------------------

def blas_threads():
    from threadpoolctl import threadpool_info
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_sampling_runs_on_one_blas_thread_and_restores_the_count():
    from threadpoolctl import threadpool_limits
    from mistgen.threads import single_threaded_blas

    with threadpool_limits(limits=2, user_api="blas"):
        with single_threaded_blas():
            assert set(blas_threads()) == {1}
            with single_threaded_blas():  # nested: still one, and the outer exit restores
                pass
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {2}
        mistgen.sample("normal-dense-base", 50, 8, 8, 0)
        assert set(blas_threads()) == {2}
        with pytest.raises(PriorError):
            mistgen.sample("student-dense", 50, 3, 3, 0, params={"nu": -1.0, "off_diag": 0.1})
        with pytest.raises(PriorError):
            mistgen.sample("normal-dense", 50, 3, 3, 0, priors={"normal-dense": {"off_diag": [-0.5, 0]}})
        assert set(blas_threads()) == {2}


def test_concurrent_samples_from_threads_leave_the_count_as_found():
    from concurrent.futures import ThreadPoolExecutor
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda s: mistgen.sample("student-dense-asinh", 200, 16, 16, s),
                          range(40)))
        assert set(blas_threads()) == {2}
