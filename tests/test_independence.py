"""Permutation tests of independence: exact level, power, argument checks, determinism."""
import numpy as np
import pytest
from scipy import stats

from mistmodel.estimators import CCA, KSG
from mistmodel.independence import (
    TIE_TOLERANCE,
    _permutations,
    conditional_independence_test,
    distance_correlation,
    distance_correlation_test,
    independence_test,
    tie_tolerance,
)


class BatchedCCA:
    """CCA with an ``estimate_batch`` that records how it was called."""

    name = "batched-cca"

    def __init__(self):
        self.inner = CCA()
        self.batch_sizes = []

    def estimate(self, x, y):
        raise AssertionError("the batched path must not call estimate")

    def estimate_batch(self, pairs):
        self.batch_sizes.append(len(pairs))
        return np.array([self.inner.estimate(x, y) for x, y in pairs])


def null_pvalues(test, count, n, perms, seed=0):
    rng = np.random.default_rng(seed)
    return np.array([test(rng.standard_normal((n, 2)), rng.standard_normal((n, 3)), perms, i)
                     for i in range(count)])


def test_pvalues_are_uniform_under_the_null():
    # With m permutations the p-value is uniform on {1/(m+1), ..., 1} under independence.
    perms, count = 19, 400
    p = null_pvalues(lambda x, y, m, s: independence_test(CCA(), x, y, m, seed=s).p_value,
                     count, 40, perms)
    observed = np.bincount(np.rint(p * (perms + 1)).astype(int) - 1, minlength=perms + 1)
    assert observed.sum() == count
    assert stats.chisquare(observed).pvalue > 1e-3
    assert 0.02 <= np.mean(p <= 0.05) <= 0.09


def test_distance_correlation_pvalues_are_uniform_under_the_null():
    perms, count = 19, 300
    p = null_pvalues(lambda x, y, m, s: distance_correlation_test(x, y, m, seed=s).p_value,
                     count, 30, perms, seed=1)
    observed = np.bincount(np.rint(p * (perms + 1)).astype(int) - 1, minlength=perms + 1)
    assert stats.chisquare(observed).pvalue > 1e-3


def test_power_on_a_dependent_sample():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((150, 2))
    y = x[:, :1] ** 2 + 0.3 * rng.standard_normal((150, 1))  # dependent, uncorrelated
    for result in (independence_test(KSG(k=5), x, y, 99), distance_correlation_test(x, y, 99)):
        assert result.p_value == pytest.approx(1 / 100)
        assert result.n_permutations == 99 and result.null.shape == (99,)
    assert independence_test(KSG(k=5), x, y, 99).estimator == "KSG"


def test_p_value_counts_ties_against_the_statistic():
    class Constant:
        name = "constant"

        def estimate(self, x, y):
            return 0.25

    rng = np.random.default_rng(0)
    result = independence_test(Constant(), rng.random((20, 1)), rng.random((20, 1)), 9)
    assert result.p_value == 1.0 and result.statistic == 0.25


class Scripted:
    """An estimator whose first call (the statistic) returns ``first`` and whose k-th
    permuted copy returns ``copy(k)``."""

    name = "scripted"

    def __init__(self, first, copy):
        self.first, self.copy, self.calls = first, copy, 0

    def estimate(self, x, y):
        self.calls += 1
        return self.first if self.calls == 1 else self.copy(self.calls - 1)


def test_the_tie_tolerance_is_the_estimators_own():
    # A float64 statistic whose null spreads over 1e-6 nats (CCA at n = 200,000): copies
    # 5e-7 below it are below it. MIST's float32 network sets 1e-6, and they tie.
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 1)), rng.random((20, 1))
    assert independence_test(Scripted(2e-6, lambda k: 1.5e-6), x, y, 9).p_value == \
        pytest.approx(0.1)
    loose = Scripted(2e-6, lambda k: 1.5e-6)
    loose.tie_tolerance = 1e-6
    assert independence_test(loose, x, y, 9).p_value == 1.0
    from mistmodel import MIST
    assert tie_tolerance(MIST) == 1e-6 and tie_tolerance(CCA()) == TIE_TOLERANCE == 1e-12


def test_nan_copies_count_against_the_statistic_with_a_warning():
    nan_on_even = Scripted(1.0, lambda k: float("nan") if k % 2 == 0 else 0.0)
    rng = np.random.default_rng(0)
    with pytest.warns(RuntimeWarning, match="4 of 9 permuted copies of the sample gave NaN"):
        res = independence_test(nan_on_even, rng.random((20, 1)), rng.random((20, 1)), 9)
    assert res.p_value == pytest.approx(5 / 10)


def test_permutations_are_the_same_on_every_pass_and_large_ones_are_not_kept(monkeypatch):
    import mistmodel.independence as independence

    for kept in (True, False):
        monkeypatch.setattr(independence, "KEPT_PERMUTATION_BYTES", 10**9 if kept else 100)
        perms = _permutations(50, 7, seed=3)
        first, second = list(perms), list(perms)
        assert len(perms) == 7 and len(first) == 7
        assert all(np.array_equal(a, b) for a, b in zip(first, second))
        assert (perms._kept is not None) == kept       # large: made again, never all held
        rng = np.random.default_rng(3)
        assert all(np.array_equal(a, rng.permutation(50)) for a in first)


def test_batched_path_matches_the_plain_one_and_is_used():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((60, 3)), rng.standard_normal((60, 2))
    batched = BatchedCCA()
    fast = independence_test(batched, x, y, 49, seed=7)
    plain = independence_test(CCA(), x, y, 49, seed=7, batch=False)
    assert batched.batch_sizes == [1, 49]          # the statistic, then the copies
    np.testing.assert_allclose(fast.null, plain.null, rtol=1e-12)
    assert fast.p_value == plain.p_value and fast.estimator == "batched-cca"


def test_same_seed_same_result_other_seed_other_permutations():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((80, 1)), rng.standard_normal((80, 1))
    a = independence_test(KSG(k=3), x, y, 29, seed=4)
    b = independence_test(KSG(k=3), x, y, 29, seed=4)
    c = independence_test(KSG(k=3), x, y, 29, seed=5)
    np.testing.assert_array_equal(a.null, b.null)
    assert a.p_value == b.p_value
    assert not np.array_equal(a.null, c.null)
    d1 = distance_correlation_test(x, y, 29, seed=4)
    np.testing.assert_array_equal(d1.null, distance_correlation_test(x, y, 29, seed=4).null)


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "199", None])
def test_bad_permutation_count_is_refused(bad):
    rng = np.random.default_rng(0)
    x = rng.random((10, 1))
    with pytest.raises(ValueError, match="n_permutations must be an integer >= 1"):
        independence_test(CCA(), x, x, bad)
    with pytest.raises(ValueError, match="n_permutations must be an integer >= 1"):
        distance_correlation_test(x, x, bad)


@pytest.mark.parametrize("bad", [-1, 2.0, False])
def test_bad_seed_is_refused(bad):
    x = np.random.default_rng(0).random((10, 1))
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        independence_test(CCA(), x, x, 9, seed=bad)


def test_bad_estimator_and_bad_data_are_refused():
    x = np.random.default_rng(0).random((10, 2))
    with pytest.raises(TypeError, match="estimate\\(x, y\\) method; got str"):
        independence_test("ksg", x, x)
    with pytest.raises(ValueError, match="same number of rows"):
        independence_test(CCA(), x, x[:9])
    with pytest.raises(ValueError, match="1-D"):
        independence_test(CCA(), x[:, 0], x)
    with pytest.raises(ValueError, match="NaN"):
        distance_correlation_test(np.where(x > 0.9, np.nan, x), x)


def test_a_nan_statistic_is_an_error_and_an_infinite_one_is_tested():
    class Broken:
        name = "broken"

        def estimate(self, x, y):
            return float("nan")

    x = np.random.default_rng(0).random((10, 1))
    with pytest.raises(ValueError, match="broken returned nan as its statistic"):
        independence_test(Broken(), x, x, 5)
    # infinite on the sample (X = Y), finite on every permuted copy: the smallest p-value

    class Sharp:
        name = "sharp"

        def estimate(self, x, y):
            return np.inf if np.array_equal(x, y) else 0.0

    res = independence_test(Sharp(), x, x, 19)
    assert res.statistic == np.inf and res.p_value == pytest.approx(0.05)


def test_copies_that_equal_the_sample_tie_with_it():
    # X a function of Z: every local permutation gives x back, and MIST's batched copies
    # read it a hair below the lone statistic in float32; they must count as ties (p = 1)
    from mistmodel import MIST
    cmi = MIST.load(variant="mist_cmi")
    for seed in (2, 3):
        rng = np.random.default_rng(seed)
        g = rng.integers(0, 10, size=300)
        x, z = np.c_[np.sin(g) + g ** 2 / 10], np.c_[g.astype(float)]
        y = np.c_[g + rng.normal(size=300)]
        res = conditional_independence_test(cmi, x, y, z, n_permutations=99, seed=seed)
        assert res.p_value == 1.0, (seed, res.statistic, res.null[:3])


def test_distance_correlation_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2))
    # a similarity transform of x has distance correlation 1
    rot = np.array([[0.6, -0.8], [0.8, 0.6]])
    assert distance_correlation(x, 3.0 * x @ rot + 1.0) == pytest.approx(1.0, abs=1e-12)
    assert distance_correlation(x, rng.standard_normal((200, 1))) < 0.05
    # against the definition, term by term, on a small sample
    a_ = rng.standard_normal((7, 2))
    b_ = rng.standard_normal((7, 1)) + a_[:, :1]

    def centred(v):
        d = np.array([[np.linalg.norm(p - q) for q in v] for p in v])
        return np.array([[d[j, k] - d[j].mean() - d[:, k].mean() + d.mean()
                          for k in range(7)] for j in range(7)])

    a, b = centred(a_), centred(b_)
    expected = (a * b).mean() / np.sqrt((a * a).mean() * (b * b).mean())
    assert distance_correlation(a_, b_) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("make", [CCA, lambda: KSG(k=3)])
def test_estimator_method_is_the_permutation_test(make):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((60, 2))
    y = x[:, :1] + 0.3 * rng.standard_normal((60, 1))
    via_method = make().test_independence(x, y, n_permutations=19, seed=3)
    direct = independence_test(make(), x, y, 19, seed=3)
    assert via_method.p_value == direct.p_value == pytest.approx(1 / 20)
    np.testing.assert_array_equal(via_method.null, direct.null)


# -- conditional independence (local permutations) ------------------------------------------

def test_local_permutations_stay_in_z_neighbourhoods_and_mostly_permute():
    from scipy.spatial import cKDTree

    from mistmodel.independence import local_permutations

    rng = np.random.default_rng(0)
    z = rng.standard_normal((200, 2)) * [1.0, 1000.0]          # scales differ by 1,000
    perms = local_permutations(z, 5, neighbours=4, seed=1)
    zs = (z - z.mean(0)) / z.std(0)
    _, nbrs = cKDTree(zs).query(zs, k=4, p=np.inf)
    for perm in perms:
        assert all(perm[i] in nbrs[i] for i in range(200))
        assert len(set(perm.tolist())) > 150                    # drawn without repeats mostly
        assert (perm != np.arange(200)).mean() > 0.5
    assert [p.tolist() for p in perms] == [
        p.tolist() for p in local_permutations(z, 5, neighbours=4, seed=1)]
    # a discrete z: rows are only exchanged within their own value
    zd = np.repeat([[0.0], [1.0], [2.0]], 30, axis=0)
    for perm in local_permutations(zd, 3, neighbours=10, seed=2):
        assert np.array_equal(zd[perm], zd)


def test_conditional_test_level_and_power_with_cca():
    from mistgen.conditional import conditional_sample
    from mistmodel.independence import conditional_independence_test

    # X <- Z -> Y with Gaussian noise: X and Y are independent given Z (but not marginally)
    p_null = np.array([conditional_independence_test(
        CCA(), *(lambda s: (s.x, s.y, s.z))(conditional_sample("normal-chain", 120, 1, 1, 1,
                                                                [5, r])), 19, seed=r).p_value
        for r in range(300)])
    assert 0.02 <= np.mean(p_null <= 0.05) <= 0.09
    # a marginal test rejects there; the conditional one does not, colliders the reverse
    p_alt = [conditional_independence_test(CCA(), s.x, s.y, s.z, 19, seed=r).p_value
             for r, s in enumerate(conditional_sample("normal-collider", 300, 1, 1, 1, [6, r])
                                   for r in range(20))
             if s.cmi > 0.1]
    assert len(p_alt) >= 5 and np.mean(np.array(p_alt) <= 0.05) >= 0.9


def test_conditional_test_batched_path_matches_the_plain_one(monkeypatch):
    from mistmodel.independence import conditional_independence_test

    class BatchedConditionalCCA:
        name = "batched"

        def __init__(self):
            self.inner, self.calls = CCA(), 0

        def estimate_conditional(self, x, y, z):
            raise AssertionError("the batched path must not call estimate_conditional")

        def estimate_conditional_batch(self, triples):
            self.calls += 1
            return [self.inner.estimate_conditional(*t) for t in triples]

    rng = np.random.default_rng(4)
    z = rng.standard_normal((80, 2))
    x, y = z[:, :1] + rng.standard_normal((80, 1)), z[:, 1:] + rng.standard_normal((80, 1))
    batched = BatchedConditionalCCA()
    # copies in chunks of 7 (80 rows x 4 columns each): the observed sample, then 5 calls
    monkeypatch.setattr("mistmodel.independence.BATCH_CELLS", 80 * 4 * 7)
    a = conditional_independence_test(batched, x, y, z, 30, seed=3)
    b = conditional_independence_test(CCA(), x, y, z, 30, seed=3)
    assert batched.calls == 1 + 5 and a.p_value == b.p_value
    np.testing.assert_allclose(a.null, b.null)
    c = CCA().test_conditional_independence(x, y, z, 30, seed=3)
    assert c.p_value == b.p_value


def test_conditional_test_refuses_what_it_cannot_test():
    from mistmodel.estimators import MINE
    from mistmodel.independence import conditional_independence_test

    rng = np.random.default_rng(5)
    x, y, z = (rng.standard_normal((50, 1)) for _ in range(3))
    with pytest.raises(TypeError, match="does not estimate I\\(X;Y\\|Z\\)"):
        conditional_independence_test(MINE(), x, y, z, 5)
    with pytest.raises(ValueError, match="z is entirely constant"):
        conditional_independence_test(CCA(), x, y, np.ones((50, 2)), 5)
    for bad in (0, 1, 51, 2.5, True):
        with pytest.raises(ValueError, match="neighbours must be an integer"):
            conditional_independence_test(CCA(), x, y, z, 5, neighbours=bad)
    with pytest.raises(ValueError, match="n_permutations"):
        conditional_independence_test(CCA(), x, y, z, 0)
    with pytest.raises(ValueError, match="rows"):
        conditional_independence_test(CCA(), x, y, z[:40], 5)


def test_mist_conditional_test_raises_no_warning_about_the_copies():
    import warnings

    from mistmodel import MIST

    rng = np.random.default_rng(6)
    z = rng.standard_normal((150, 1))
    x, y = z + rng.standard_normal((150, 1)), z + rng.standard_normal((150, 1))
    mist = MIST.load(variant="mist_cmi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # continuous data: nothing to warn
        result = mist.test_conditional_independence(x, y, z, 19, seed=0)
    assert 0 < result.p_value <= 1 and result.null.size == 19
    x_tied = np.round(x)                               # the user's own ties still warn
    with pytest.warns(UserWarning, match="repeats values"):
        mist.test_conditional_independence(x_tied, y, z, 5, seed=0)


class RecordingKSG(KSG):
    """KSG(discrete="auto") recording which estimator each estimate used."""

    def __init__(self):
        super().__init__(discrete="auto")
        self.used = []

    def estimate_conditional(self, x, y, z):
        value = super().estimate_conditional(x, y, z)
        self.used.append(self.last_info["estimator_used"])
        return value


def test_conditional_copies_take_the_samples_discrete_columns():
    # x has 20 distinct values at n = 400: continuous for discrete="auto" (fewer than 20
    # makes a column discrete), but a local permutation repeats a few rows, and some
    # copies keep only 19 values
    rng = np.random.default_rng(0)
    z = rng.standard_normal((400, 1))
    x = np.round(rng.standard_normal((400, 1)) * 3.38) / 3.38
    assert np.unique(x).size == 20
    y = z + rng.standard_normal((400, 1))
    from mistmodel.independence import local_permutations
    assert min(np.unique(x[p]).size for p in local_permutations(z, 100, 5, 1)) < 20
    ksg = RecordingKSG()
    conditional_independence_test(ksg, x, y, z, 100, seed=1)
    assert set(ksg.used) == {"Frenzel-Pompe"} and len(ksg.used) == 101
    # outside the test each copy decides for itself
    ksg.used.clear()
    for p in local_permutations(z, 100, 5, 1):
        ksg.estimate_conditional(x[p], y, z)
    assert "mixed-KSG (conditional)" in ksg.used
    # the sample's flags also hold where a copy drops a constant column
    with ksg.discreteness_of(x=np.hstack([np.ones((400, 1)), x]), y=y, z=z):
        ksg.estimate_conditional(np.hstack([np.ones((400, 1)), x[:200].repeat(2, 0)]), y, z)
    assert ksg.used[-1] == "Frenzel-Pompe" and np.unique(x[:200]).size < 20


def test_copies_that_lose_the_dependence_on_z_are_warned_of():
    import warnings

    from mistmodel.caller_warnings import PermutationLevelWarning
    from mistmodel.independence import conditional_independence_test

    def chain(dz, seed=0, n=200, y_on_z=True):
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, dz))
        signal = 3 * z.sum(axis=1, keepdims=True) / np.sqrt(dz)
        y = (signal if y_on_z else 0) + rng.standard_normal((n, 1))
        return signal + rng.standard_normal((n, 1)), y, z

    # three Z columns: five neighbours span much of Z, and the level runs above alpha
    with pytest.warns(PermutationLevelWarning, match="keep 0.\\d\\d of the 1.\\d\\d nats") as w:
        conditional_independence_test(CCA(), *chain(3), 19, seed=0)
    assert w[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", PermutationLevelWarning)
        conditional_independence_test(CCA(), *chain(1), 19, seed=0)
        # only X depends on Z: the copies' loss does not move the level
        conditional_independence_test(CCA(), *chain(3, y_on_z=False), 19, seed=0)
