"""Column orientation: negative dependence reads as its positive mirror image, and
independent samples (whatever the correlations within a side) are almost never flipped."""
import itertools

import numpy as np
import pytest

import mistgen
import mistgen.families.checks  # noqa: F401  (registers the independence families)
from mistmodel import MIST
from mistmodel.batching import collate
from mistmodel.copula import normal_scores
from mistmodel.orientation import best_signs, entry_z, orientation_signs


def gaussian_pair(n, rho, seed, dims=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dims))
    return x, rho * x + np.sqrt(1 - rho ** 2) * rng.standard_normal((n, dims))


def brute_force(c):
    dx, dy = c.shape
    return max(np.array(s) @ c @ np.array(t)
               for s in itertools.product((1, -1), repeat=dx)
               for t in itertools.product((1, -1), repeat=dy))


def test_best_signs_keep_a_positive_matrix_and_find_a_rank_one_optimum():
    rng = np.random.default_rng(0)
    positive = rng.uniform(0.1, 1, (4, 3))
    s, t, value = best_signs(positive)
    assert (s == 1).all() and (t == 1).all() and value == pytest.approx(positive.sum())
    u, v = rng.standard_normal(4), rng.standard_normal(3)
    s, t, value = best_signs(np.outer(u, v))
    assert value == pytest.approx(brute_force(np.outer(u, v)))
    # of the two mirror images, the one flipping fewer columns
    assert (s < 0).sum() + (t < 0).sum() <= 3


def test_best_signs_reach_the_brute_force_optimum_on_small_matrices():
    rng = np.random.default_rng(1)
    hits = sum(best_signs(c)[2] >= brute_force(c) - 1e-12
               for c in rng.standard_normal((40, 3, 3)))
    assert hits >= 36


def test_entry_z_is_standard_normal_where_columns_share_a_heavy_tailed_scale():
    """Under a multivariate t with identity dispersion the columns are uncorrelated but
    dependent: against 1 / sqrt(n) their correlations look significant far too often."""
    z, naive = [], []
    for seed in range(100):
        s = mistgen.sample("student-identity", 500, 2, 2, seed, params={"nu": 2.0})
        xs, ys = normal_scores(s.x), normal_scores(s.y)
        cross, zz = entry_z(xs, ys)
        z.append(zz.ravel())
        naive.append(cross.ravel() * np.sqrt(500))
    z, naive = np.concatenate(z), np.concatenate(naive)
    assert 0.8 < z.std() < 1.2
    assert naive.std() > 1.3 * z.std()


@pytest.mark.parametrize("spec,dims", [("independent-normal", 6), ("independent-student", 16),
                                       ("student-identity", 4)])
def test_independent_or_uncorrelated_samples_are_almost_never_flipped(spec, dims):
    """Sides correlated within (0.9) line their cross-correlations up, and a shared
    heavy-tailed scale spreads them: taken with spread 1 / sqrt(n), the entries of C flip
    19 of the 200 student-identity samples."""
    flipped = 0
    for seed in range(200):
        s = mistgen.sample(spec, 300, dims, dims, seed,
                           params={"independent-normal": {"within_x": 0.9, "within_y": 0.9},
                                   "student-identity": {"nu": 1.5}}.get(spec))
        flipped += orientation_signs(normal_scores(s.x), normal_scores(s.y)) is not None
    assert flipped <= 4


def test_signs_flip_only_the_negative_part():
    x, y = gaussian_pair(500, -0.3, 0)
    s, t = orientation_signs(x, y)
    assert s.tolist() == [1.0] and t.tolist() == [-1.0]      # Y turned, X kept
    assert orientation_signs(x, -y) is None
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((500, 3)), rng.standard_normal((500, 3))
    y[:, 0] -= x[:, 0]
    y[:, 2] += x[:, 1]
    s, t = orientation_signs(x, y)
    assert s.tolist() == [1, 1, 1] and t.tolist() == [-1, 1, 1]
    assert orientation_signs(x * [1, 1, 1], y * [-1, 1, 1]) is None


def test_too_few_rows_and_weak_negative_dependence_stay_as_given():
    x, y = gaussian_pair(3, -0.99, 0)
    assert orientation_signs(x, y) is None
    x, y = gaussian_pair(100, -0.05, 0)
    assert orientation_signs(x, y) is None


def test_below_twenty_rows_student_t_decides():
    """Below 20 rows the sandwich spread is too noisy to use; they were all read as given,
    and a strongly negative pair of 15 rows read a quarter of its mirror image."""
    turned = sum(orientation_signs(*gaussian_pair(15, -0.9, seed)) is not None
                 for seed in range(50))
    assert turned >= 45
    flipped = sum(orientation_signs(normal_scores(s.x), normal_scores(s.y)) is not None
                  for s in (mistgen.sample("independent-student", n, d, d, seed)
                            for n, d in ((8, 1), (12, 2), (19, 4)) for seed in range(200)))
    assert flipped <= 12


def test_collate_flips_pairs_only():
    x, y = gaussian_pair(300, -0.6, 2)
    z = np.random.default_rng(3).standard_normal((300, 1))
    plain = collate([(x, y)]).values
    oriented = collate([(x, y)], orient=True).values
    np.testing.assert_array_equal(oriented[0, :, 0], plain[0, :, 0])
    np.testing.assert_array_equal(oriented[0, :, 1], -plain[0, :, 1])
    np.testing.assert_array_equal(collate([(x, y, z)], orient=True).values,
                                  collate([(x, y, z)]).values)


@pytest.fixture(scope="module")
def mist():
    return MIST.load(cross_check=False)


def test_mist_reads_negative_dependence_as_its_mirror_image(mist):
    x, y = gaussian_pair(500, 0.6, 4)                          # MI 0.223
    assert mist.estimate(x, -y) == mist.estimate(x, y)
    assert mist.estimate(-x, y) == mist.estimate(-x, -y)       # Y is the side turned
    assert mist.estimate(x, -y) > 0.15
    plain = MIST.load(cross_check=False, orient=False)
    assert plain.estimate(x, -y) < 0.05                        # what orientation mends
    assert plain.estimate(x, y) == mist.estimate(x, y)
    assert mist.settings()["orient"] is True and plain.settings()["orient"] is False


def test_mist_qr_interval_of_a_negative_pair_holds_the_truth():
    qr = MIST.load(variant="mist_qr", cross_check=False)
    x, y = gaussian_pair(2000, -0.6, 5)
    lo, hi = qr.interval(x, y, level=0.9)
    assert lo <= -0.5 * np.log(1 - 0.36) <= hi


def test_orient_must_be_a_bool():
    with pytest.raises(ValueError, match="orient must be True or False"):
        MIST.load(orient="yes")


def test_neighbour_draws_are_turned_as_their_sample_is():
    """The draws from a sample's neighbour take the sample's signs and no orientation of
    their own: a weak negative dependence turned in a draw but not in its sample would
    make the correction measure the network on other data than it corrects."""
    corrected = MIST.load(neighbour_correction=True, cross_check=False)
    x, y = gaussian_pair(500, -0.6, 6)
    drawn = [(x[:50], y[:50]), (x[50:100], y[50:100])]
    turned = corrected._signed_as((x, y), drawn)
    for (dx, dy), (tx, ty) in zip(drawn, turned):
        np.testing.assert_array_equal(tx, dx)
        np.testing.assert_array_equal(ty, -dy)
    assert corrected._signed_as((x, -y), drawn) is drawn               # positive: as given
    plain = MIST.load(neighbour_correction=True, cross_check=False, orient=False)
    assert plain._signed_as((x, y), drawn) is drawn
    assert corrected.estimate(x, y) == pytest.approx(corrected.estimate(x, -y), abs=0.02)
