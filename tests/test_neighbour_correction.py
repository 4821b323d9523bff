"""The neighbour correction of MIST's point estimate (mistmodel.neighbour_correction)."""
from __future__ import annotations

import numpy as np
import pytest

import mistgen
from mistmodel import neighbour_correction as nc
from mistmodel.estimators.cca import gaussian_bias
from mistmodel.mist import MIST


def _gaussian_pair(n, rho, seed, dim=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    y = rho * x + np.sqrt(1 - rho ** 2) * rng.standard_normal((n, dim))
    return x, y, -0.5 * dim * np.log(1 - rho ** 2)


def _correlation(dim_x, dim_y, seed):
    a = np.random.default_rng(seed).standard_normal((dim_x + dim_y, dim_x + dim_y + 3))
    cov = a @ a.T
    s = np.sqrt(np.diag(cov))
    return cov / np.outer(s, s)


@pytest.fixture(scope="module")
def plain():
    return MIST.load(device="cpu", backend="torch")


@pytest.fixture(scope="module")
def controlled():
    return MIST.load(device="cpu", backend="torch", neighbour_correction=True)


# -- the pieces ----------------------------------------------------------------------------

def test_gaussian_bias_matches_simulation():
    """The Wishart formula is the mean excess of the plug-in Gaussian MI (600 draws)."""
    n, dx, dy = 40, 2, 3
    corr = _correlation(dx, dy, 0)
    truth = nc.gaussian_mi(corr, dx)
    rng = np.random.default_rng(1)
    chol = np.linalg.cholesky(corr)
    excess = [nc.gaussian_mi(np.corrcoef(rng.standard_normal((n, dx + dy)) @ chol.T,
                                         rowvar=False), dx) - truth for _ in range(600)]
    se = np.std(excess) / np.sqrt(len(excess))
    bias = gaussian_bias(n, dx, dy)
    assert bias > 0.05
    assert abs(np.mean(excess) - bias) < 3 * se


def test_gaussian_mi_of_one_pair():
    corr = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert nc.gaussian_mi(corr, 1) == pytest.approx(-0.5 * np.log(0.75), abs=1e-12)


@pytest.mark.parametrize("target", [0.0, 0.05, 0.4])
def test_shrink_cross_reaches_its_target(target):
    corr = _correlation(3, 2, 4)
    assert nc.gaussian_mi(corr, 3) > 0.4
    shrunk = nc.shrink_cross(corr, 3, target)
    assert nc.gaussian_mi(shrunk, 3) == pytest.approx(target, abs=1e-9)
    assert np.linalg.eigvalsh(shrunk).min() > 0
    np.testing.assert_array_equal(shrunk[:3, :3], corr[:3, :3])
    np.testing.assert_array_equal(shrunk[3:, 3:], corr[3:, 3:])
    if target == 0.0:
        assert not shrunk[:3, 3:].any()


def test_shrink_cross_keeps_a_matrix_below_its_target():
    corr = _correlation(2, 2, 5)
    np.testing.assert_array_equal(nc.shrink_cross(corr, 2, nc.gaussian_mi(corr, 2) + 1), corr)


def test_neighbour_of_a_large_gaussian_sample_has_its_mi():
    x, y, truth = _gaussian_pair(20_000, 0.5, 0)
    hood = nc.neighbour(x, y)
    assert hood.mi == pytest.approx(truth, abs=0.01)
    # monotone maps of the columns leave the neighbour unchanged (it reads normal scores)
    again = nc.neighbour(np.exp(x), y ** 3)
    np.testing.assert_allclose(again.corr, hood.corr, atol=1e-12)


def test_neighbour_of_independent_data_is_near_zero():
    rng = np.random.default_rng(2)
    hood = nc.neighbour(rng.standard_normal((2000, 4)), rng.standard_normal((2000, 4)))
    assert 0.0 <= hood.mi < 0.01


def test_draw_is_seeded_and_has_the_neighbours_correlation():
    hood = nc.Neighbour(_correlation(2, 3, 6), 2, np.inf, 0.0)
    x, y = hood.draw(50_000, [0, 1])
    assert x.shape == (50_000, 2) and y.shape == (50_000, 3)
    np.testing.assert_allclose(np.corrcoef(np.hstack([x, y]), rowvar=False), hood.corr,
                               atol=0.02)
    x2, _ = hood.draw(50_000, [0, 1])
    np.testing.assert_array_equal(x, x2)
    assert not np.array_equal(x, hood.draw(50_000, [0, 2])[0])


def test_weight_and_where_it_applies():
    w = nc.correction_weight(np.array([0.1, 0.2, 0.75, 0.3, 2.0]),
                          np.array([0.3, 0.49, 0.1, 0.9, 0.0]))
    np.testing.assert_allclose(w, [1.0, 1.0, 0.5, 0.2, 0.0])
    assert nc.fits_copula(80, 2, 2) and not nc.fits_copula(79, 2, 2)
    assert not nc.fits_copula(10_000, 0, 3)
    with pytest.raises(ValueError, match="without columns"):
        nc.neighbour(np.ones((50, 0)), np.ones((50, 2)))
    rng = np.random.default_rng(3)
    shuffled = nc.neighbour(rng.standard_normal((30, 1)), rng.standard_normal((30, 1)))
    np.testing.assert_allclose(shuffled.weight(np.array([0.1, 0.25, 0.375, 0.5, 0.8])),
                               [1.0, 1.0, 0.5, 0.0, 0.0])


# -- inside MIST ---------------------------------------------------------------------------

def test_it_is_the_documented_correction(plain, controlled):
    x, y, _ = _gaussian_pair(1500, 0.3, 3, dim=2)
    hood = nc.neighbour(x, y)
    draws = hood.draws(len(x), controlled.seed)
    assert len(draws) == nc.DRAWS >= 2 and not np.array_equal(draws[0][0], draws[1][0])
    raw, on_draws = plain.estimate(x, y), float(np.mean(plain.estimate_batch(draws)))
    weight = float(nc.correction_weight(raw, hood.mi))
    assert weight > 0
    value = controlled.estimate(x, y)
    assert value == pytest.approx(raw - weight * (on_draws - hood.mi), abs=1e-9)
    info = controlled.last_info["neighbour_correction"]
    assert info["reason"] == "applied" and info["draws"] == nc.DRAWS
    assert info["weight"] == pytest.approx(weight)
    assert info["neighbour_mi"] == pytest.approx(hood.mi)
    assert info["neighbour_estimate"] == pytest.approx(on_draws, abs=1e-9)
    assert controlled.estimate_batch([(x, y)])[0] == pytest.approx(value, abs=1e-9)
    assert controlled.settings()["neighbour_correction"] is True
    assert info["neighbour_nu"] is None                 # Gaussian data: a Gaussian neighbour


def test_the_draws_follow_the_seed_and_the_data_not_the_shape(controlled):
    """A bootstrap replicate's seed reaches the draws; two samples of one shape get
    different draws."""
    x, y, _ = _gaussian_pair(1000, 0.3, 16)
    assert controlled._estimate(x, y, controlled.seed) == pytest.approx(
        controlled.estimate(x, y), abs=1e-12)
    assert controlled._estimate(x, y, 1) != controlled._estimate(x, y, 2)
    x2, y2, _ = _gaussian_pair(1000, 0.3, 17)
    digest = nc.neighbour(x, y).digest
    assert nc.neighbour(x2, y2).digest != digest
    order = np.random.default_rng(0).permutation(1000)
    assert nc.neighbour(x[order], y[order]).digest == digest
    assert nc.neighbour(np.exp(x), y ** 3).digest == digest


def test_one_range_warning_per_call():
    """The draws have the sample's shape: their pass repeats no warning."""
    from mistmodel.mist import OutOfRangeWarning
    est = MIST.load(device="cpu", backend="torch", neighbour_correction=True,
                    out_of_range="warn")
    rng = np.random.default_rng(18)
    with pytest.warns(OutOfRangeWarning) as caught:
        est.estimate(rng.standard_normal((1000, 40)), rng.standard_normal((1000, 1)))
    assert est.last_info["neighbour_correction"]["reason"] == "applied"
    assert sum(issubclass(w.category, OutOfRangeWarning) for w in caught) == 1


def test_bivariate_gaussian_is_right_as_n_grows(plain, controlled):
    """rho = 0.5 (0.144 nats): the network alone is biased up by about 0.03 nats at
    n >= 2,000; with the control it is within 0.015 at n = 3,000 and 10,000."""
    errors = {"plain": [], "controlled": []}
    for seed, n in [(10, 3000), (11, 3000), (12, 10_000)]:
        x, y, truth = _gaussian_pair(n, 0.5, seed)
        errors["plain"].append(abs(plain.estimate(x, y) - truth))
        errors["controlled"].append(abs(controlled.estimate(x, y) - truth))
    assert max(errors["controlled"]) < 0.015
    assert np.mean(errors["controlled"]) < np.mean(errors["plain"])


def test_left_alone_above_one_nat_or_half_a_nat_with_few_rows(plain, controlled):
    x, y, truth = _gaussian_pair(2000, 0.95, 8, dim=2)                       # 2.3 nats
    few = _gaussian_pair(150, 0.99, 7, dim=4)[:2]              # < 20 rows per column, 8 nats
    half = _gaussian_pair(100, 0.5, 1, dim=4)[:2]      # 0.58 nats, 12.5 rows per column
    assert 0.5 < plain.estimate(*half) < 1.0
    out = controlled.estimate_batch([(x, y), few, half])
    np.testing.assert_allclose(out, plain.estimate_batch([(x, y), few, half]), atol=1e-12)
    for sample in ((x, y), few):
        controlled.estimate(*sample)
        assert controlled.last_info["neighbour_correction"]["reason"] == \
            "MIST's estimate is above 1 nat"
    controlled.estimate(*half)
    assert controlled.last_info["neighbour_correction"]["reason"] == \
        "MIST's estimate is above 0.5 nats, with fewer than 20 rows per column"


def test_few_rows_per_column_take_the_shuffled_neighbour(plain, controlled):
    """Below 20 rows per column the neighbour is the sample with its Y rows shuffled
    against its X rows: the same marginal samples, MI exactly 0."""
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((150, 4)), rng.standard_normal((150, 4))
    hood = nc.neighbour(x, y)
    assert isinstance(hood, nc.ShuffledNeighbour) and hood.mi == 0.0
    draws = hood.draws(len(x), controlled.seed)
    assert len(draws) == nc.SHUFFLED_DRAWS
    for dx, dy in draws:
        assert np.array_equal(np.sort(dx, axis=0), np.sort(x, axis=0))
        assert np.array_equal(np.sort(dy, axis=0), np.sort(y, axis=0))
        assert {tuple(r) for r in dy} == {tuple(r) for r in y}       # whole rows moved
    assert not np.array_equal(draws[0][1], draws[1][1])
    raw, on_draws = plain.estimate(x, y), float(np.mean(plain.estimate_batch(draws)))
    weight = float(hood.weight(raw))
    assert weight > 0
    value = controlled.estimate(x, y)
    assert value == pytest.approx(raw - weight * on_draws, abs=1e-9)
    info = controlled.last_info["neighbour_correction"]
    assert info["reason"] == "applied" and info["neighbour"] == "shuffled"
    assert info["draws"] == nc.SHUFFLED_DRAWS and info["neighbour_mi"] == 0.0
    order = rng.permutation(150)                                  # row order: same draws
    assert controlled.estimate(x[order], y[order]) == pytest.approx(value, abs=1e-6)
    assert controlled.estimate(np.exp(x), y ** 3) == pytest.approx(value, abs=1e-6)


def test_a_batch_mixing_corrected_and_plain_samples_matches_single_calls(plain, controlled):
    rng = np.random.default_rng(19)
    samples = [(rng.standard_normal((150, 4)), rng.standard_normal((150, 4))),
               _gaussian_pair(1200, 0.3, 20)[:2], _gaussian_pair(2000, 0.95, 21, dim=2)[:2],
               _gaussian_pair(900, 0.2, 22, dim=2)[:2]]
    batch = controlled.estimate_batch(samples)
    single = [controlled.estimate(x, y) for x, y in samples]
    np.testing.assert_allclose(batch, single, atol=1e-5)
    raw = plain.estimate_batch(samples)
    assert batch[2] == raw[2]
    for i in (0, 1, 3):
        assert batch[i] != pytest.approx(raw[i], abs=1e-6)


def test_row_order_and_monotone_maps_leave_it_unchanged(controlled):
    x, y, _ = _gaussian_pair(800, 0.3, 9)
    value = controlled.estimate(x, y)
    order = np.random.default_rng(0).permutation(len(x))
    assert controlled.estimate(x[order], y[order]) == pytest.approx(value, abs=1e-5)
    assert controlled.estimate(np.arcsinh(3 * x), np.exp(y)) == pytest.approx(value, abs=1e-5)


def test_refused_for_quantile_and_conditional_checkpoints():
    with pytest.raises(ValueError, match="neighbour_correction.*'mist_qr'"):
        MIST.load(variant="mist_qr", device="cpu", neighbour_correction=True)
    with pytest.raises(ValueError, match="neighbour_correction.*'mist_cmi'"):
        MIST.load(variant="mist_cmi", device="cpu", neighbour_correction=True)
    with pytest.raises(ValueError, match="neighbour_correction must be True or False"):
        MIST.load(device="cpu", neighbour_correction="yes")


# -- the Student-t neighbour ---------------------------------------------------------------

def _pseudo(x, y):
    from mistmodel.copula import average_ranks
    both = np.hstack([x, y])
    return (average_ranks(both) - 0.5) / len(both)


@pytest.mark.parametrize("spec, params, shared", [
    ("student-identity", {"nu": 3.0}, True),   # one chi-square scale per row: dependent via it
    ("student-dense", {"nu": 3.0, "off_diag": 0.3}, True),
    # heavy tails in X and in Y, but each side with its own scale
    ("independent-student", {"nu_x": 3.0, "within_x": 0.5, "nu_y": 3.0, "within_y": 0.5}, False),
    ("normal-dense", None, False),
    ("independent-normal", None, False),
])
def test_shared_tails_are_found_only_where_they_are(spec, params, shared):
    s = mistgen.sample(spec, 2000, 3, 3, 11, params=params)
    nu = nc.shared_tail_nu(_pseudo(s.x, s.y), 3)
    assert np.isfinite(nu) == shared, nu
    if shared:
        assert 2.0 <= nu <= 6.0


@pytest.mark.parametrize("nu", [1.0, 2.0, 3.0])
def test_heavy_shared_tails_get_their_degrees_of_freedom(nu):
    """A t copula's degrees of freedom are found on the grid, also at nu = 1, where each
    nu's own t-scores correlate far below the dispersion (a few extreme rows rule them),
    and on the fitted subset of a larger sample."""
    s = mistgen.sample("student-identity", 20_000, 2, 2, 21, params={"nu": nu})
    u = _pseudo(s.x, s.y)
    rows = nc._fit_rows(nc.canonical_order(u))
    assert nc.shared_tail_nu(u[rows], 2) == nu


def test_copula_loglik_of_one_column_and_of_gaussian_data():
    x, y, _ = _gaussian_pair(3000, 0.6, 1)
    u = _pseudo(x, y)
    assert nc.copula_loglik(u[:, :1], 3.0) == 0.0
    assert nc.copula_loglik(u, np.inf) > nc.copula_loglik(u, 3.0) > nc.copula_loglik(u, 1.0)
    assert nc.copula_loglik(u, np.inf) > 100          # rho = 0.6 over 3,000 rows


def test_student_neighbour_has_the_familys_mi():
    s = mistgen.sample("student-dense", 20_000, 2, 2, 12,
                       params={"nu": 4.0, "off_diag": 0.3})
    hood = nc.neighbour(s.x, s.y)
    assert np.isfinite(hood.nu)
    assert hood.mi == pytest.approx(s.mi, abs=0.04)


def test_student_draw_shares_one_scale_per_row():
    hood = nc.Neighbour(np.eye(4), 2, 3.0, 0.0)
    x, y = hood.draw(20_000, 0)
    assert abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1]) < 0.05
    assert np.corrcoef(np.log(x[:, 0] ** 2), np.log(y[:, 0] ** 2))[0, 1] > 0.1


def test_neighbour_does_not_depend_on_row_order():
    """Also with ties in the first column (the rows the tails are fitted on)."""
    s = mistgen.sample("student-dense", 5000, 2, 3, 13, params={"nu": 3.0, "off_diag": 0.3})
    x = s.x.copy()
    x[:, 0] = np.round(x[:, 0], 1)
    order = np.random.default_rng(1).permutation(5000)
    a, b = nc.neighbour(x, s.y), nc.neighbour(x[order], s.y[order])
    assert a.nu == b.nu and np.isfinite(a.nu)
    np.testing.assert_allclose(a.corr, b.corr, atol=1e-12)
    assert a.mi == pytest.approx(b.mi, abs=1e-12)


@pytest.mark.parametrize("where", ["x", "across"])
def test_a_column_repeating_another_leaves_the_estimate_alone(plain, controlled, where):
    """A column repeating another (here exp of it: the same ranks) makes the normal-score
    correlation singular; no copula of the neighbour's form fits, and the estimate is
    MIST's own even where MIST's estimate is small."""
    rng = np.random.default_rng(14)
    a = rng.standard_normal((2000, 1))
    y = 0.5 * a + rng.standard_normal((2000, 1))
    x = np.hstack([a, np.exp(a)])
    if where == "across":
        x, y = np.hstack([a, y]), np.hstack([np.exp(a), rng.standard_normal((2000, 1))])
    value = controlled.estimate(x, y)
    assert value == pytest.approx(plain.estimate(x, y), abs=1e-12)
    info = controlled.last_info["neighbour_correction"]
    assert nc.neighbour(x, y) is None
    if where == "x":
        assert info["reason"].startswith("singular correlation"), info
        assert value < 1.0                 # the weight would be 1 with a wrong neighbour
        corr = np.corrcoef(np.hstack([a, a, y]), rowvar=False)
        assert np.isnan(nc.gaussian_mi(corr, 2))
    assert nc.copula_loglik(_pseudo(x, y), np.inf) == -np.inf


def test_gaussian_mi_of_a_singular_matrix_is_not_a_number_to_use():
    corr = np.array([[1.0, 1.0, 0.3], [1.0, 1.0, 0.3], [0.3, 0.3, 1.0]])
    assert np.isnan(nc.gaussian_mi(corr, 2))           # a side's block is singular
    both = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert nc.gaussian_mi(both, 1) == np.inf          # Y = X: infinite MI


@pytest.mark.filterwarnings("ignore::mistmodel.mist.TiedDataWarning")
def test_tied_columns_are_not_corrected(plain, controlled):
    """A binary symmetric channel: MIST is biased, and a continuous neighbour cannot tell
    by how much, so the estimate stays MIST's own."""
    rng = np.random.default_rng(15)
    x = rng.integers(0, 2, (1000, 1)) * 1.0
    y = np.where(rng.random((1000, 1)) < 0.1, 1 - x, x)
    assert controlled.estimate(x, y) == pytest.approx(plain.estimate(x, y), abs=1e-12)
    assert controlled.last_info["neighbour_correction"]["weight"] == 0.0


def test_ties_are_checked_once_per_sample(controlled, monkeypatch):
    """The tie check that warns also decides where the correction applies: it runs once
    per side, not again for the correction."""
    import mistmodel.mist as mist_module

    calls = []
    real = mist_module.tied_columns
    monkeypatch.setattr(mist_module, "tied_columns", lambda a: calls.append(a.shape) or real(a))
    rng = np.random.default_rng(16)
    samples = [_gaussian_pair(600, 0.3, seed, dim=2)[:2] for seed in range(3)]
    controlled.estimate(*samples[0])
    assert len(calls) == 2
    calls.clear()
    controlled.estimate_batch(samples)
    assert len(calls) == 6
    tied = (rng.integers(0, 2, (600, 1)) * 1.0, rng.standard_normal((600, 1)))
    calls.clear()
    with pytest.warns(mist_module.TiedDataWarning):
        values = controlled.estimate_batch(samples + [tied])
    assert len(calls) == 7                            # the tied x stops its sample's check
    assert np.isfinite(values).all()


def test_draws_of_a_large_sample_are_read_in_at_most_eight_row_groups(monkeypatch):
    """The network's bias is that of one row group: a draw is read in at most
    DRAW_GROUPS groups of the sample's group size, not in all of the sample's."""
    for max_rows, n in [(100, 100), (100, 800), (100, 801), (100, 1000), (100, 12_345),
                        (20, 161), (20, 1000), (56, 505), (3000, 100_000)]:
        est = MIST.load(device="cpu", neighbour_correction=True, max_rows=max_rows)
        rows, groups = est._draw_rows(n), est.row_groups(n)
        if groups <= nc.DRAW_GROUPS:
            assert rows == n
            continue
        sample_sizes = {len(g) for g in np.array_split(np.arange(n), groups)}
        draw_sizes = {len(g) for g in np.array_split(np.arange(rows), est.row_groups(rows))}
        assert est.row_groups(rows) == nc.DRAW_GROUPS, (max_rows, n)
        assert draw_sizes == {max(sample_sizes)}, (max_rows, n)
    est = MIST.load(device="cpu", neighbour_correction=True, max_rows=100)
    asked = []
    real = nc.Neighbour.draws
    monkeypatch.setattr(nc.Neighbour, "draws",
                        lambda self, n, seed: asked.append(n) or real(self, n, seed))
    x, y, _ = _gaussian_pair(2000, 0.3, 23)
    value = est.estimate(x, y)
    assert asked == [800] and est.last_info["neighbour_correction"]["reason"] == "applied"
    assert np.isfinite(value)
