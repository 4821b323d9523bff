"""MIST's cross-check against KSG: it warns where KSG reads clearly more, as where the
dependence folds, and not where both see the dependence."""
import warnings

import numpy as np
import pandas as pd
import pytest

from mistmodel import MIST
from mistmodel import cross_check as cc
from mistmodel.caller_warnings import CrossCheckWarning, is_silenced, silenced
from mistmodel.independence import independence_test
from mistmodel.matrix import mi_matrix
from mistmodel.selection import mutual_info_scores


def folded(n=1000, rho=0.8, seed=0):
    """A bivariate Gaussian whose Y has its two halves of [-2, 2) swapped: an invertible
    map of Y, so the MI stays -log(1 - rho^2) / 2, but the dependence is not monotone."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1))
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((n, 1))
    inside = np.abs(y) < 2
    return x, np.where(inside, np.where(y < 0, y + 2, y - 2), y)


@pytest.fixture(scope="module")
def mist():
    return MIST.load()


def test_first_miss_finds_a_clear_gap_and_skips_what_it_cannot_judge():
    x, y = folded()
    found = cc.first_miss([(x, x + 0.1), (x, y)], [4.5, 0.0])
    assert found is not None and found[0] == 1 and found[1] > 0.3 and found[2] == cc.ROWS
    assert cc.first_miss([(x, y)], [found[1] - 0.05]) is None          # within the margin
    assert cc.first_miss([(x, y)], [found[1] / 1.5]) is None    # below 1 nat: not twice
    assert found[1] - found[1] / 1.5 > cc.MARGIN and cc.ratio(0.99) == 2.0
    # Y a copy of X: KSG reads 4.51 on 500 rows; more than 1.15 times 3.9 and 0.1 above it
    assert cc.first_miss([(x, x + 0.1)], [3.9]) is not None
    assert cc.first_miss([(x, x + 0.1)], [4.0]) is None                # within the ratio
    assert cc.first_miss([(x[:99], y[:99])], [0.0]) is None             # too few rows
    assert cc.margin(100) == pytest.approx(0.2) and cc.margin(500) == cc.MARGIN

    wide = np.hstack([x] * 5)
    assert cc.first_miss([(wide, np.hstack([y] * 4))], [0.0]) is None   # 9 columns
    assert cc.first_miss([(np.round(x), y)], [0.0]) is None             # tied column
    assert list(cc.subsample_rows(5, 3)) == [0, 2, 4]


def test_a_lower_estimate_never_needs_a_higher_reading_to_warn():
    values = np.linspace(0.0, 5.0, 5001)
    for rows in (100, 500):
        needed = np.array([cc.threshold(v, rows) for v in values])
        assert np.all(np.diff(needed) >= 0)
        # just below 1 nat it asks what 1 nat asks (1.15 nats), not twice 0.95
        assert cc.threshold(0.95, 500) == pytest.approx(cc.threshold(1.0, 500)) == 1.15
    assert cc.threshold(0.3, 500) == pytest.approx(0.6) and cc.threshold(2.0, 500) == 2.3

def test_mist_warns_on_folded_dependence_once_per_call(mist):
    x, y = folded()
    with pytest.warns(CrossCheckWarning, match=r"MIST reads 0\.0\d\d nats, but KSG") as caught:
        assert mist.estimate(x, y) < 0.05
    assert caught[0].filename == __file__
    with pytest.warns(CrossCheckWarning, match="sample 1: ") as caught:
        mist.estimate_batch([(x, x + np.random.default_rng(1).standard_normal(x.shape)),
                             (x, y), (x, y)])
    assert sum(w.category is CrossCheckWarning for w in caught) == 1


def test_mist_warns_where_strong_dependence_in_few_columns_reads_low(mist):
    """A bivariate Gaussian at rho 0.995 (2.30 nats) reads about 1.7
    (benchmarks/strong_gaussian.py); KSG on 500 rows reads about 2.3, more than 1.15 times
    as much, though not twice."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1000, 1))
    y = 0.995 * x + np.sqrt(1 - 0.995**2) * rng.standard_normal((1000, 1))
    with pytest.warns(CrossCheckWarning, match=r"MIST reads 1\.\d+ nats, but KSG .* reads "
                                                r"2\.\d+ .* stronger than MIST reads"):
        assert mist.estimate(x, y) < 2.0


def test_no_warning_where_mist_sees_the_dependence_or_when_off(mist):
    x, y = folded()
    rng = np.random.default_rng(2)
    monotone = x + 0.5 * rng.standard_normal(x.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CrossCheckWarning)
        mist.estimate(x, monotone)
        mist.estimate(x, rng.standard_normal(x.shape))
        MIST.load(cross_check=False).estimate(x, y)
    with pytest.raises(ValueError, match="cross_check must be True or False"):
        MIST.load(cross_check="yes")


def test_permutation_tests_and_matrices_check_the_data_not_its_copies(mist, monkeypatch):
    checked = []
    real = cc.misses
    monkeypatch.setattr(cc, "misses", lambda s, v, **kw: checked.append(len(s)) or real(s, v, **kw))
    x, y = folded(400)
    with pytest.warns(CrossCheckWarning, match="MIST reads"):
        independence_test(mist, x, y, n_permutations=19)
    assert checked == [1]
    checked.clear()
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"a": x[:, 0], "b": y[:, 0], "c": rng.standard_normal(400)})
    with pytest.warns(CrossCheckWarning, match=r"mi_matrix: mist reads less dependence "
                                                r"than KSG .* for variables 'a' and 'b' \(0\.0"):
        mi_matrix(table, estimator=mist, permutations=9)
    assert checked == [3]                               # the three observed pairs, once


def test_feature_scores_name_the_features_mist_cannot_see(mist):
    x, y = folded(600)
    rng = np.random.default_rng(4)
    features = pd.DataFrame({"fold": x[:, 0], "noise": rng.standard_normal(600),
                             "plain": y[:, 0] + rng.standard_normal(600)})
    with pytest.warns(CrossCheckWarning, match=r"mutual_info_scores: .* for feature 'fold' "
                                                r"\(0\.\d+ against 0\.\d+ nats\): ") as caught:
        mutual_info_scores(features, y[:, 0], estimator=mist)
    assert sum(w.category is CrossCheckWarning for w in caught) == 1
    assert "'plain'" not in str(caught[0].message) and "'noise'" not in str(caught[0].message)


def test_is_silenced_follows_silenced():
    assert not is_silenced(CrossCheckWarning)
    with silenced(CrossCheckWarning):
        assert is_silenced(CrossCheckWarning)
    assert not is_silenced(CrossCheckWarning)


def test_constant_columns_and_samples_ksg_refuses_do_not_stop_the_check(mist):
    x, y = folded()
    with pytest.warns(CrossCheckWarning):                  # a constant x column is left out
        mist.estimate(np.hstack([x, np.ones_like(x)]), y)
    wide = np.random.default_rng(5).standard_normal((200, 1))
    wide[0] = 1e300                                       # KSG refuses to standardise this
    with warnings.catch_warnings():
        warnings.simplefilter("error", CrossCheckWarning)
        assert np.isfinite(mist.estimate(wide, np.random.default_rng(6).standard_normal((200, 1))))


def test_the_conditional_network_is_cross_checked_too(monkeypatch):
    """X = Z + e, Y = (X + Z + e') / sqrt(3) with Y folded: I(X;Y|Z) = log(2) / 2."""
    cmi = MIST.load(variant="mist_cmi")
    rng = np.random.default_rng(7)
    z = rng.standard_normal((800, 1))
    x = z + rng.standard_normal((800, 1))
    y = (x + z + rng.standard_normal((800, 1))) / np.sqrt(3)
    y = np.where(np.abs(y) < 2, np.where(y < 0, y + 2, y - 2), y)
    with pytest.warns(CrossCheckWarning, match="MIST reads 0.0"):
        cmi.estimate_conditional(x, y, z)
    with pytest.warns(CrossCheckWarning, match="sample 1: "):
        cmi.estimate_conditional_batch([(x, x + z, z), (x, y, z)])
    checked = []
    real = cc.misses
    monkeypatch.setattr(cc, "misses", lambda s, v, **kw: checked.append(len(s)) or real(s, v, **kw))
    from mistmodel.independence import conditional_independence_test
    with pytest.warns(CrossCheckWarning):
        conditional_independence_test(cmi, x, y, z, n_permutations=9)
    assert checked == [1]                       # the statistic, not its permuted copies
