"""The shared interface: exports, input checks, constant columns, records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mistmodel.estimators import (
    CCA,
    KSG,
    MINE,
    Estimate,
    Estimator,
    InfoNCE,
    check_xy,
)

FAST = {
    "KSG": lambda: KSG(),
    "CCA": lambda: CCA(),
    "MINE": lambda: MINE(max_steps=50),
    "InfoNCE": lambda: InfoNCE(max_steps=50),
}


def sample(n: int = 40, dx: int = 2, dy: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dx))
    y = rng.standard_normal((n, dy))
    y[:, 0] += x[:, 0]
    return x, y


def test_family_shares_the_base_class() -> None:
    for make in FAST.values():
        est = make()
        assert isinstance(est, Estimator)
        assert est.name in FAST
        json.dumps(est.settings())


@pytest.mark.parametrize("name", sorted(FAST))
def test_finite_at_n_10_and_uneven_dims(name: str) -> None:
    for dx, dy in [(1, 7), (2, 2), (7, 1)]:
        x, y = sample(10, dx, dy, seed=dx)
        value = FAST[name]().estimate(x, y)
        assert isinstance(value, float) and np.isfinite(value)


def test_check_xy_accepts_and_converts() -> None:
    x, y = check_xy([[1, 2], [3, 4], [5, 6]], np.array([[1], [0], [1]], dtype=np.int32))
    assert x.dtype == np.float64 and y.dtype == np.float64
    assert x.shape == (3, 2) and y.shape == (3, 1)
    assert x.flags.c_contiguous


@pytest.mark.parametrize("name", sorted(FAST))
def test_nan_and_inf_name_the_column(name: str) -> None:
    est = FAST[name]()
    x, y = sample()
    x[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"x column 1 contains NaN \(first at row 5\)"):
        est.estimate(x, y)
    x, y = sample()
    y[2, 2] = np.inf
    with pytest.raises(ValueError, match="y column 2 contains inf"):
        est.estimate(x, y)
    x, y = sample()
    y[7, 0] = -np.inf
    with pytest.raises(ValueError, match="y column 0 contains -inf"):
        est.interval(x, y, n_boot=2)


@pytest.mark.parametrize("name", sorted(FAST))
def test_shape_errors(name: str) -> None:
    est = FAST[name]()
    x, y = sample()
    with pytest.raises(ValueError, match="same number of rows.*x has 40 rows, y has 39"):
        est.estimate(x, y[:-1])
    with pytest.raises(ValueError, match=r"1-D array.*reshape\(-1, 1\)"):
        est.estimate(x[:, 0], y)
    with pytest.raises(ValueError, match="y must be 2-D"):
        est.estimate(x, y[:, :, None])
    with pytest.raises(ValueError, match="no columns"):
        est.estimate(x, y[:, :0])
    with pytest.raises(ValueError, match="numeric"):
        est.estimate(x.astype(str), y)


def test_integers_beyond_float64_and_masked_entries_are_refused() -> None:
    rows = np.arange(200)
    ids = (2**62 + rows).reshape(-1, 1)             # distinct, but one double after conversion
    with pytest.raises(ValueError, match=r"x column 0 holds integers beyond 2\*\*53.*merges "
                                         r"199 of its 200 distinct values.*offset"):
        KSG().estimate(ids, rows.reshape(-1, 1))
    assert np.isfinite(KSG().estimate(ids - ids.min(), rows.reshape(-1, 1)))
    x, y = sample()
    with pytest.raises(ValueError, match="masked array with masked entries"):
        CCA().estimate(np.ma.masked_array(x, mask=x > 2), y)
    assert CCA().estimate(np.ma.masked_array(x), y) == CCA().estimate(x, y)


def test_too_few_rows_per_estimator() -> None:
    x, y = sample(2)
    for est, needed in [(KSG(k=3), 5), (CCA(), 3), (MINE(), 4), (InfoNCE(), 4)]:
        with pytest.raises(ValueError, match=f"at least {needed} rows; got 2"):
            est.estimate(x, y)


@pytest.mark.parametrize("name", sorted(FAST))
def test_constant_columns_are_dropped(name: str) -> None:
    x, y = sample(60)
    x_const = np.column_stack([x[:, :1], np.full(60, 3.0), x[:, 1:]])
    est = FAST[name]()
    with_const = est.estimate(x_const, y)
    assert (est.last_info["dropped_x"], est.last_info["dropped_y"]) == ([1], [])
    assert abs(with_const - FAST[name]().estimate(x, y)) < 1e-9
    record = est.run(x_const, y)
    assert (record.dropped_x, record.dropped_y) == ([1], [])
    assert est.run(x, y).dropped_x == []
    # A side that is entirely constant carries no information.
    assert est.estimate(np.ones((60, 2)), y) == 0.0
    assert est.last_info["dropped_x"] == [0, 1]


def test_estimate_record_is_complete_and_serialisable() -> None:
    x, y = sample(80)
    rec = KSG(k=3).estimate_with_interval(x, y, level=0.8, n_boot=20, seed=1)
    assert isinstance(rec, Estimate)
    assert rec.estimator == "KSG" and rec.level == 0.8 and rec.n_boot == 20
    assert rec.lower <= rec.value <= rec.upper
    assert rec.settings["k"] == 3 and rec.info["n"] == 80
    assert rec.seconds > 0
    json.dumps(rec.to_dict())
    assert (rec.lower, rec.upper) == KSG(k=3).interval(x, y, level=0.8, n_boot=20, seed=1)
    plain = CCA().run(x, y)
    assert plain.lower is None and np.isfinite(plain.value)
    json.dumps(plain.to_dict())


class _MeanProduct(Estimator):
    """A toy subclass written against the documented contract."""

    name = "toy"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def settings(self) -> dict:
        return {"seed": self.seed}

    def _estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        return float(abs(np.mean(x[:, 0] * y[:, 0])))

    def _run_info(self) -> dict:
        return {"toy": True}


def test_a_new_subclass_gets_checks_and_bootstrap() -> None:
    x, y = sample(100)
    est = _MeanProduct()
    value = est.estimate(x, y)
    assert est.last_info["toy"] is True
    lo, hi = est.interval(x, y, n_boot=50)
    assert lo <= value <= hi
    with pytest.raises(ValueError, match="toy"):
        est.estimate(x[:1], y[:1])
    assert repr(est) == "toy(seed=0)"


def test_a_dataframe_is_read_column_by_column_and_durations_are_refused():
    pd = pytest.importorskip("pandas")
    from mistmodel.tabular import table_columns

    rng = np.random.default_rng(0)
    y = rng.standard_normal((200, 1))
    ids = pd.DataFrame({"id": 2 ** 60 + np.arange(200), "v": rng.standard_normal(200)})
    with pytest.raises(ValueError, match=r"x column 0 \('id'\) holds integers beyond 2\*\*53"):
        CCA().estimate(ids, y)                  # as a whole frame: float64, one value
    mixed = pd.DataFrame({"a": rng.standard_normal(200), "flag": rng.random(200) > 0.5})
    assert CCA().estimate(mixed, y) == CCA().estimate(mixed.to_numpy(dtype=float), y)
    words = pd.DataFrame({"a": rng.standard_normal(200), "w": ["u", "v"] * 100})
    with pytest.raises(ValueError, match=r"x column 1 \('w'\) must be numeric"):
        KSG().estimate(words, y)
    durations = np.array([1, 2, 3, 4] * 50, dtype="m8[s]").reshape(-1, 1)
    with pytest.raises(ValueError, match=r"x holds durations \(timedelta64\[s\]\)"):
        KSG().estimate(durations, y)
    missing = pd.DataFrame({"d": pd.to_timedelta([1, 2, None, 4], unit="s")})
    with pytest.raises(ValueError, match=r"column 'd' holds durations"):
        table_columns(missing)


@pytest.mark.parametrize("make", [KSG, CCA])
def test_a_call_that_raises_leaves_no_earlier_record(make):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((100, 1)), rng.standard_normal((100, 1))
    est = make()
    est.estimate(x, y)
    assert est.last_info["n"] == 100
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError):
        est.estimate(bad, y)
    assert est.last_info == {}
    est.estimate_conditional(x, y, rng.standard_normal((100, 1)))
    with pytest.raises(ValueError):
        est.estimate_conditional(bad, y, x)
    assert est.last_info == {}


def test_pandas_sides_with_other_row_indexes_are_refused() -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((60, 3)), columns=["a", "b", "c"])
    est = KSG()
    est.estimate(frame[["a"]], frame[["b"]])
    shuffled = frame[["b"]].sort_values("b")
    with pytest.raises(ValueError, match="different row indexes"):
        est.estimate(frame[["a"]], shuffled)
    with pytest.raises(ValueError, match="x and z are pandas objects"):
        est.estimate_conditional(frame[["a"]], frame[["b"]], frame[["c"]].sort_values("c"))
    est.estimate(frame[["a"]], shuffled.to_numpy())             # by position, as asked


@pytest.mark.parametrize("bad", [None, -1, 1.5, "3", True])
def test_bootstrap_seeds_are_checked(bad) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 1)), rng.standard_normal((40, 1))
    est = CCA()
    for call in (est.interval, est.estimate_with_interval, est.bootstrap_distribution):
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            call(x, y, seed=bad)


def test_the_estimators_are_importable_from_the_package() -> None:
    import mistmodel
    from mistmodel import CCA as PackageCCA, KSG as PackageKSG

    assert PackageKSG is KSG and PackageCCA is CCA
    assert {"CCA", "InfoNCE", "KSG", "MINE", "MIST"} <= set(dir(mistmodel))
    assert {"CCA", "InfoNCE", "KSG", "MINE"} <= set(dir(mistmodel.estimators))


@pytest.mark.parametrize("make", [lambda: MINE(max_steps=5), lambda: InfoNCE(max_steps=5)])
def test_neural_estimators_warn_of_copied_rows(make) -> None:
    from mistmodel.caller_warnings import RepeatedRowsWarning

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((100, 2)), rng.standard_normal((100, 2))
    with pytest.warns(RepeatedRowsWarning, match="held-out"):
        make().estimate(np.vstack([x, x]), np.vstack([y, y]))


@pytest.mark.parametrize("make", [KSG, MINE, InfoNCE])
def test_standardize_must_be_a_flag(make) -> None:
    with pytest.raises(ValueError, match="standardize must be True or False"):
        make(standardize="False")
    assert make(standardize=0).standardize is False
