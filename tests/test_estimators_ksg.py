"""KSG: agreement with a plain O(n^2) implementation, accuracy, ties, settings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import digamma

from mistmodel.estimators import KSG
from mistmodel.estimators import ksg as ksg_module
from mistmodel.estimators.ksg import ksg_counts


def reference_ksg(x: np.ndarray, y: np.ndarray, k: int, metric: str) -> float:
    """Algorithm 1 of Kraskov et al. (2004), one point at a time."""
    n = x.shape[0]
    total = 0.0
    for i in range(n):
        if metric == "chebyshev":
            dx = np.abs(x - x[i]).max(axis=1)
            dy = np.abs(y - y[i]).max(axis=1)
        else:
            dx = np.sqrt(((x - x[i]) ** 2).sum(axis=1))
            dy = np.sqrt(((y - y[i]) ** 2).sum(axis=1))
        dx[i] = dy[i] = np.inf
        eps = np.sort(np.maximum(dx, dy))[k - 1]
        total += digamma(np.sum(dx < eps) + 1) + digamma(np.sum(dy < eps) + 1)
    return digamma(k) + digamma(n) - total / n


def correlated(rng: np.random.Generator, n: int, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, dx))
    y = rng.standard_normal((n, dy))
    y[:, 0] += 0.8 * x[:, 0]
    return x, y


def bivariate_normal(rng: np.random.Generator, n: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, 1))
    y = rho * x + np.sqrt(1.0 - rho**2) * rng.standard_normal((n, 1))
    return x, y


CASES = [(40, 1, 1, 1), (150, 3, 2, 5), (120, 1, 7, 3), (90, 8, 8, 10), (200, 2, 2, 20), (60, 20, 5, 4)]


@pytest.mark.parametrize("n,dx,dy,k", CASES)
@pytest.mark.parametrize("metric", ["chebyshev", "euclidean"])
@pytest.mark.parametrize("algorithm", ["tree", "brute"])
def test_matches_reference(n: int, dx: int, dy: int, k: int, metric: str, algorithm: str) -> None:
    rng = np.random.default_rng([n, dx, dy, k])
    x, y = correlated(rng, n, dx, dy)
    want = reference_ksg(x, y, k, metric)
    got = KSG(k=k, metric=metric, standardize=False, jitter=0.0, algorithm=algorithm).estimate(x, y)
    assert abs(got - want) < 1e-10


@pytest.mark.parametrize("metric", ["chebyshev", "euclidean"])
def test_standardisation_matches_reference_on_standardised_data(metric: str) -> None:
    rng = np.random.default_rng(5)
    x, y = correlated(rng, 120, 3, 4)
    x = x * np.array([1.0, 50.0, 0.01]) + 7.0
    zx = (x - x.mean(0)) / x.std(0)
    zy = (y - y.mean(0)) / y.std(0)
    want = reference_ksg(zx, zy, 4, metric)
    got = KSG(k=4, metric=metric, jitter=0.0).estimate(x, y)
    assert abs(got - want) < 1e-10


@pytest.mark.filterwarnings("ignore::mistmodel.caller_warnings.TiedDataWarning")  # ties on purpose
@pytest.mark.parametrize("metric", ["chebyshev", "euclidean"])
def test_exact_ties_follow_the_strict_inequality(metric: str) -> None:
    # Lattice data without jitter: many equal distances and duplicated rows.
    rng = np.random.default_rng(11)
    x = rng.integers(0, 4, size=(150, 2)).astype(float)
    y = x[:, :1] + rng.integers(0, 3, size=(150, 3))
    want = reference_ksg(x, y, 3, metric)
    for algorithm in ("tree", "brute"):
        est = KSG(k=3, metric=metric, standardize=False, jitter=0.0, algorithm=algorithm)
        assert abs(est.estimate(x, y) - want) < 1e-10


def test_tree_and_brute_give_the_same_counts_in_blocks() -> None:
    rng = np.random.default_rng(3)
    x, y = correlated(rng, 300, 2, 3)
    for metric in ("chebyshev", "euclidean"):
        eps_t, nx_t, ny_t = ksg_counts(x, y, 5, metric, "tree")
        eps_b, nx_b, ny_b = ksg_counts(x, y, 5, metric, "brute", block_rows=7)
        np.testing.assert_allclose(eps_t, eps_b, rtol=1e-12)
        np.testing.assert_array_equal(nx_t, nx_b)
        np.testing.assert_array_equal(ny_t, ny_b)


@pytest.mark.parametrize("jitter", [0.0, 1e-10])
def test_euclidean_tree_counts_neighbours_at_a_hair_from_eps_as_the_brute_force(jitter):
    # integer data with ties: broken ties put neighbours within a relative 1e-12 of eps
    rng = np.random.default_rng(16)
    x = rng.integers(0, 30, (300, 1)).astype(float)
    y = x + rng.integers(0, 30, (300, 1))
    values = [KSG(metric=metric, algorithm=algorithm, jitter=jitter).estimate(x, y)
              for metric in ("euclidean", "chebyshev") for algorithm in ("tree", "brute")]
    assert max(values) - min(values) < 1e-12, values


def test_euclidean_tree_recounts_every_unsure_row_when_a_block_holds_under_one_row(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a block of fewer entries than rows (more than 2**20 rows at the real size): every
    # row with a neighbour at a hair from eps is still counted exactly, one per block
    rng = np.random.default_rng(16)
    x = rng.integers(0, 30, (400, 1)).astype(float)
    x, y = x / x.std(), (x + rng.integers(0, 30, (400, 1))) / 7.0
    brute = ksg_counts(x, y, 5, "euclidean", "brute")
    monkeypatch.setattr(ksg_module, "_BLOCK_ENTRIES", 100)
    tree = ksg_counts(x, y, 5, "euclidean", "tree")
    np.testing.assert_array_equal(tree[1], brute[1])
    np.testing.assert_array_equal(tree[2], brute[2])


def test_without_standardisation_or_noise_the_values_are_used_as_given() -> None:
    # no centring where there is no noise to keep: the plain values' exact ties stand
    rng = np.random.default_rng(1)
    x = np.round(rng.standard_normal((300, 1)), 1)
    y = np.round(x + rng.standard_normal((300, 1)), 1)
    est = KSG(standardize=False, jitter=0.0)
    _, nx, ny = ksg_counts(*est._scaled(x, y), 5, "chebyshev", "brute")
    _, nx0, ny0 = ksg_counts(x, y, 5, "chebyshev", "brute")
    np.testing.assert_array_equal(nx, nx0)
    np.testing.assert_array_equal(ny, ny0)


@pytest.mark.parametrize("offset", [1e3, 1e6, 1e9])
def test_without_standardisation_an_offset_leaves_the_ties_broken(offset: float) -> None:
    # a column on a 0.1 grid: far from 0 the noise, relative to its spread, rounded away
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], 1000)
    x, y = np.round(z[:, :1], 1), z[:, 1:]
    est = KSG(standardize=False)
    assert est.estimate(x + offset, y) == pytest.approx(est.estimate(x, y), abs=0.01)


def test_copied_rows_are_warned_of_and_grids_are_not() -> None:
    from mistmodel.caller_warnings import RepeatedRowsWarning

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((1000, 2)), rng.standard_normal((1000, 2))
    copies = rng.choice(1000, 50, replace=False)
    xc, yc = np.vstack([x, x[copies]]), np.vstack([y, y[copies]])
    with pytest.warns(RepeatedRowsWarning, match="50 of 1050 rows"):
        high = KSG().estimate(xc, yc)
    assert high > KSG().estimate(x, y) + 0.01
    with pytest.warns(RepeatedRowsWarning):
        KSG().estimate_conditional(xc, yc, np.vstack([x, x[copies]])[:, :1] + 1.0)
    grid = np.round(rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], 1000), 1)
    labels = rng.integers(0, 3, (1000, 2)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RepeatedRowsWarning)
        KSG().estimate(x, y)
        KSG(discrete="auto").estimate(grid[:, :1], grid[:, 1:])   # 31% of rows repeat
        KSG(discrete="auto").estimate(labels[:, :1], labels[:, 1:])
        KSG().test_independence(xc[:200], yc[:200], n_permutations=5)   # < 1% repeated
        z = rng.standard_normal((1000, 1))       # one rounded feature against a class label
        KSG(discrete="auto").estimate(np.round(z, 1), (z + rng.standard_normal((1000, 1))
                                                       > 0).astype(float))


def _exact_brute(monkeypatch: pytest.MonkeyPatch, x, y, k, block_rows=None):
    """Counts from the difference-based brute force only (matrix products off)."""
    with monkeypatch.context() as m:
        m.setattr(ksg_module, "_GRAM_FROM_DIM", 10**9)
        return ksg_counts(x, y, k, "euclidean", "brute", block_rows=block_rows)


def _product_brute(monkeypatch: pytest.MonkeyPatch, x, y, k, block_rows=None):
    """Counts from the matrix-product brute force, whatever the dimension."""
    with monkeypatch.context() as m:
        m.setattr(ksg_module, "_GRAM_FROM_DIM", 2)
        return ksg_counts(x, y, k, "euclidean", "brute", block_rows=block_rows)


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e6])
@pytest.mark.parametrize("n,dx,dy,k,block_rows", [(200, 16, 16, 5, None), (90, 4, 12, 1, 7),
                                                  (150, 30, 2, 9, 64)])
def test_matrix_product_distances_give_exact_counts(monkeypatch: pytest.MonkeyPatch, offset: float,
                                                    n: int, dx: int, dy: int, k: int,
                                                    block_rows: int | None) -> None:
    # A large offset makes |a|^2 + |b|^2 - 2 a.b cancel badly: the rounding bound must
    # send the close calls to exact distances (or the block to the exact path).
    rng = np.random.default_rng([n, dx, k])
    x, y = correlated(rng, n, dx, dy)
    x, y = x + offset, y - offset
    want = _exact_brute(monkeypatch, x, y, k, block_rows)
    got = _product_brute(monkeypatch, x, y, k, block_rows)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    if offset == 0.0:
        est = KSG(k=k, metric="euclidean", standardize=False, jitter=0.0, algorithm="brute")
        with monkeypatch.context() as m:
            m.setattr(ksg_module, "_GRAM_FROM_DIM", 2)
            assert abs(est.estimate(x, y) - reference_ksg(x, y, k, "euclidean")) < 1e-10


@pytest.mark.filterwarnings("ignore::mistmodel.caller_warnings.TiedDataWarning")  # ties on purpose
def test_matrix_product_path_hands_exact_ties_to_the_exact_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Lattice data in 9 dimensions: the k-th neighbour is tied with others, which the
    # rounding bound cannot separate; the result must still follow the strict inequality.
    rng = np.random.default_rng(12)
    x = rng.integers(0, 3, size=(160, 4)).astype(float)
    y = x[:, :2].repeat(2, axis=1)[:, :3] + rng.integers(0, 2, size=(160, 5))[:, :3]
    y = np.hstack([y, rng.integers(0, 2, size=(160, 2))])
    want = _exact_brute(monkeypatch, x, y, 4)
    got = _product_brute(monkeypatch, x, y, 4)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    est = KSG(k=4, metric="euclidean", standardize=False, jitter=0.0, algorithm="brute")
    with monkeypatch.context() as m:
        m.setattr(ksg_module, "_GRAM_FROM_DIM", 2)
        assert abs(est.estimate(x, y) - reference_ksg(x, y, 4, "euclidean")) < 1e-10


def test_near_ties_below_the_rounding_bound_are_decided_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Points whose distances to a centre differ by ~1e-15 relative: the matrix-product
    # form cannot order them, differences can.
    rng = np.random.default_rng(13)
    base = rng.standard_normal((120, 8))
    base[1:6] = base[0] + 0.5 * np.eye(8)[:5]              # five neighbours at 0.5 of row 0
    base[3] += 1e-15 * np.eye(8)[2]                         # one of them a hair further
    y = base[:, 4:] + 0.1 * rng.standard_normal((120, 4))
    x = base[:, :4]
    for k in (1, 2, 3):
        want = _exact_brute(monkeypatch, x, y, k)
        got = _product_brute(monkeypatch, x, y, k)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_bivariate_normal_rho_075() -> None:
    rng = np.random.default_rng(2024)
    x, y = bivariate_normal(rng, 5000, 0.75)
    truth = -0.5 * np.log(1 - 0.75**2)  # 0.413
    for metric in ("chebyshev", "euclidean"):
        assert abs(KSG(metric=metric).estimate(x, y) - truth) < 0.05


def test_independent_data_gives_about_zero() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2000, 3))
    y = rng.standard_normal((2000, 2))
    assert abs(KSG().estimate(x, y)) < 0.03


def test_uses_every_coordinate() -> None:
    # The dependence sits in the last coordinates only.
    rng = np.random.default_rng(8)
    x = rng.standard_normal((800, 4))
    y = rng.standard_normal((800, 3))
    y[:, 2] = x[:, 3] + 0.3 * y[:, 2]  # true MI 0.5 log(1 + 1/0.09) = 1.25
    assert abs(KSG().estimate(x[:, :1], y[:, :1])) < 0.05
    assert KSG().estimate(x, y) > 0.4  # diluted by 5 independent coordinates
    assert KSG().estimate(x[:, 3:], y[:, 2:]) > 1.0


def test_ties_broken_by_seeded_jitter() -> None:
    rng = np.random.default_rng(9)
    x = np.round(rng.standard_normal((300, 2)), 1)  # heavily rounded: many ties
    y = np.round(x[:, :1] + rng.standard_normal((300, 1)), 1)
    a = KSG(seed=1).estimate(x, y)
    assert a == KSG(seed=1).estimate(x, y)
    assert np.isfinite(a)
    # Different seeds break the ties differently, but only slightly.
    assert abs(a - KSG(seed=2).estimate(x, y)) < 0.1


def test_jitter_does_not_move_continuous_estimates() -> None:
    rng = np.random.default_rng(10)
    x, y = correlated(rng, 400, 3, 3)
    a = KSG(jitter=0.0).estimate(x, y)
    b = KSG(jitter=1e-10, seed=3).estimate(x, y)
    assert abs(a - b) < 1e-12


def test_auto_algorithm_choice_recorded() -> None:
    est = KSG()
    assert est.choose_algorithm(5000, 2) == "tree"
    assert est.choose_algorithm(100, 2) == "brute"
    assert est.choose_algorithm(5000, 64) == "brute"
    rng = np.random.default_rng(0)
    est.estimate(*correlated(rng, 50, 1, 1))
    assert est.last_info["algorithm_used"] == "brute"


def test_settings_and_bad_arguments() -> None:
    est = KSG(k=3, metric="euclidean")
    s = est.settings()
    assert s["k"] == 3 and s["metric"] == "euclidean" and s["standardize"] is True
    with pytest.raises(ValueError, match="metric"):
        KSG(metric="manhattan")
    with pytest.raises(ValueError, match="k must"):
        KSG(k=0)
    with pytest.raises(ValueError, match="algorithm"):
        KSG(algorithm="ball")
    with pytest.raises(ValueError, match="jitter"):
        KSG(jitter=-1.0)
    with pytest.raises(ValueError, match="k must be a positive integer; got True"):
        KSG(k=True)
    for bad in ({"k": float("inf")}, {"k": 2.5}, {"seed": -1}, {"seed": 2.7},
                {"jitter": "a"}, {"jitter": float("nan")}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must"):
            KSG(**bad)
    assert KSG(k=5.0).k == 5


def test_n_not_above_k_plus_one_is_refused() -> None:
    """With k + 1 rows every row is a neighbour of every other: the estimate is 0."""
    rng = np.random.default_rng(0)
    x, y = correlated(rng, 6, 2, 2)
    with pytest.raises(ValueError, match=r"k=5.*at least 7 rows; got 6"):
        KSG(k=5).estimate(x, y)
    assert np.isfinite(KSG(k=4).estimate(x, y))
