"""MIST warns where a side's columns are more correlated than in its dependent training
samples, where it reads far less than the MI."""
import warnings

import numpy as np
import pytest

import mistgen
from mistmodel import MIST
from mistmodel.caller_warnings import OutOfRangeWarning
from mistmodel.correlated_sides import CORRELATION_WARN, correlated_side, mean_correlation


@pytest.fixture(scope="module")
def mist():
    return MIST.load(cross_check=False)


def equicorrelated(d: int, r: float, n: int = 1000, seed: int = 0):
    s = mistgen.sample("normal-dense", n, d, d, seed, params={"off_diag": r})
    return s.x, s.y, s.mi


def test_mean_correlation_reads_the_correlation_of_the_columns():
    for r in (0.0, 0.3, 0.7):
        x, _, _ = equicorrelated(8, r)
        assert mean_correlation(x) == pytest.approx(r, abs=0.05)
    x, y, _ = equicorrelated(8, 0.7)
    assert mean_correlation(np.exp(x)) == pytest.approx(mean_correlation(x))   # ranks only
    assert correlated_side((x[:, :2], y)) == ("y", 8, pytest.approx(mean_correlation(y)))
    assert correlated_side((x[:, :2], y[:, :2])) is None             # too few columns
    assert correlated_side((x[:, :3], y[:, :3]))[:2] == ("x", 3)     # 3 + 3 read far off
    assert correlated_side((x[:, :3], y[:, :3]), min_columns=4) is None   # mist_cmi's
    assert correlated_side(equicorrelated(8, 0.3)[:2]) is None


def test_a_column_constant_on_the_rows_read_leaves_the_others_to_decide(mist):
    # 8 columns correlated 0.9, n = 5,000; column 7 zero on the 2,000 rows the statistic
    # reads (not on the others): its NaN correlations are left out, the side still warns
    from mistmodel.correlated_sides import ROWS
    from mistmodel.cross_check import subsample_rows

    x, y, _ = equicorrelated(8, 0.9, n=5000)
    x[subsample_rows(5000, ROWS), 7] = 0.0
    assert mean_correlation(x) > 0.8
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mist.estimate(x, y)
    kinds = {w.category for w in caught}
    assert OutOfRangeWarning in kinds and RuntimeWarning not in kinds, \
        [str(w.message)[:60] for w in caught]


def test_mist_warns_where_it_reads_strongly_correlated_sides_low(mist):
    """8 + 8 columns all correlated 0.7 (MI 1.16 nats) read about 0.1."""
    x, y, truth = equicorrelated(8, 0.7, n=2000)
    assert mean_correlation(x) >= CORRELATION_WARN
    with pytest.warns(OutOfRangeWarning, match=r"X's 8 columns are strongly correlated .*"
                                               r"mean absolute correlation .* 0\.[67]\d"):
        value = mist.estimate(x, y)
    assert value < truth - 0.5
    calm = equicorrelated(8, 0.3, n=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfRangeWarning)
        assert abs(mist.estimate(*calm[:2]) - calm[2]) < 0.15
        mist.estimate(*equicorrelated(2, 0.9)[:2])                  # 2 + 2: left alone
    with pytest.warns(OutOfRangeWarning, match="sample 1: X's 8 columns") as caught:
        mist.estimate_batch([calm[:2], (x, y), (x, y)])
    assert sum("strongly correlated" in str(w.message) for w in caught) == 1


def test_permuted_copies_do_not_repeat_the_warning(mist):
    """A permutation test warns once, about the data: its permuted copies, of the same
    shape and sides, are silent (and skip the check)."""
    from mistmodel.independence import independence_test

    x, y, _ = equicorrelated(8, 0.7, n=300)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        independence_test(mist, x, y, n_permutations=19)
    assert sum("strongly correlated" in str(w.message) for w in caught) == 1


def test_a_bootstrap_interval_warns_once(mist):
    """The sample's own estimate warns; its bootstrap replicates (about themselves) do
    not repeat it."""
    x, y, _ = equicorrelated(8, 0.7, n=300)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mist.interval(x, y, n_boot=5)
    assert sum("strongly correlated" in str(w.message) for w in caught) == 1


def test_the_conditional_network_warns_where_it_reads_strongly_correlated_sides_high():
    """mist_cmi on 8 + 8 columns all correlated 0.7 and two Z columns independent of both
    (I(X;Y|Z) = I(X;Y) = 1.16 nats) reads far too high; its conditional test warns once."""
    from mistmodel.independence import conditional_independence_test

    cmi = MIST.load(variant="mist_cmi", cross_check=False)
    x, y, truth = equicorrelated(8, 0.7, n=1000)
    z = np.random.default_rng(1).standard_normal((1000, 2))
    with pytest.warns(OutOfRangeWarning, match=r"X's 8 columns are strongly correlated .*"
                                               r"conditional network"):
        value = cmi.estimate_conditional(x, y, z)
    assert value > truth + 0.2
    calm = equicorrelated(8, 0.3, n=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfRangeWarning)
        cmi.estimate_conditional(*calm[:2], z)
        cmi.estimate_conditional_batch([(calm[0], calm[1], z)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conditional_independence_test(cmi, x[:300], y[:300], z[:300], n_permutations=9)
    assert sum("strongly correlated" in str(w.message) for w in caught) == 1
