"""mi_matrix: shapes, names, closed-form values, groups, p-values, errors, the heatmap."""
import json
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mistmodel.caller_warnings import TiedDataWarning
from mistmodel.estimators import CCA, KSG
from mistmodel.independence import adjusted_p_values, independence_test
from mistmodel.matrix import mi_matrix, plot_mi_matrix

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def frame():
    """a-b correlated (rho = 0.8), c independent of both, d = a + noise."""
    rng = np.random.default_rng(0)
    n = 4000
    a = rng.standard_normal(n)
    b = 0.8 * a + 0.6 * rng.standard_normal(n)
    c = rng.standard_normal(n)
    d = a + rng.standard_normal(n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d})


class LoopOnly:
    """An estimator without estimate_batch that counts its calls."""

    name = "loop"

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def estimate(self, x, y):
        self.calls += 1
        return self.inner.estimate(x, y)


class Batched(LoopOnly):
    """The same estimator with estimate_batch; records each batch's size."""

    name = "batched"

    def __init__(self, inner):
        super().__init__(inner)
        self.batches = []

    def estimate_batch(self, samples):
        samples = list(samples)
        self.batches.append(len(samples))
        return np.array([self.inner.estimate(x, y) for x, y in samples])


def test_dataframe_matrix_matches_gaussian_closed_form(frame):
    mi = mi_matrix(frame, estimator=CCA())
    assert isinstance(mi, xr.DataArray)
    assert mi.dims == ("variable_1", "variable_2")
    assert list(mi.coords["variable_1"].values) == ["a", "b", "c", "d"]
    values = mi.values
    assert np.all(np.isnan(np.diag(values)))
    off = ~np.eye(4, dtype=bool)
    assert np.allclose(values[off], values.T[off])
    exact_ab = -0.5 * np.log(1 - 0.64)
    assert mi.sel(variable_1="a", variable_2="b") == pytest.approx(exact_ab, abs=0.03)
    assert mi.sel(variable_1="a", variable_2="d") == pytest.approx(-0.5 * np.log(1 - 0.5), abs=0.03)
    assert abs(float(mi.sel(variable_1="a", variable_2="c"))) < 0.01
    assert mi.attrs["estimator"] == "CCA"
    assert json.loads(mi.attrs["estimator_settings"]) == CCA().settings()
    assert mi.attrs["units"] == "nats"


def test_numpy_and_dataset_inputs_name_their_columns(frame):
    from_numpy = mi_matrix(frame.to_numpy(), estimator=CCA())
    assert list(from_numpy.coords["variable_2"].values) == ["0", "1", "2", "3"]
    ds = xr.Dataset({name: ("row", frame[name].to_numpy()) for name in frame.columns})
    from_ds = mi_matrix(ds, estimator=CCA())
    assert list(from_ds.coords["variable_1"].values) == list(frame.columns)
    np.testing.assert_allclose(from_ds.values, from_numpy.values)


def test_groups_are_multivariate_variables(frame):
    groups = {"ab": ["a", "b"], "cd": ["c", "d"]}
    mi = mi_matrix(frame, estimator=CCA(), groups=groups)
    assert list(mi.coords["variable_1"].values) == ["ab", "cd"]
    expected = CCA().estimate(frame[["a", "b"]].to_numpy(), frame[["c", "d"]].to_numpy())
    assert float(mi.sel(variable_1="ab", variable_2="cd")) == pytest.approx(expected)
    assert json.loads(mi.attrs["groups"]) == groups
    # a pandas Index or numpy array of column names is a list of columns too
    same = mi_matrix(frame, estimator=CCA(),
                     groups={"ab": frame.columns[:2], "cd": np.array(["c", "d"])})
    np.testing.assert_array_equal(same.values, mi.values)


def test_batched_and_looped_estimators_agree(frame):
    loop, batch = LoopOnly(CCA()), Batched(CCA())
    a = mi_matrix(frame, estimator=loop, permutations=5)
    b = mi_matrix(frame, estimator=batch, permutations=5)
    xr.testing.assert_allclose(a["mi"], b["mi"])
    xr.testing.assert_allclose(a["p_value"], b["p_value"])
    assert loop.calls == 6 * 6                  # 6 pairs x (observed + 5 permutations)
    assert batch.calls == 0 and sum(batch.batches) == 36


def test_p_values_are_those_of_the_independence_test(frame):
    with pytest.warns(UserWarning, match="no p_value_adjusted can come below 0.05"):
        res = mi_matrix(frame, estimator=KSG(), permutations=19, seed=3)
    assert isinstance(res, xr.Dataset)
    assert set(res.data_vars) == {"mi", "p_value", "p_value_adjusted"}
    x, c = frame[["a"]].to_numpy(), frame[["c"]].to_numpy()
    test = independence_test(KSG(), x, c, n_permutations=19, seed=3)
    assert float(res.p_value.sel(variable_1="a", variable_2="c")) == pytest.approx(test.p_value)
    assert float(res.p_value.sel(variable_1="a", variable_2="b")) == pytest.approx(1 / 20)
    assert np.all(np.isnan(np.diag(res.p_value.values)))


def test_result_round_trips_through_netcdf(frame, tmp_path):
    res = mi_matrix(frame, estimator=CCA(), permutations=3)
    path = tmp_path / "mi.nc"
    res.to_netcdf(path, engine="h5netcdf")
    back = xr.load_dataset(path, engine="h5netcdf")
    xr.testing.assert_allclose(back["mi"], res["mi"])
    assert back.attrs["estimator"] == "CCA"


def test_mist_default_is_batched_and_matches_single_estimates(frame):
    from mistmodel import MIST
    mist = MIST.load()
    small = frame.iloc[:300]
    mi = mi_matrix(small, progress=False)
    assert mi.attrs["estimator"] == mist.name
    one = mist.estimate(small[["a"]].to_numpy(), small[["b"]].to_numpy())
    assert float(mi.sel(variable_1="a", variable_2="b")) == pytest.approx(one, rel=1e-4, abs=1e-5)
    pair = mi.sel(variable_1="a")
    assert float(pair.sel(variable_2="b")) > float(pair.sel(variable_2="c"))


@pytest.mark.parametrize("groups, message", [
    ({"g": ["a", "b"], "h": ["b", "c"]}, "column 'b' is in group 'h' and in group 'g'"),
    ({"g": ["a"], "h": []}, "group 'h' is empty"),
    ({"g": ["a"], "h": ["zz"]}, "group 'h': no column 'zz'"),
    ({"g": ["a", "a"], "h": ["c"]}, "column 'a' is in group 'g' twice"),
    ({1: ["a"], "1": ["b"], "x": ["c"]}, "groups 1 and '1' have one name, '1'"),
])
def test_bad_groups_are_named(frame, groups, message):
    with pytest.raises(ValueError, match=message):
        mi_matrix(frame, estimator=CCA(), groups=groups)


def test_constant_and_nan_columns_are_named(frame):
    const = frame.assign(flat=1.0)
    with pytest.raises(ValueError, match="column 'flat' is constant"):
        mi_matrix(const, estimator=CCA())
    # a constant column outside every group is not used, so it is no error
    mi_matrix(const, estimator=CCA(), groups={"g": ["a"], "h": ["b"]})
    holed = frame.copy()
    holed.loc[7, "c"] = np.nan
    with pytest.raises(ValueError, match=r"column 'c' contains NaN \(first at row 7"):
        mi_matrix(holed, estimator=CCA())


@pytest.mark.parametrize("estimator", [None, KSG()], ids=["mist", "ksg"])
def test_tied_columns_are_named_once_by_their_names(estimator):
    rng = np.random.default_rng(3)
    level = rng.integers(0, 3, 300)
    table = pd.DataFrame({"level": level, "cont": rng.standard_normal(300),
                          "other": rng.standard_normal(300) + level})
    with pytest.warns(TiedDataWarning) as caught:
        mi_matrix(table, estimator=estimator)
    ties = [str(w.message) for w in caught if w.category is TiedDataWarning]
    assert len(ties) == 1 and "'level' (3 distinct values in 300 rows) is" in ties[0]
    assert "column 0" not in ties[0] and "'cont'" not in ties[0]
    assert caught[0].filename == __file__


def test_no_tie_warning_where_the_estimator_handles_ties():
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"level": rng.integers(0, 3, 300), "cont": rng.standard_normal(300)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", TiedDataWarning)
        mi_matrix(table, estimator=KSG(discrete="auto"))


def test_other_bad_input(frame):
    with pytest.raises(ValueError, match="at least two variables"):
        mi_matrix(frame[["a"]], estimator=CCA())
    with pytest.raises(ValueError, match="permutations must be an integer >= 0"):
        mi_matrix(frame, estimator=CCA(), permutations=-1)
    with pytest.raises(ValueError, match="column 'b' is not numeric"):
        mi_matrix(frame.assign(b="x"), estimator=CCA())
    with pytest.raises(TypeError, match="estimate"):
        mi_matrix(frame, estimator=object())


def test_heatmap_draws_every_cell(frame):
    res = mi_matrix(frame, estimator=CCA(), permutations=3)
    ax = plot_mi_matrix(res)
    assert len(ax.texts) == 12                 # 4 x 4 cells less the NaN diagonal
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    assert len(ax.patches) > 0                 # the independent pairs are hatched


def test_progress_bar_shows_when_asked_or_long(frame, capsys, monkeypatch):
    mi_matrix(frame, estimator=CCA())                      # 6 pairs: no bar by default
    assert "MI pairs" not in capsys.readouterr().err
    mi_matrix(frame, estimator=CCA(), progress=True)
    assert "MI pairs" in capsys.readouterr().err
    monkeypatch.setattr("mistmodel.matrix.AUTO_PROGRESS_PAIRS", 5)
    mi_matrix(frame, estimator=CCA())
    assert "MI pairs" in capsys.readouterr().err


def test_one_row_is_too_few_rather_than_constant():
    with pytest.raises(ValueError, match="needs at least 2 rows; the table has 1"):
        mi_matrix(np.array([[1.0, 2.0, 3.0]]), estimator=CCA())


def test_only_the_columns_the_estimator_warned_about_are_named():
    rng = np.random.default_rng(8)
    level = rng.integers(0, 5, 300)
    table = pd.DataFrame({"level": level, "rounded": np.round(rng.standard_normal(300), 1),
                          "other": rng.standard_normal(300) + level})
    with pytest.warns(TiedDataWarning) as caught:
        mi_matrix(table, estimator=KSG())
    ties = [str(w.message) for w in caught if w.category is TiedDataWarning]
    assert ties == [ties[0]] and "'level' (5 distinct values in 300 rows) is" in ties[0]
    assert "'rounded'" not in ties[0]           # about 60 values: KSG does not take it as discrete


def test_masked_entries_are_refused():
    data = np.random.default_rng(9).standard_normal((50, 3))
    with pytest.raises(ValueError, match="the table is a masked array with masked entries"):
        mi_matrix(np.ma.masked_array(data, mask=data > 2), estimator=CCA())


def test_values_do_not_depend_on_the_order_of_the_columns(frame):
    from mistmodel import MIST
    mist = MIST.load(cross_check=False)
    part = frame.iloc[:300]
    forward = mi_matrix(part[["a", "b", "d"]], mist, permutations=9)
    backward = mi_matrix(part[["d", "b", "a"]], mist, permutations=9)
    order = {"variable_1": ["a", "b", "d"], "variable_2": ["a", "b", "d"]}
    # the same pairs in the same order; only float32 rounding of other batch neighbours
    np.testing.assert_allclose(forward.mi.sel(order).values, backward.mi.sel(order).values,
                               rtol=1e-6)
    np.testing.assert_array_equal(forward.p_value.sel(order).values,
                                  backward.p_value.sel(order).values)


class Fails:
    """Returns NaN for the pair of columns 'a' and 'b', KSG's estimate otherwise."""

    name = "fails"

    def estimate(self, x, y):
        if x.shape[1] == 1 and np.array_equal(x[:, 0], self.a) and \
                np.array_equal(np.sort(y[:, 0]), np.sort(self.b)):
            return float("nan")
        return KSG().estimate(x, y)


def test_infinite_and_nan_statistics_get_p_values_and_name_the_pair(frame):
    part = frame.iloc[:400].assign(twice=2 * frame["a"].iloc[:400])
    res = mi_matrix(part[["a", "c", "twice"]], CCA(), permutations=9)
    assert np.isinf(res.mi.sel(variable_1="a", variable_2="twice"))
    assert res.p_value.sel(variable_1="a", variable_2="twice") == pytest.approx(0.1)
    fails = Fails()
    fails.a, fails.b = part["a"].to_numpy(), part["b"].to_numpy()
    with pytest.warns(RuntimeWarning, match="returned NaN for the variables 'a' and 'b'"):
        res = mi_matrix(part[["a", "b", "c"]], fails, permutations=4)
    assert np.isnan(res.mi.sel(variable_1="a", variable_2="b"))
    assert np.isnan(res.p_value.sel(variable_1="a", variable_2="b"))
    assert np.isfinite(res.p_value.sel(variable_1="a", variable_2="c"))


def test_heatmap_shows_an_infinite_estimate(frame):
    part = frame.iloc[:400].assign(twice=2 * frame["a"].iloc[:400])
    mi = mi_matrix(part[["a", "c", "twice"]], CCA())
    ax = plot_mi_matrix(mi)
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}
    assert texts[(0, 2)] == texts[(2, 0)] == "inf" and len(texts) == 6
    drawn = ax.images[0].get_array()
    assert drawn[0, 2] == np.nanmax(np.where(np.isinf(mi.values), np.nan, mi.values))


def test_adjusted_p_values_hold_over_all_pairs():
    # 10 independent columns and one pair that depends: 45 pairs, Holm over the 45 and
    # BH too; the dependent pair stays below 0.05 once adjusted, the others do not
    rng = np.random.default_rng(0)
    table = rng.standard_normal((200, 10))
    table[:, 1] = table[:, 0] + 0.5 * rng.standard_normal(200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # 999 >= 45 / 0.05: Holm can reach 0.05
        holm = mi_matrix(table, estimator=CCA(), permutations=999, seed=1)
    bh = mi_matrix(table, estimator=CCA(), permutations=999, seed=1, adjust="bh")
    iu = np.triu_indices(10, 1)
    raw = holm.p_value.values[iu]
    assert holm.p_value_adjusted.attrs["adjustment"] == "holm"
    np.testing.assert_allclose(holm.p_value_adjusted.values[iu],
                               adjusted_p_values(raw, "holm"))
    np.testing.assert_allclose(bh.p_value_adjusted.values[iu], adjusted_p_values(raw, "bh"))
    for res in (holm, bh):
        adjusted = res.p_value_adjusted.values
        np.testing.assert_array_equal(adjusted, adjusted.T)
        assert np.all(np.isnan(np.diag(adjusted)))
        assert np.all(adjusted[iu] >= raw)
        assert adjusted[0, 1] <= 0.05
        assert np.sum(adjusted[iu] <= 0.05) == 1
    with pytest.raises(ValueError, match="adjust must be one of"):
        mi_matrix(table, estimator=CCA(), permutations=9, adjust="bonferroni")


def test_holm_and_bh_match_their_definitions():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(adjusted_p_values(p, "holm"), [0.03, 0.06, 0.06, 0.02, np.nan])
    np.testing.assert_allclose(adjusted_p_values(p, "bh"), [0.02, 0.04, 0.04, 0.02, np.nan])
    np.testing.assert_allclose(adjusted_p_values([0.5, 0.9], "holm"), [1.0, 1.0])


def test_a_nan_permuted_copy_is_counted_against_the_statistic_with_a_warning():
    class NanOnCopies:
        name = "nan-on-copies"

        def estimate(self, x, y):
            return 1.0 if np.array_equal(y, self.y) else float("nan")

    rng = np.random.default_rng(0)
    table = rng.standard_normal((50, 2))
    est = NanOnCopies()
    est.y = table[:, 1:]
    with pytest.warns(RuntimeWarning, match="9 of 9 permuted copies of the pairs gave NaN"):
        res = mi_matrix(table, estimator=est, permutations=9, adjust="bh")
    assert float(res.p_value[0, 1]) == 1.0


def test_copied_rows_keep_their_own_warning_in_a_matrix():
    from mistmodel.caller_warnings import RepeatedRowsWarning

    rng = np.random.default_rng(0)
    table = rng.standard_normal((900, 3))
    table = np.vstack([table, table[:100]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mi_matrix(table, estimator=KSG())
    kinds = [w.category for w in caught]
    assert kinds == [RepeatedRowsWarning], [str(w.message)[:80] for w in caught]
    assert "3 of its estimates warned; the first: KSG: 100 of 1000 rows" in str(caught[0].message)
