"""Families of the user-check suite: independence with any marginals, and discrete data."""
import numpy as np
import pytest
from scipy import stats

import mistgen
import mistgen.families.checks as checks  # registers the families
from mistgen import FAMILIES, PriorError, ShapeError

INDEPENDENT = ["independent-normal", "independent-student", "independent-uniform",
               "independent-lognormal", "independent-exponential", "independent-mixed"]


def test_families_are_registered():
    for name in INDEPENDENT + ["discrete-copy", "discrete-bsc", "discrete-table"]:
        assert name in FAMILIES


@pytest.mark.parametrize("spec", INDEPENDENT + ["independent-lognormal-asinh",
                                                "independent-student-wiggly"])
@pytest.mark.parametrize("dx, dy", [(1, 1), (1, 7), (6, 2), (32, 32)])
def test_independence_has_zero_mi_any_dims(spec, dx, dy):
    s = mistgen.sample(spec, 300, dx, dy, 11)
    assert s.mi == 0.0
    assert s.x.shape == (300, dx) and s.y.shape == (300, dy)
    assert np.all(np.isfinite(s.x)) and np.all(np.isfinite(s.y))


@pytest.mark.parametrize("spec", INDEPENDENT)
def test_sides_are_uncorrelated_even_in_ranks(spec):
    s = mistgen.sample(spec, 20_000, 2, 2, 3)
    for i in range(2):
        for j in range(2):
            assert abs(stats.spearmanr(s.x[:, i], s.y[:, j]).statistic) < 0.03
            # squares too: dependence through a shared scale would show here
            assert abs(stats.spearmanr(s.x[:, i] ** 2, s.y[:, j] ** 2).statistic) < 0.03


def test_within_side_correlation_must_keep_the_side_valid():
    with pytest.raises(PriorError, match="must exceed -1/\\(dim - 1\\) = -0.25 for a side of 5"):
        mistgen.sample("independent-normal", 10, 5, 1, 0,
                       params={"within_x": -0.3, "within_y": 0.0})
    with pytest.raises(PriorError, match="within_y must lie within -1 < within_y < 1"):
        mistgen.sample("independent-normal", 10, 1, 1, 0, params={"within_x": 0.0, "within_y": 1.0})


def test_within_side_correlation_follows_its_parameter():
    params = {"within_x": 0.6, "within_y": 0.0}
    s = mistgen.sample("independent-normal", 50_000, 3, 3, 0, params=params)
    assert np.corrcoef(s.x.T)[0, 1] == pytest.approx(0.6, abs=0.02)
    assert np.corrcoef(s.y.T)[0, 1] == pytest.approx(0.0, abs=0.02)


def test_marginal_shapes():
    n = 50_000
    u = mistgen.sample("independent-uniform", n, 2, 1, 0).x
    assert u.min() >= 0 and u.max() <= 1
    assert stats.kstest(u[:, 0], "uniform").pvalue > 1e-3
    e = mistgen.sample("independent-exponential", n, 1, 1, 0).y[:, 0]
    assert stats.kstest(e, "expon").pvalue > 1e-3
    ln = mistgen.sample("independent-lognormal", n, 1, 1, 0,
                        params={"sigma_x": 1.0, "sigma_y": 0.5})
    assert stats.kstest(np.log(ln.x[:, 0]), "norm").pvalue > 1e-3
    assert stats.skew(ln.y[:, 0]) > 1.0
    t = mistgen.sample("independent-student", n, 1, 1, 0,
                       params={"nu_x": 3.0, "within_x": 0.0, "nu_y": 3.0, "within_y": 0.0})
    assert stats.kstest(t.x[:, 0], "t", args=(3.0,)).pvalue > 1e-3


def test_mixed_marginals_follow_their_codes():
    names = [m.name for m in checks.MARGINALS]
    params = dict(mistgen.sample("independent-mixed", 2, 1, 1, 0).params)
    params.update(marginal_x=names.index("uniform") + 1, marginal_y=names.index("exponential") + 1)
    s = mistgen.sample("independent-mixed", 20_000, 2, 3, 0, params=params)
    assert s.x.min() >= 0 and s.x.max() <= 1 and s.y.max() > 5
    with pytest.raises(PriorError, match="marginal_x must lie within 0 < marginal_x < 6"):
        mistgen.sample("independent-mixed", 10, 1, 1, 0, params={**params, "marginal_x": 6})
    with pytest.raises(PriorError, match="marginal_y must lie within 0 < marginal_y < 6"):
        mistgen.sample("independent-mixed", 10, 1, 1, 0,
                       priors={"independent-mixed": {"marginal_y": [1, 9]}})
    picked = {mistgen.sample("independent-mixed", 2, 1, 1, seed).params["marginal_x"]
              for seed in range(60)}
    assert picked == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("k", [2, 4, 7])
def test_copy_has_mi_log_k(k):
    s = mistgen.sample("discrete-copy", 5000, 1, 1, 0, params={"k": k})
    assert s.mi == pytest.approx(np.log(k), abs=1e-12)
    np.testing.assert_array_equal(s.x, s.y)
    assert set(np.unique(s.x)) == set(range(k))


def test_binary_symmetric_channel():
    s = mistgen.sample("discrete-bsc", 200_000, 1, 1, 0, params={"flip": 0.1})
    assert s.mi == pytest.approx(0.368, abs=1e-3)
    h = -(0.1 * np.log(0.1) + 0.9 * np.log(0.9))
    assert s.mi == pytest.approx(np.log(2) - h, abs=1e-12)
    assert np.mean(s.x != s.y) == pytest.approx(0.1, abs=0.003)
    assert np.mean(s.x) == pytest.approx(0.5, abs=0.005)
    assert mistgen.sample("discrete-bsc", 2, 1, 1, 0, params={"flip": 0.5}).mi == 0.0


def plugin_mi(x, y):
    joint = np.zeros((int(x.max()) + 1, int(y.max()) + 1))
    np.add.at(joint, (x.astype(int), y.astype(int)), 1.0)
    return checks.table_mi(joint / joint.sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_table_mi_matches_the_sampled_frequencies(seed):
    s = mistgen.sample("discrete-table", 400_000, 1, 1, seed)
    table = np.asarray(s.params["table"])
    assert table.shape == (s.params["k_x"], s.params["k_y"])
    assert table.sum() == pytest.approx(1.0)
    assert plugin_mi(s.x[:, 0], s.y[:, 0]) == pytest.approx(s.mi, abs=0.005)


def test_table_mi_closed_forms():
    assert checks.table_mi(np.eye(3) / 3) == pytest.approx(np.log(3))
    assert checks.table_mi(np.outer([0.2, 0.8], [0.5, 0.3, 0.2])) == pytest.approx(0.0, abs=1e-15)


def test_discrete_refuses_other_dims_and_bad_params():
    for spec in ["discrete-copy", "discrete-bsc", "discrete-table"]:
        with pytest.raises(ShapeError, match="dim_x = dim_y = 1"):
            mistgen.sample(spec, 10, 2, 1, 0)
    with pytest.raises(PriorError, match="needs parameter 'table'"):
        mistgen.sample("discrete-table", 10, 1, 1, 0,
                       params={"k_x": 2, "k_y": 2, "concentration": 1.0})
    with pytest.raises(ShapeError, match="table has shape \\(2, 2\\), expected"):
        mistgen.sample("discrete-table", 10, 1, 1, 0,
                       params={"k_x": 2, "k_y": 3, "concentration": 1.0,
                               "table": [[0.25, 0.25], [0.25, 0.25]]})
    with pytest.raises(PriorError, match="summing to 1"):
        mistgen.sample("discrete-table", 10, 1, 1, 0,
                       params={"k_x": 2, "k_y": 2, "concentration": 1.0,
                               "table": [[0.5, 0.6], [0.0, 0.0]]})
    with pytest.raises(PriorError, match="flip must lie in \\[0, 1\\]"):
        mistgen.sample("discrete-bsc", 10, 1, 1, 0, params={"flip": 1.5})
    with pytest.raises(PriorError, match="parameter k must be an integer"):
        mistgen.sample("discrete-copy", 10, 1, 1, 0, params={"k": 2.5})
    with pytest.raises(PriorError, match="concentration must lie within concentration > 0"):
        mistgen.sample("discrete-table", 10, 1, 1, 0,
                       priors={"discrete-table": {"concentration": [0.0, 1.0]}})


def test_prior_overrides_pin_the_parameters():
    s = mistgen.sample("discrete-copy", 10, 1, 1, 0, priors={"discrete-copy": {"k": [4, 4]}})
    assert s.params == {"k": 4} and s.mi == pytest.approx(np.log(4))
    # a tiny correlation is the existing Gaussian family under a narrow prior
    s = mistgen.sample("normal-dense", 10, 1, 1, 0,
                       priors={"normal-dense": {"off_diag": [0.05, 0.1]}})
    assert 0.05 <= s.params["off_diag"] <= 0.1 and 0 < s.mi < 0.006


def test_samples_are_a_pure_function_of_the_seed():
    for spec in ["independent-mixed-asinh", "discrete-table"]:
        dx = 1 if spec.startswith("discrete") else 3
        a, b = mistgen.sample(spec, 50, dx, 1, 9), mistgen.sample(spec, 50, dx, 1, 9)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        assert a.params == b.params
