"""mutual_info_scores as a scikit-learn score function."""
from functools import partial

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from mistmodel.caller_warnings import CrossCheckWarning, TiedDataWarning
from mistmodel.estimators import KSG
from mistmodel.selection import mutual_info_scores


@pytest.fixture(scope="module")
def problem():
    """y depends on features 0 (nonlinearly) and 3; the other six are noise."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 8))
    y = np.sin(2 * X[:, 0]) + X[:, 3] + 0.3 * rng.standard_normal(400)
    return X, y


class Batched:
    name = "batched"

    def __init__(self):
        self.batches = []

    def estimate(self, x, y):
        raise AssertionError("estimate_batch should have been used")

    def estimate_batch(self, samples):
        samples = list(samples)
        self.batches.append(len(samples))
        return np.array([KSG().estimate(x, y) for x, y in samples])


def test_default_mist_scores_rank_relevant_features_first(problem):
    X, y = problem
    # y = sin(2 X_0) + X_3 + noise: MIST sees less of the sine than KSG, and says so
    with pytest.warns(CrossCheckWarning, match=r"for feature '0' \("):
        scores = mutual_info_scores(X, y)
    assert scores.shape == (8,)
    assert set(np.argsort(scores)[-2:]) == {0, 3}


@pytest.mark.filterwarnings("ignore::mistmodel.caller_warnings.CrossCheckWarning")
@pytest.mark.parametrize("score_func", [mutual_info_scores,
                                        partial(mutual_info_scores, estimator=KSG())])
def test_select_k_best_in_a_pipeline(problem, score_func):
    X, y = problem
    pipe = make_pipeline(SelectKBest(score_func=score_func, k=2), LinearRegression()).fit(X, y)
    assert sorted(np.flatnonzero(pipe[0].get_support())) == [0, 3]
    assert pipe.predict(X).shape == (400,)


def test_all_features_go_in_one_batch(problem):
    X, y = problem
    est = Batched()
    scores = mutual_info_scores(X, y, estimator=est)
    assert est.batches == [8]
    np.testing.assert_allclose(scores, [KSG().estimate(X[:, [j]], y[:, None]) for j in range(8)])


def test_constant_feature_scores_zero_and_dataframes_work(problem):
    X, y = problem
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(8)]).assign(flat=2.0)
    scores = mutual_info_scores(frame, y, estimator=KSG())
    assert scores.shape == (9,) and scores[-1] == 0.0


def test_bad_input_is_named(problem):
    X, y = problem
    holed = X.copy()
    holed[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"column '2' contains NaN \(first at row 5"):
        mutual_info_scores(holed, y, estimator=KSG())
    bad_y = y.copy()
    bad_y[9] = np.inf
    with pytest.raises(ValueError, match="y contains inf .first at row 9"):
        mutual_info_scores(X, bad_y, estimator=KSG())
    with pytest.raises(ValueError, match="X has 400 samples but y has 399"):
        mutual_info_scores(X, y[:-1], estimator=KSG())
    with pytest.raises(ValueError, match="discrete_target=True"):
        mutual_info_scores(X, np.array(["a", "b"] * 200), estimator=KSG())
    # numbers only: not their text, not dates, not complex values
    for bad in (y.astype(str), y + 1j, np.arange(400).astype("datetime64[D]"),
                np.array([str(v) for v in y], dtype=object)):
        with pytest.raises(ValueError, match=r"y is not numeric \(dtype"):
            mutual_info_scores(X, bad, estimator=KSG())
    as_objects = mutual_info_scores(X, np.array(y.tolist(), dtype=object), estimator=KSG())
    np.testing.assert_array_equal(as_objects, mutual_info_scores(X, y, estimator=KSG()))


def test_a_sparse_table_scores_as_its_dense_values(problem):
    from scipy import sparse
    X, y = problem
    np.testing.assert_array_equal(mutual_info_scores(sparse.csr_matrix(X), y, estimator=KSG()),
                                  mutual_info_scores(X, y, estimator=KSG()))


def test_discrete_target_dither_keeps_the_exact_mi():
    """Y in {0, 1} equiprobable, X | Y ~ N(2Y, 1): I(X;Y) = H(X) - H(X|Y) by quadrature."""
    def mixture(t):
        return 0.5 * (stats.norm.pdf(t) + stats.norm.pdf(t, loc=2.0))
    h_x = integrate.quad(lambda t: -mixture(t) * np.log(mixture(t)), -12, 14)[0]
    exact = h_x - stats.norm.entropy()
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 16000)
    x = (2.0 * labels + rng.standard_normal(16000)).reshape(-1, 1)
    named = np.where(labels == 1, "yes", "no")
    score = mutual_info_scores(x, named, estimator=KSG(), discrete_target=True, random_state=0)
    assert score[0] == pytest.approx(exact, abs=0.03)
    same = mutual_info_scores(x, labels, estimator=KSG(), discrete_target=True, random_state=0)
    assert same[0] == score[0]


def test_tied_features_are_named_once(problem):
    X, y = problem
    frame = pd.DataFrame(X[:, :3], columns=["a", "b", "c"]).assign(level=np.round(X[:, 3]))
    with pytest.warns(TiedDataWarning) as caught:
        mutual_info_scores(frame, y, estimator=KSG())
    ties = [str(w.message) for w in caught if w.category is TiedDataWarning]
    assert len(ties) == 1 and "KSG: 'level' (" in ties[0] and "column 0" not in ties[0]
    # a tied target is named by its Series name, unless a feature has that name
    for name, shown in (("price", "'price' ("), ("a", "'y' (")):
        target = pd.Series(np.round(y), name=name)
        with pytest.warns(TiedDataWarning) as caught:
            mutual_info_scores(frame[["a", "b"]], target, estimator=KSG())
        assert shown in str(caught[0].message), str(caught[0].message)


def test_class_labels_go_to_mixed_ksg_whatever_their_coding():
    """Three classes cut from X_0 at -0.5 and 0.5: I(X_0; class) = H(class)."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1000, 2))
    classes = np.digitize(X[:, 0], [-0.5, 0.5])
    p = np.diff(stats.norm.cdf([-np.inf, -0.5, 0.5, np.inf]))
    exact = -np.sum(p * np.log(p))
    for labels in (classes, (classes + 1) % 3, np.array(["lo", "mid", "hi"])[classes]):
        scores = mutual_info_scores(X, labels, discrete_target=True)
        assert scores[0] == pytest.approx(exact, abs=0.03) and abs(scores[1]) < 0.03


def test_class_labels_for_mist_warn_and_odd_labels_are_handled():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 2))
    classes = (X[:, 0] > 0).astype(int)

    class ContinuousOnly(Batched):
        continuous_only = True

    with pytest.warns(TiedDataWarning, match="leave estimator=None"):
        mutual_info_scores(X, classes, estimator=ContinuousOnly(), discrete_target=True)
    assert not mutual_info_scores(X, np.full(300, "one"), discrete_target=True).any()
    with pytest.raises(ValueError, match="missing class label .nan, first at row 1"):
        mutual_info_scores(X, np.array([0.0, np.nan] * 150), discrete_target=True)
    with pytest.raises(ValueError, match="missing class label .None, first at row 3"):
        mutual_info_scores(X, np.array(["a", "b", "a", None] * 75, dtype=object),
                           discrete_target=True)
    with pytest.raises(ValueError, match="at least 2 samples; got 1"):
        mutual_info_scores(X[:1], classes[:1], estimator=KSG())


def test_targets_float64_cannot_hold_and_masked_or_na_labels_are_refused(problem):
    X, _ = problem
    with pytest.raises(ValueError, match=r"y holds integers beyond 2\*\*53"):
        mutual_info_scores(X, 2**62 + np.arange(400), estimator=KSG())
    with pytest.raises(ValueError, match="y is a masked array with masked entries"):
        mutual_info_scores(X, np.ma.masked_array(X[:, 0], mask=X[:, 0] > 1), estimator=KSG())
    with pytest.raises(ValueError, match="missing class label .<NA>, first at row 1"):
        mutual_info_scores(X, pd.Series(["a", pd.NA] * 200, dtype="string"),
                           discrete_target=True)


class _NaNOnStrongFeatures:
    """KSG, except that it answers NaN where the feature is strongly correlated."""
    name = "nan-on-strong"

    def estimate(self, x, y):
        strong = abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1]) > 0.5
        return float("nan") if strong else KSG().estimate(x, y)


def test_a_nan_score_is_warned_of_by_feature():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.standard_normal((300, 3)), columns=["signal", "b", "c"])
    y = X["signal"] + 0.3 * rng.standard_normal(300)
    with pytest.warns(RuntimeWarning, match="returned NaN for the feature\\(s\\) 'signal'"):
        scores = mutual_info_scores(X, y, estimator=_NaNOnStrongFeatures())
    assert np.isnan(scores[0]) and np.isfinite(scores[1:]).all()


def test_object_integers_beyond_2_53_are_refused_as_int64_ones_are():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    labels = 2**60 + (X[:, 0] > 0).astype(np.int64)
    for y in (pd.Series(labels), pd.Series(labels.astype(object))):
        with pytest.raises(ValueError, match="beyond 2\\*\\*53"):
            mutual_info_scores(X, y, estimator=KSG())
    small = pd.Series((5 + (X[:, 0] > 0)).astype(object))
    assert mutual_info_scores(X, small, estimator=KSG(discrete="auto"))[0] > 0.3


def test_the_target_is_never_named_like_a_feature():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(np.round(rng.standard_normal((300, 2)), 0), columns=["y", "b"])
    target = np.round(X["y"].to_numpy() + rng.standard_normal(300), 0)
    with pytest.warns(TiedDataWarning) as caught:
        mutual_info_scores(X, target, estimator=KSG(discrete=False))
    text = " ".join(str(w.message) for w in caught)
    assert "'y_'" in text and "'y'" in text
