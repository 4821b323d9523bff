"""The attacker's cases for the classical estimators (KSG, CCA, MINE, InfoNCE).

Each case is one bad or extreme input; each must give either a clear error
(naming the problem) or the correct answer. Nothing may come back silently
wrong.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from mistmodel.estimators import CCA, KSG, MINE, BootstrapError, Estimator, InfoNCE

SCALES = (1e-300, 1e-154, 1e-10, 1.0, 1e10, 1e154, 1e300)

ESTIMATORS = {
    "KSG": lambda: KSG(),
    "KSG-euclidean": lambda: KSG(metric="euclidean"),
    "CCA": lambda: CCA(),
    "CCA-ledoit-wolf": lambda: CCA(shrinkage="ledoit-wolf"),
    "MINE": lambda: MINE(max_steps=10, eval_every=5, seed=3, device="cpu", threads=1),
    "InfoNCE": lambda: InfoNCE(max_steps=10, eval_every=5, seed=3, device="cpu", threads=1),
}
# Standardisation makes the inputs equal to rounding; the estimates agree to this.
TOLERANCE = {"MINE": 1e-6, "InfoNCE": 1e-6}


@functools.lru_cache(maxsize=None)
def unscaled_estimate(name: str) -> float:
    return ESTIMATORS[name]().estimate(*sample())


def sample(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    y = x @ np.array([[0.8, 0.1], [0.3, -0.6]]) + 0.7 * rng.standard_normal((n, 2))
    return x, y


def scaled_versions(x: np.ndarray, y: np.ndarray, s: float):
    """x scaled, y scaled, and each column by its own factor (s, 1/s, s, 1)."""
    yield "x", x * s, y
    yield "y", x, y * s
    yield "columns", x * np.array([s, 1.0 / s]), y * np.array([s, 1.0])


# ------------------------------------------------------------------ scale
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_estimate_does_not_depend_on_scale(name: str, scale: float) -> None:
    x, y = sample()
    reference = unscaled_estimate(name)
    tol = TOLERANCE.get(name, 1e-9)
    for how, xs, ys in scaled_versions(x, y, scale):
        value = ESTIMATORS[name]().estimate(xs, ys)
        assert abs(value - reference) <= tol * max(1.0, abs(reference)), (how, value, reference)


@pytest.mark.parametrize("scale", SCALES)
def test_unstandardised_ksg_is_invariant_to_a_common_scale(scale: float) -> None:
    x, y = sample()
    reference = KSG(standardize=False).estimate(x, y)
    assert abs(KSG(standardize=False).estimate(x * scale, y * scale) - reference) < 1e-9


@pytest.mark.parametrize("scale", [1e300, 1e-300])
@pytest.mark.parametrize("cls", [MINE, InfoNCE])
def test_unstandardised_neural_input_float32_cannot_hold_is_refused(cls, scale: float) -> None:
    x, y = sample()
    with pytest.raises(ValueError, match="x column 0 .*float32.*standardize=True"):
        cls(standardize=False, max_steps=5).estimate(x * scale, y)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_one_huge_outlier_is_refused_with_the_column(name: str) -> None:
    # Centring a column holding 1e300 among values near 1 erases their
    # differences: a clear error rather than an estimate of nothing.
    x, y = sample()
    y[7, 1] = 1e300
    with pytest.raises(ValueError, match="y column 1 spans too wide a range"):
        ESTIMATORS[name]().estimate(x, y)


@pytest.mark.parametrize("name", ["KSG", "CCA"])
def test_subnormal_data_gives_the_same_estimate(name: str) -> None:
    x, y = sample()
    reference = ESTIMATORS[name]().estimate(x, y)
    assert abs(ESTIMATORS[name]().estimate(x * 1e-310, y) - reference) < 1e-6


# ------------------------------------------------------------- bad input
def with_value(a: np.ndarray, row: int, col: int, value: float) -> np.ndarray:
    a = a.copy()
    a[row, col] = value
    return a


BAD_INPUTS = {
    "nan in x": (lambda x, y: (with_value(x, 2, 1, np.nan), y),
                 r"x column 1 contains NaN \(first at row 2\)"),
    "inf in y": (lambda x, y: (x, with_value(y, 2, 0, np.inf)),
                 r"y column 0 contains inf \(first at row 2\)"),
    "-inf in y": (lambda x, y: (x, with_value(y, 9, 1, -np.inf)),
                  r"y column 1 contains -inf \(first at row 9\)"),
    "mismatched rows": (lambda x, y: (x, y[:-3]), "same number of rows.*x has 120 rows, y has 117"),
    "1-D x": (lambda x, y: (x[:, 0], y), r"1-D array.*reshape\(-1, 1\)"),
    "3-D y": (lambda x, y: (x, y[:, :, None]), "y must be 2-D"),
    "no columns": (lambda x, y: (x[:, :0], y), "x has no columns"),
    "strings": (lambda x, y: (x.astype(str), y), "x must be numeric"),
    "complex": (lambda x, y: (x + 1j, y), "x must be real-valued"),
    "None": (lambda x, y: (None, y), "x must be numeric"),
    "ragged list": (lambda x, y: ([[1.0, 2.0], [3.0]], y[:2]), "x could not be read as an array"),
    "no rows": (lambda x, y: (x[:0], y[:0]), r"at least \d+ rows; got 0"),
    "too few rows": (lambda x, y: (x[:2], y[:2]), r"at least \d+ rows; got 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("name", ["KSG", "CCA", "MINE", "InfoNCE"])
def test_bad_input_is_a_clear_error(name: str, case: str) -> None:
    make, message = BAD_INPUTS[case]
    bad_x, bad_y = make(*sample())
    est = ESTIMATORS[name]()
    with pytest.raises(ValueError, match=message):
        est.estimate(bad_x, bad_y)
    with pytest.raises(ValueError, match=message):
        est.estimate_with_interval(bad_x, bad_y, n_boot=2)


@pytest.mark.parametrize("n_boot", [1, 0, -5, 2.5, True, "10", None])
def test_bad_n_boot(n_boot) -> None:
    x, y = sample()
    with pytest.raises(ValueError, match="n_boot must be an integer >= 2"):
        KSG().interval(x, y, n_boot=n_boot)


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.5, math.nan, None, "0.9", True])
def test_bad_level(level) -> None:
    x, y = sample()
    with pytest.raises(ValueError, match="level must be a number strictly between 0 and 1"):
        CCA().interval(x, y, level=level, n_boot=5)


@pytest.mark.parametrize(
    "make",
    [lambda: KSG(k=0), lambda: KSG(metric="cityblock"), lambda: KSG(jitter=-1.0),
     lambda: CCA(shrinkage="oas"), lambda: CCA(shrinkage=2.0), lambda: MINE(threads=0),
     lambda: InfoNCE(batch_size=1), lambda: MINE(lr=-1.0)],
    ids=["ksg-k0", "ksg-metric", "ksg-jitter", "cca-oas", "cca-2", "mine-threads",
         "infonce-batch", "mine-lr"],
)
def test_bad_settings(make) -> None:
    with pytest.raises(ValueError):
        make()


def test_collinear_columns_in_the_unbiased_cca_are_a_clear_error() -> None:
    x, y = sample()
    with pytest.raises(ValueError, match="singular.*collinear"):
        CCA().estimate(np.column_stack([x, 2.0 * x[:, 0]]), y)


def test_identical_sides_give_infinite_gaussian_mi() -> None:
    x, _ = sample()
    assert CCA().estimate(x, x) == math.inf


@pytest.mark.filterwarnings("ignore::mistmodel.caller_warnings.TiedDataWarning")  # on purpose
def test_boolean_and_integer_input_are_read_as_numbers() -> None:
    x, y = sample()
    xb, yb = x > 0, y > 0
    assert KSG().estimate(xb, yb) == KSG().estimate(xb.astype(float), yb.astype(float))
    big = np.int64(2**62)
    xi = (np.sign(x) * big).astype(np.int64)
    assert CCA().estimate(xi, y) == CCA().estimate(np.sign(x), y)


# ------------------------------------------------------- bootstrap honesty
@pytest.mark.parametrize(
    "make,n",
    [(lambda: KSG(k=5), 10), (lambda: KSG(k=5), 23), (lambda: KSG(k=3), 15),
     (lambda: CCA(), 11), (lambda: MINE(max_steps=5), 15), (lambda: InfoNCE(max_steps=5), 15)],
    ids=["ksg5-n10", "ksg5-n23", "ksg3-n15", "cca-n11", "mine-n15", "infonce-n15"],
)
def test_too_small_for_a_bootstrap_is_refused(make, n: int) -> None:
    x, y = sample(n)
    est = make()
    want = est.min_bootstrap_rows
    assert n < want
    with pytest.raises(BootstrapError, match=f"n = {n} rows is too small.*needs n >= {want}"):
        est.interval(x, y, n_boot=10)
    with pytest.raises(BootstrapError, match="too small"):
        est.estimate_with_interval(x, y, n_boot=10)
    with pytest.raises(BootstrapError, match="too small"):
        est.bootstrap_distribution(x, y, n_boot=10)


def test_ksg_at_its_smallest_bootstrap_n_has_a_positive_width_interval() -> None:
    x, y = sample(28)
    rec = KSG(k=5).estimate_with_interval(x, y, n_boot=50)
    assert rec.lower < rec.upper
    assert rec.contains_value and rec.interval_note is None


class _Coarse(Estimator):
    """An estimator with only one possible answer: its bootstrap is degenerate."""

    name = "coarse"

    def settings(self) -> dict:
        return {}

    def _estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        return 0.5


def test_zero_width_bootstrap_is_refused() -> None:
    x, y = sample()
    with pytest.raises(BootstrapError, match="zero width.*1 distinct value"):
        _Coarse().interval(x, y, n_boot=20)


def test_interval_that_excludes_the_estimate_says_why() -> None:
    # The plug-in CCA in 8 + 8 dimensions at n = 48 is biased upwards by far
    # more than its spread; the bias-corrected interval lies below it.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 8))
    y = 0.5 * x + rng.standard_normal((48, 8))
    rec = CCA(shrinkage=0.0).estimate_with_interval(x, y, n_boot=50)
    assert rec.upper < rec.value
    assert rec.contains_value is False
    assert "bias-corrected" in rec.interval_note and "below" in rec.interval_note
    assert rec.to_dict()["info"]["interval_note"] == rec.interval_note


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_constant_columns_are_reported(name: str) -> None:
    x, y = sample(64)
    xc = np.column_stack([np.full(64, 7.0), x])
    yc = np.column_stack([y, np.zeros(64), np.full(64, -1e300)])
    rec = ESTIMATORS[name]().run(xc, yc)
    assert (rec.dropped_x, rec.dropped_y) == ([0], [2, 3])
    assert rec.to_dict()["info"]["dropped_y"] == [2, 3]
    assert rec.value == ESTIMATORS[name]().estimate(x, y)


@pytest.mark.parametrize("name", ["KSG", "CCA"])
def test_a_constant_side_gives_zero_with_a_zero_interval_that_contains_it(name: str) -> None:
    _, y = sample(64)
    rec = ESTIMATORS[name]().estimate_with_interval(np.full((64, 3), 2.0), y, n_boot=10)
    assert (rec.value, rec.lower, rec.upper) == (0.0, 0.0, 0.0)
    assert rec.dropped_x == [0, 1, 2] and rec.contains_value
