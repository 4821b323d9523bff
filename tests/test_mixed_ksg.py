"""Mixed KSG (Gao, Kannan, Oh & Viswanath 2017) for discrete and mixed data: agreement with a
plain O(n^2) implementation, exact MI of categorical joints, a discrete-continuous family
by quadrature, and the choice of discrete columns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import digamma

import mistgen
from mistgen.families.checks import table_mi
from mistmodel.caller_warnings import DiscreteBiasWarning
from mistmodel.estimators import KSG
from mistmodel.estimators.ksg import discrete_columns, mixed_counts
from mistmodel.independence import independence_test
from mistmodel.matrix import mi_matrix


def reference_mixed_ksg(x: np.ndarray, y: np.ndarray, k: int, metric: str) -> float:
    """One point at a time: where the k-th joint neighbour is at distance 0, k_i counts the
    coincident points (i included) and the marginal counts the other points at distance 0;
    elsewhere KSG algorithm 1."""
    def norm(a: np.ndarray, i: int) -> np.ndarray:
        diff = a - a[i]
        if metric == "chebyshev":
            return np.abs(diff).max(axis=1)
        return np.sqrt((diff**2).sum(axis=1))

    n = x.shape[0]
    total = 0.0
    for i in range(n):
        dx, dy = norm(x, i), norm(y, i)
        dx[i] = dy[i] = np.inf
        joint = np.maximum(dx, dy)
        rho = np.sort(joint)[k - 1]
        if rho == 0.0:
            k_i, nx, ny = np.sum(joint == 0) + 1, np.sum(dx == 0), np.sum(dy == 0)
        else:
            k_i, nx, ny = k, np.sum(dx < rho), np.sum(dy < rho)
        total += digamma(k_i) - digamma(nx + 1) - digamma(ny + 1)
    return digamma(n) + total / n


def lattice(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Discrete x (2 columns), y with one discrete and one continuous column."""
    x = rng.integers(0, 3, size=(n, 2)).astype(float)
    y = np.hstack([(x[:, :1] + rng.integers(0, 2, size=(n, 1))),
                   np.where(rng.random((n, 1)) < 0.5, 0.0, x[:, 1:] + rng.standard_normal((n, 1)))])
    return x, y


@pytest.mark.parametrize("n,k", [(60, 1), (150, 3), (200, 8)])
@pytest.mark.parametrize("metric", ["chebyshev", "euclidean"])
def test_matches_reference(n: int, k: int, metric: str) -> None:
    x, y = lattice(np.random.default_rng([n, k]), n)
    want = reference_mixed_ksg(x, y, k, metric)
    algorithms = ("tree", "brute") if metric == "chebyshev" else ("brute",)
    for algorithm in algorithms:
        est = KSG(k=k, metric=metric, standardize=False, discrete=True, algorithm=algorithm)
        assert abs(est.estimate(x, y) - want) < 1e-10
        assert est.last_info["estimator_used"] == "mixed-KSG"
        assert est.last_info["points_at_distance_zero"] > 0
    whole = mixed_counts(x, y, k, metric, "brute")
    blocked = mixed_counts(x, y, k, metric, "brute", block_rows=7)
    for a, b in zip(whole, blocked):
        np.testing.assert_array_equal(a, b)


def test_is_ksg_where_no_points_coincide() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 2))
    y = x[:, :1] + rng.standard_normal((300, 1))
    plain = KSG(jitter=0.0).estimate(x, y)
    assert KSG(discrete=True).estimate(x, y) == pytest.approx(plain, abs=1e-12)


def plug_in_mi(x: np.ndarray, y: np.ndarray) -> float:
    """I(X; Y) of the empirical joint of two discrete columns."""
    _, xs = np.unique(x, return_inverse=True)
    _, ys = np.unique(y, return_inverse=True)
    table = np.zeros((xs.max() + 1, ys.max() + 1))
    np.add.at(table, (xs.ravel(), ys.ravel()), 1.0)
    return table_mi(table / table.sum())


DIRICHLET_TABLE = np.random.default_rng(2017).dirichlet(np.full(12, 0.5)).reshape(3, 4)
CATEGORICAL = {   # name: (family, parameters, the joint table they define)
    "copy of 4 values": ("discrete-copy", {"k": 4}, np.eye(4) / 4.0),
    "binary symmetric channel, flip 0.1": ("discrete-bsc", {"flip": 0.1},
                                           np.array([[0.45, 0.05], [0.05, 0.45]])),
    "3 x 4 Dirichlet(0.5) table": ("discrete-table",
                                   {"k_x": 3, "k_y": 4, "concentration": 0.5,
                                    "table": DIRICHLET_TABLE.tolist()}, DIRICHLET_TABLE),
}


def plug_in_standard_error(table: np.ndarray, n: int) -> float:
    """Delta-method standard error of the plug-in MI from ``n`` draws of ``table``:
    sqrt(Var[log p(x, y) / (p(x) p(y))] / n)."""
    ratio = table / np.outer(table.sum(axis=1), table.sum(axis=0))
    cells = table > 0
    log_ratio = np.log(ratio[cells])
    p = table[cells]
    return float(np.sqrt((p @ log_ratio**2 - (p @ log_ratio) ** 2) / n))


@pytest.mark.parametrize("case", sorted(CATEGORICAL))
def test_categorical_joints(case: str) -> None:
    """n = 2,000: within 0.01 nats of the sample's own plug-in value (on discrete data mixed
    KSG is the plug-in estimate up to terms of order 1 / (cell count)), and within
    max(0.03, 3 standard errors of the plug-in) of the exact MI (ln 4 = 1.386 with standard
    error 0; ln 2 - H(0.1) = 0.368 with 0.015; the table's)."""
    spec, params, table = CATEGORICAL[case]
    sample = mistgen.sample(spec, 2000, 1, 1, seed=0, params=params)
    assert sample.mi == pytest.approx(table_mi(table), abs=1e-12)
    est = KSG(discrete="auto")
    got = est.estimate(sample.x, sample.y)
    assert est.last_info["estimator_used"] == "mixed-KSG"
    assert est.last_info["discrete_x"] == [0] and est.last_info["discrete_y"] == [0]
    assert abs(got - plug_in_mi(sample.x, sample.y)) < 0.01
    tolerance = max(0.03, 3.0 * plug_in_standard_error(table, 2000))
    assert abs(got - sample.mi) < tolerance, (got, sample.mi, tolerance)


def gaussian_mixture_mi(means: np.ndarray) -> tuple[float, float]:
    """I(X; Y) for X uniform on len(means) labels and Y | X = j ~ N(means[j], 1):
    h(Y) - h(Y | X), h(Y) by adaptive quadrature; returns the value and quad's error bound."""
    def minus_p_log_p(t: float) -> float:
        p = float(np.mean(stats.norm.pdf(t, means)))
        return -p * np.log(p) if p > 0.0 else 0.0

    h, err = integrate.quad(minus_p_log_p, means.min() - 40.0, means.max() + 40.0,
                            epsabs=1e-12, epsrel=1e-12, limit=500)
    return h - 0.5 * np.log(2.0 * np.pi * np.e), err


@pytest.mark.parametrize("means", [(0.0, 1.0), (0.0, 1.5, 3.0), (0.0, 3.0)])
def test_discrete_continuous_mixture(means: tuple[float, ...]) -> None:
    """X uniform on {0, .., m-1}, Y | X ~ N(mean_X, 1). The label comes from quadrature of
    h(Y) with a reported error bound below 1e-11 nats (asserted); n = 2,000, within 0.03."""
    mu = np.asarray(means)
    truth, quad_error = gaussian_mixture_mi(mu)
    assert quad_error < 1e-11
    rng = np.random.default_rng(len(means))
    labels = rng.integers(0, mu.size, 2000)
    x = labels[:, None].astype(float)
    y = (mu[labels] + rng.standard_normal(2000))[:, None]
    est = KSG(discrete="auto")
    got = est.estimate(x, y)
    assert est.last_info["discrete_x"] == [0] and est.last_info["discrete_y"] == []
    assert abs(got - truth) < 0.03, (got, truth)


def test_auto_detection_of_discrete_columns() -> None:
    rng = np.random.default_rng(3)
    n = 1000
    columns = np.column_stack([
        rng.standard_normal(n),                    # continuous
        rng.integers(0, 5, n),                     # 5 values: discrete
        np.round(2.0 * rng.standard_normal(n)),    # ~15 values from 1000 rows: discrete
        np.round(rng.standard_normal(n), 1),       # ~60 values, above n / 20: continuous
        np.round(rng.standard_normal(n), 3),       # hundreds of values: continuous
    ]).astype(float)
    assert discrete_columns(columns).tolist() == [False, True, True, False, False]
    # Few rows: a continuous column is never called discrete.
    assert not discrete_columns(rng.standard_normal((15, 1))).any()
    # Without discrete columns "auto" is KSG algorithm 1.
    est = KSG(discrete="auto")
    est.estimate(columns[:, :1], columns[:, 3:])
    assert est.last_info["estimator_used"] == "KSG-1"


def test_many_labels_in_few_rows_warn_under_either_setting() -> None:
    # 20 labels in 100 rows: too many values for "auto" to take as categories, so both
    # settings break their ties with noise and read the codes as numbers, off by tenths of
    # a nat (MI 2.40 read 1.59 here)
    from mistmodel.caller_warnings import TiedDataWarning
    from mistmodel.estimators.ksg import many_valued_ties

    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, (100, 1)).astype(float)
    y = np.where(rng.random((100, 1)) < 0.9, x, rng.integers(0, 20, (100, 1)))
    assert many_valued_ties(np.hstack([rng.standard_normal((100, 1)), x])).tolist() == \
        [False, True]
    for setting in (False, "auto"):
        est = KSG(discrete=setting)
        with pytest.warns(TiedDataWarning, match="x column 0 holds integers that repeat "
                          "in 80% of its 100 rows, with 20 distinct values: too many values"):
            est.estimate(x, y)
        assert est.last_info["estimator_used"] == "KSG-1"
        assert est.tie_flags(x).tolist() == [True]
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            est.interval(x, y, n_boot=10)          # the sample warns; its replicates do not
        assert [w.category for w in shown] == [TiedDataWarning]
    # as numbers (discrete=True) the columns are discrete and the table's own warnings apply
    assert not KSG(discrete=True).tie_flags(x).any()
    # mi_matrix names the variable with the advice for its kind of column, under False too
    from mistmodel.matrix import mi_matrix
    with pytest.warns(TiedDataWarning, match="'0' .*too many values for discrete='auto'"):
        mi_matrix(np.hstack([x, y]), estimator=KSG())
    # a bootstrap with replacement repeats rows: its replicates' ties are not the sample's,
    # which warns once (here: none)
    class Resampled(KSG):
        bootstrap = "replacement"
    wide = rng.integers(0, 230, (200, 1)).astype(float)       # 36% repeats: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", TiedDataWarning)
        Resampled().interval(wide, wide + rng.standard_normal((200, 1)), n_boot=10)
    for run in (lambda est: est.interval(x, y, n_boot=10),
                lambda est: est.estimate_with_interval(x, y, n_boot=10)):
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            run(Resampled())
        assert [str(w.message)[:60] for w in shown] == [
            "KSG: x column 0 holds integers that repeat in 80% of its 100"]
    # a constant column is left out of the sample's check, as from its estimate
    with warnings.catch_warnings():
        warnings.simplefilter("error", TiedDataWarning)
        Resampled().interval(np.hstack([np.ones((200, 1)), wide]),
                             wide + rng.standard_normal((200, 1)), n_boot=10)
    # at n = 1,000 the 20 labels are categories: no tie warning from "auto"
    x, y = np.repeat(x, 10, axis=0), np.repeat(y, 10, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TiedDataWarning)
        KSG(discrete="auto").estimate(x, y)
    # continuous columns, and columns rounded to a decimal grid, do not warn
    c = rng.standard_normal((400, 2))
    assert many_valued_ties(np.round(10 * c)).all()       # the same grid as integers
    with warnings.catch_warnings():
        warnings.simplefilter("error", TiedDataWarning)
        KSG(discrete="auto").estimate(c[:, :1], c[:, 1:])
        KSG(discrete="auto").estimate(np.round(c[:, :1], 1), np.round(c[:, 1:], 1))


def test_plain_ksg_warns_on_a_discrete_column_and_auto_does_not() -> None:
    from mistmodel.caller_warnings import TiedDataWarning

    rng = np.random.default_rng(0)
    latent = rng.standard_normal((300, 2))
    u = (latent[:, :1] > 0).astype(float)
    v = (0.5 * latent[:, :1] + latent[:, 1:] > 0).astype(float)    # MI 0.044 nats
    c = rng.standard_normal((300, 1))
    with pytest.warns(TiedDataWarning, match="y column 1 has few distinct values.*"
                      "KSG\\(discrete='auto'\\)") as caught:
        plain = KSG().estimate(c, np.hstack([c + rng.standard_normal((300, 1)), v]))
    assert caught[0].filename == __file__ and np.isfinite(plain)
    with pytest.warns(TiedDataWarning, match="z column 0 .* few distinct values"):
        KSG().estimate_conditional(c, c + rng.standard_normal((300, 1)), u)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")                   # once per line and message
        KSG().interval(u, v, n_boot=10)                    # full sample and subsamples
    assert len(shown) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mixed = KSG(discrete="auto").estimate(u, v)
        KSG().estimate(c, c + rng.standard_normal((300, 1)))
    assert abs(mixed - 0.044) < 0.03


def test_discrete_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="discrete must be False, True or 'auto'"):
        KSG(discrete="yes")
    assert KSG(discrete="auto").settings()["discrete"] == "auto"


# -- conditional MI of discrete and mixed data ----------------------------------------------

def reference_mixed_cmi(x: np.ndarray, y: np.ndarray, z: np.ndarray, k: int) -> float:
    """One point at a time (Chebyshev): the mixed rule in the XZ, YZ and Z spaces."""
    def norm(a: np.ndarray, i: int) -> np.ndarray:
        return np.abs(a - a[i]).max(axis=1)

    n = x.shape[0]
    total = 0.0
    for i in range(n):
        dx, dy, dz = norm(x, i), norm(y, i), norm(z, i)
        dxz, dyz = np.maximum(dx, dz), np.maximum(dy, dz)
        joint = np.maximum(dxz, dyz)
        dxz[i] = dyz[i] = dz[i] = joint[i] = np.inf
        rho = np.sort(joint)[k - 1]
        if rho == 0.0:
            k_i = np.sum(joint == 0) + 1
            counts = [np.sum(d == 0) for d in (dxz, dyz, dz)]
        else:
            k_i = k
            counts = [np.sum(d < rho) for d in (dxz, dyz, dz)]
        total += (digamma(k_i) - digamma(counts[0] + 1) - digamma(counts[1] + 1)
                  + digamma(counts[2] + 1))
    return total / n


def categorical_cmi(p: np.ndarray) -> float:
    """Exact I(X;Y|Z) of a joint probability table p[x, y, z]."""
    pz = p.sum((0, 1))
    pxz, pyz = p.sum(1), p.sum(0)
    mask = p > 0
    ratio = p * pz[None, None, :] / (pxz[:, None, :] * pyz[None, :, :])
    return float(np.sum(p[mask] * np.log(ratio[mask])))


def draw_table(rng: np.random.Generator, p: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    cells = rng.choice(p.size, size=n, p=p.ravel())
    return tuple(a[:, None].astype(float) for a in np.unravel_index(cells, p.shape))


def test_mixed_conditional_counts_match_the_reference() -> None:
    from mistmodel.estimators.ksg import mixed_conditional_counts
    rng = np.random.default_rng(0)
    z = rng.integers(0, 3, (150, 1)).astype(float)
    x = np.hstack([z + rng.integers(0, 2, (150, 1)), rng.standard_normal((150, 1))])
    y = z + rng.standard_normal((150, 1))
    for algorithm in ("brute", "tree"):
        _, k_i, nxz, nyz, nz = mixed_conditional_counts(x, y, z, 3, "chebyshev", algorithm)
        value = np.mean(digamma(k_i) - digamma(nxz + 1) - digamma(nyz + 1) + digamma(nz + 1))
        assert value == pytest.approx(reference_mixed_cmi(x, y, z, 3), abs=1e-12)


@pytest.mark.parametrize("seed", [1, 2])
def test_discrete_conditional_mi_of_a_random_table(seed) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(3 * 3 * 2)).reshape(3, 3, 2)
    truth = categorical_cmi(p)
    values = [KSG(discrete="auto").estimate_conditional(*draw_table(rng, p, 4000))
              for _ in range(3)]
    assert np.mean(values) == pytest.approx(truth, abs=0.02)


def test_discrete_xor_and_chain() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 2, (2, 3000))
    xor = KSG(discrete="auto")
    value = xor.estimate_conditional(x[:, None] * 1.0, y[:, None] * 1.0, (x ^ y)[:, None] * 1.0)
    assert value == pytest.approx(np.log(2), abs=0.01)
    assert xor.last_info["estimator_used"] == "mixed-KSG (conditional)"
    assert xor.last_info["discrete_z"] == [0]
    z = rng.integers(0, 3, 3000)
    noisy = [np.where(rng.random(3000) < 0.3, rng.integers(0, 3, 3000), z) for _ in range(2)]
    chain = KSG(discrete="auto").estimate_conditional(*(a[:, None] * 1.0 for a in (*noisy, z)))
    assert abs(chain) < 0.01


def test_continuous_given_discrete_z() -> None:
    """Z uniform on {0, 1}; X | Z ~ N(Z, 1); Y = X + N(0, 1): I(X;Y|Z) = 0.5 log 2."""
    rng = np.random.default_rng(4)
    values = []
    for _ in range(3):
        z = rng.integers(0, 2, (3000, 1)).astype(float)
        x = z + rng.standard_normal((3000, 1))
        y = x + rng.standard_normal((3000, 1))
        values.append(KSG(discrete="auto").estimate_conditional(x, y, z))
    assert np.mean(values) == pytest.approx(0.5 * np.log(2), abs=0.03)


def test_fully_discrete_samples_with_few_rows_per_cell_warn_of_the_bias():
    many = {"discrete-table": {"k_x": [12, 16], "k_y": [12, 16]}}
    s = mistgen.sample("discrete-table", 300, 1, 1, 0, priors=many)
    est = KSG(discrete="auto")
    with pytest.warns(DiscreteBiasWarning, match=r"both discrete \(16 and 15 values, 115 joint "
                                                 r"cells at n = 300, 2\.6 rows per cell\): "
                                                 r"with fewer than 4 rows per cell"):
        value = est.estimate(s.x, s.y)
    assert value - s.mi > 0.1                                   # the bias it warns of
    numbers = KSG(discrete=True)
    with pytest.warns(DiscreteBiasWarning, match=r"115 joint cells at n = 300\): .* = 0\.142 "
                                                 r"nats"):
        numbers.estimate(s.x, s.y)
    assert numbers.last_info["plugin_bias"] == pytest.approx((115 - 16 - 15 + 1) / 600)
    copy = mistgen.sample("discrete-copy", 300, 1, 1, 0, params={"k": 15})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiscreteBiasWarning)
        KSG(discrete="auto").estimate(copy.x, copy.y)           # 15 cells: no bias to warn of
        KSG(discrete="auto").estimate(s.x, s.y + np.random.default_rng(0).random((300, 1)))
    with pytest.warns(DiscreteBiasWarning) as caught:
        independence_test(KSG(discrete="auto"), s.x, s.y, 9)
        other = mistgen.sample("discrete-table", 300, 1, 1, 1, priors=many)
        mi_matrix(pd.DataFrame({"a": s.x[:, 0], "b": s.y[:, 0], "c": other.x[:, 0]}),
                  estimator=KSG(discrete="auto"), permutations=3)
    messages = [str(w.message) for w in caught if w.category is DiscreteBiasWarning]
    assert len(messages) == 2 and messages[1].startswith("mi_matrix: 3 of its estimates warned")


# -- discrete columns as categories (discrete="auto") ---------------------------------------

def reference_categorical(parts: tuple[np.ndarray, ...], flags: tuple[np.ndarray, ...],
                          k: int, metric: str) -> float:
    """One point at a time, from the definition: distance 0 between rows that share a
    discrete value and infinite between rows that do not; the continuous columns by
    ``metric``; neighbours within the row's stratum (its k-th, or its stratum's farthest
    other row); rows alone in their stratum left out. I(X;Y) for two parts, I(X;Y|Z) for
    three."""
    keep = np.ones(parts[0].shape[0], dtype=bool)
    codes = np.hstack([a[:, f] for a, f in zip(parts, flags)])
    continuous = any((~f).any() for f in flags)
    if continuous:
        for i in range(len(keep)):
            keep[i] = np.count_nonzero((codes == codes[i]).all(axis=1)) > 1
    parts = [a[keep] for a in parts]
    n = parts[0].shape[0]

    def dist(a: np.ndarray, f: np.ndarray, i: int) -> np.ndarray:
        diff = np.abs(a[:, ~f] - a[i, ~f])
        d = (diff.max(axis=1, initial=0.0) if metric == "chebyshev"
             else np.sqrt((diff ** 2).sum(axis=1)))
        return np.where((a[:, f] == a[i, f]).all(axis=1), d, np.inf)

    total = 0.0
    for i in range(n):
        d = [dist(a, f, i) for a, f in zip(parts, flags)]
        spaces = ([d[0], d[1]] if len(parts) == 2 else
                  [np.maximum(d[0], d[2]), np.maximum(d[1], d[2]), d[2]])
        joint = np.maximum.reduce(d)
        for s in spaces + [joint]:
            s[i] = np.inf
        stratum = np.count_nonzero(np.isfinite(joint))
        k_i = min(k, stratum)
        rho = np.sort(joint)[k_i - 1] if k_i else 0.0
        if rho == 0.0:
            k_i, counts = np.sum(joint == 0) + 1, [np.sum(s == 0) for s in spaces]
        else:
            counts = [np.sum(s < rho) for s in spaces]
        signs = [-1, -1] if len(parts) == 2 else [-1, -1, 1]
        total += digamma(k_i) + sum(c * digamma(m + 1) for c, m in zip(signs, counts))
    return total / n + (digamma(n) if len(parts) == 2 else 0.0)


def strata_sample(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """X: a discrete column whose value v is seen v times (v = 1 .. 11; 66 rows), and a
    continuous one; Y: continuous and discrete; Z: discrete and continuous."""
    label = rng.permutation(np.repeat(np.arange(1, 12), np.arange(1, 12)))
    n = label.size
    x = np.column_stack([label * 1.0, label + rng.standard_normal(n)])
    y = np.column_stack([x[:, 1] + rng.standard_normal(n), rng.integers(0, 2, n)])
    z = np.column_stack([rng.integers(0, 2, n), rng.standard_normal(n)])
    return x, y, z


@pytest.mark.parametrize("metric", ["chebyshev", "euclidean"])
def test_categories_match_the_reference(metric: str) -> None:
    x, y, z = strata_sample(np.random.default_rng(5))
    flags = (np.array([True, False]), np.array([False, True]), np.array([True, False]))
    algorithms = ("tree", "brute") if metric == "chebyshev" else ("brute",)
    for algorithm in algorithms:
        est = KSG(k=4, metric=metric, algorithm=algorithm, discrete="auto", standardize=False,
                  jitter=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")    # rows alone in their stratum
            got = est.estimate(x, y)
            assert est.last_info["discrete_as"] == "categories"
            assert est.last_info["rows_alone_in_stratum"] > 0
            # discrete and continuous columns on both sides: the chain rule's four terms,
            # Y's side first (its discrete column takes 2 values, X's 11)
            assert "I(Yc;Xc|Yd)" in est.last_info["chain_rule"]
            xd, xc, yc, yd = x[:, :1], x[:, 1:], y[:, :1], y[:, 1:]
            on, off = np.array([True]), np.array([False])
            terms = [((yd, xd), (on, on)), ((yd, xc, xd), (on, off, on)),
                     ((yc, xc, yd), (off, off, on)),
                     ((yc, xd, np.hstack([yd, xc])), (off, on, np.array([True, False])))]
            assert got == pytest.approx(sum(reference_categorical(parts, f, 4, metric)
                                            for parts, f in terms), abs=1e-10)
            got = est.estimate_conditional(x, y, z)
            assert got == pytest.approx(reference_categorical((x, y, z), flags, 4, metric),
                                        abs=1e-10)
    # fully discrete: every row kept, the coincidence counts (3.7 rows per cell: it warns)
    u, v = x[:, :1], y[:, 1:]
    with pytest.warns(DiscreteBiasWarning, match="3.7 rows per cell"):
        got = KSG(discrete="auto").estimate(u, v)
    assert got == pytest.approx(
        reference_categorical((u, v), (np.array([True]), np.array([True])), 5, "chebyshev"),
        abs=1e-10)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_fully_discrete_cell_counts_equal_the_neighbour_search(k: int) -> None:
    """Where every column is discrete, the estimate comes from cell sizes; the slow
    reference searches neighbours row by row. Tables with lone cells, I(X;Y) and
    I(X;Y|Z)."""
    rng = np.random.default_rng(30 + k)
    on = np.array([True, True])
    for n, values in ((40, 6), (90, 12), (200, 4)):
        x, y = rng.integers(0, values, (n, 2)) * 1.0, rng.integers(0, values, (n, 1)) * 1.0
        z = rng.integers(0, 3, (n, 1)) * 1.0
        est = KSG(k=k, discrete="auto")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DiscreteBiasWarning)
            got = est.estimate(x, y)
            assert est.last_info["algorithm_used"] == "cell counts"
            assert got == pytest.approx(reference_categorical((x, y), (on, on[:1]), k,
                                                              "chebyshev"), abs=1e-10)
            got = est.estimate_conditional(x, y, z)
            assert got == pytest.approx(reference_categorical((x, y, z), (on, on[:1], on[:1]),
                                                              k, "chebyshev"), abs=1e-10)


def test_categories_do_not_depend_on_the_coding() -> None:
    rng = np.random.default_rng(6)
    label = rng.integers(0, 6, 500)
    y = np.sin(label) + rng.standard_normal(500)
    recoded = np.array([40.0, -3.0, 7.5, 0.0, 1e6, 2.0])[label]
    a = KSG(discrete="auto").estimate(label[:, None] * 1.0, y[:, None])
    b = KSG(discrete="auto").estimate(recoded[:, None], y[:, None])
    assert a == b


@pytest.mark.parametrize("n", [100, 300])
def test_many_labels_independent_of_a_continuous_column(n: int) -> None:
    """15 labels: as numbers, the mixed rule read 0.17 (n = 100) and 0.26 (n = 300) here."""
    rng = np.random.default_rng(n)
    values = [KSG(discrete="auto").estimate(rng.integers(0, 15, (n, 1)) * 1.0,
                                            rng.standard_normal((n, 1))) for _ in range(10)]
    assert abs(np.mean(values)) < 0.03, values


def test_rounded_column_and_many_ordered_labels() -> None:
    """A Gaussian column rounded to 0.1 (about 65 values at n = 2,000, taken as discrete):
    about 0 when independent of Y (0.18 with the values as numbers). 15 ordered labels with
    Y | X ~ N(0.3 X, 1): the quadrature value (0.485) within 0.05 at n = 300 (0.64 as
    numbers)."""
    rng = np.random.default_rng(7)
    xr = np.round(rng.standard_normal((2000, 1)), 1)
    est = KSG(discrete="auto")
    value = est.estimate(xr, rng.standard_normal((2000, 1)))
    assert est.last_info["discrete_x"] == [0] and abs(value) < 0.03
    truth, _ = gaussian_mixture_mi(0.3 * np.arange(15))
    values = []
    for _ in range(5):
        labels = rng.integers(0, 15, 300)
        values.append(KSG(discrete="auto").estimate(
            labels[:, None] * 1.0, (0.3 * labels + rng.standard_normal(300))[:, None]))
    assert abs(np.mean(values) - truth) < 0.05, (values, truth)


def test_rows_alone_in_their_stratum_warn_and_none_sharing_is_refused() -> None:
    from mistmodel.caller_warnings import SmallSampleWarning

    rng = np.random.default_rng(8)
    labels = np.concatenate([np.arange(15), rng.integers(15, 19, 185)])[:, None] * 1.0
    est = KSG(discrete="auto")
    with pytest.warns(SmallSampleWarning, match="15 of 200 rows are alone in their "
                                                "combination of discrete values"):
        est.estimate(labels, rng.standard_normal((200, 1)))
    assert est.last_info["rows_alone_in_stratum"] == 15
    pairs = np.column_stack([np.repeat(np.arange(10), 10), np.tile(np.arange(10), 10)]) * 1.0
    with pytest.raises(ValueError, match="100 of 100 rows are alone"):
        KSG(discrete="auto").estimate(pairs, rng.standard_normal((100, 1)))


def test_fully_discrete_conditional_samples_with_few_rows_per_cell_warn() -> None:
    """Random 8 x 8 x 4 tables: +0.17 nats at about 2 rows per joint cell (n = 300), within
    0.03 at about 13 (n = 3,000)."""
    rng = np.random.default_rng(9)
    p = rng.dirichlet(np.ones(256)).reshape(8, 8, 4)
    est = KSG(discrete="auto")
    with pytest.warns(DiscreteBiasWarning, match=r"X, Y and Z are all discrete \(8, 8 and 4 "
                                                 r"values, \d+ joint cells at n = 300"):
        high = est.estimate_conditional(*draw_table(rng, p, 300))
    assert est.last_info["discrete_cells"]["n"] == 300 and high - categorical_cmi(p) > 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiscreteBiasWarning)
        close = est.estimate_conditional(*draw_table(rng, p, 3000))
    assert abs(close - categorical_cmi(p)) < 0.03


def test_conditional_tables_warn_where_categories_and_numbers_read_high() -> None:
    """X and Y independent given Z on 8 x 8 x 8 values (benchmarks/ksg_discrete.py): as
    categories +0.065 nats at about 4 rows per joint cell (n = 1,000), below the 5 it warns
    from; as numbers +0.37 at n = 100 and +0.08 at about 9 rows per cell (n = 3,000), below
    the 12 it warns from; as categories within 0.03 at n = 3,000, unwarned."""
    rng = np.random.default_rng(3)
    pz = rng.dirichlet(np.ones(8))
    px, py = (rng.dirichlet(np.ones(8), size=8).T for _ in range(2))
    p = px[:, None, :] * py[None, :, :] * pz[None, None, :]
    assert categorical_cmi(p) == pytest.approx(0.0, abs=1e-12)
    sparse, ample = draw_table(rng, p, 1000), draw_table(rng, p, 3000)
    categories, numbers = KSG(discrete="auto"), KSG(discrete=True)
    with pytest.warns(DiscreteBiasWarning, match=r"all discrete .* rows per cell\): with fewer "
                                                 r"than 5 rows per cell the estimate reads high"):
        assert categories.estimate_conditional(*sparse) > 0.04
    for sample in (draw_table(rng, p, 100), ample):
        with pytest.warns(DiscreteBiasWarning, match=r"with the values as numbers and fewer "
                                                     r"than 12 rows per cell"):
            assert numbers.estimate_conditional(*sample) > 0.05
    cells = numbers.last_info["discrete_cells"]
    excess = (cells["xyz"] - len(np.unique(np.hstack(ample[::2]), axis=0))
              - len(np.unique(np.hstack(ample[1:]), axis=0)) + cells["z"])
    assert numbers.last_info["plugin_bias"] == pytest.approx(excess / 6000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiscreteBiasWarning)
        assert abs(categories.estimate_conditional(*ample)) < 0.03
        numbers.estimate_conditional(*draw_table(rng, p[:2, :2, :2] / p[:2, :2, :2].sum(), 3000))


def test_rows_alone_warn_once_under_intervals_and_permutations() -> None:
    """Subsamples and permuted copies leave other rows alone: only the sample's own
    estimate warns."""
    from mistmodel.caller_warnings import SmallSampleWarning

    rng = np.random.default_rng(10)
    labels = np.concatenate([np.arange(8), rng.integers(8, 18, 112)])[:, None] * 1.0
    y = np.column_stack([rng.standard_normal(120), rng.integers(0, 2, 120)])
    for run in (lambda est: est.interval(labels, y, n_boot=30),
                lambda est: independence_test(est, labels, y, 19)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run(KSG(discrete="auto"))
        messages = [str(w.message) for w in caught if w.category is SmallSampleWarning]
        assert len(messages) == 1 and "of 120 rows are alone" in messages[0], messages


def test_sparse_groups_beside_continuous_columns_warn_and_too_few_rows_kept_refuse() -> None:
    """X on 9 values, Y = (9 values, a normal column), all independent: 81 cells of the
    X-Yd table at n = 300 (3.7 rows each) warn; at n = 1,000 (12 rows each) they do not.
    With a normal column on each side too."""
    rng = np.random.default_rng(11)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        return (rng.integers(0, 9, (n, 1)) * 1.0,
                np.column_stack([rng.integers(0, 9, n), rng.standard_normal(n)]))

    with pytest.warns(DiscreteBiasWarning, match=r"their table has \d+ cells at n = 300 "
                                                 r"\(3\.\d rows per cell\)\. The estimate is "
                                                 r"I\(X;Yd\) \+ I\(X;Yc\|Yd\)"):
        KSG(discrete="auto").estimate(*draw(300))
    x, y = draw(300)
    with pytest.warns(DiscreteBiasWarning, match=r"X has discrete columns \(9 values beside "
                                                 r"continuous ones\) and Y has discrete "
                                                 r"columns .* \(3\.\d rows per cell\)\. The "
                                                 r"estimate is I\(Xd;Yd\) \+ I\(Xd;Yc\|Yd\) "
                                                 r"\+ I\(Xc;Yc\|Xd\) \+ I\(Xc;Yd\|Xd,Yc\)"):
        KSG(discrete="auto").estimate(np.column_stack([x, rng.standard_normal(300)]), y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiscreteBiasWarning)
        KSG(discrete="auto").estimate(*draw(1000))
    # 98 of 100 rows alone: the 2 left are fewer than k + 2
    a = np.repeat(np.arange(10), 10)
    b = np.tile(np.arange(10), 10)
    b[1] = 0
    x = np.column_stack([a, b]) * 1.0
    with pytest.raises(ValueError, match="98 of 100 rows are alone .* which leaves 2 to "
                                         "estimate from, fewer than k \\+ 2 = 7"):
        KSG(discrete="auto").estimate(x, a[:, None] + rng.standard_normal((100, 1)))


@pytest.mark.filterwarnings("ignore::mistmodel.caller_warnings.SmallSampleWarning")
def test_a_discrete_side_against_mixed_columns_is_estimated_by_the_chain_rule() -> None:
    """X on 6 labels; Y = (X's label kept with probability 0.9, else uniform; a normal
    column). Searching the neighbours within the cells of the X-Yd table read +0.23 nats
    over 10 samples at n = 300 (benchmarks/ksg_categories.py), unwarned: rows alone in a
    cell, left out, are the rarest combinations. I(X;Yd) + I(X;Yc|Yd) reads +0.03."""
    rng = np.random.default_rng(21)
    channel = np.full(6, 0.1 / 6) + 0.9 * (np.arange(6) == 0)
    truth = np.log(6) + float(np.sum(channel * np.log(channel)))
    errors, warned = [], 0
    for _ in range(4):
        x = rng.integers(0, 6, 300)
        kept = np.where(rng.random(300) < 0.9, x, rng.integers(0, 6, 300))
        x, y = x[:, None] * 1.0, np.column_stack([rng.standard_normal(300), kept])
        est = KSG(discrete="auto")
        # about 4% of the rows alone in their cell, times the estimate: 0.05 nats or so, where
        # the rows-alone rule warns (about half the samples; needlessly here)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DiscreteBiasWarning)
            value = est.estimate(x, y)
            info = est.last_info
            assert info["chain_rule"]["I(X;Yd)"] == KSG(discrete="auto").estimate(x, y[:, 1:])
            assert info["chain_rule"]["I(X;Yc|Yd)"] == \
                KSG(discrete="auto").estimate_conditional(x, y[:, :1], y[:, 1:])
            assert KSG(discrete="auto").estimate(y, x) == value       # either way round
        biased = [str(w.message) for w in caught if w.category is DiscreteBiasWarning]
        assert all("alone in their cell" in message for message in biased), biased
        warned += bool(biased)
        assert info["estimator_used"] == "mixed-KSG (chain rule)"
        assert info["discrete_x"] == [0] and info["discrete_y"] == [1]
        assert value == pytest.approx(sum(info["chain_rule"].values()), abs=1e-12)
        errors.append(value - truth)
    assert abs(np.mean(errors)) < 0.08 and warned < 4, (errors, warned)


def test_mixed_columns_on_both_sides_are_estimated_by_the_chain_rule() -> None:
    """X = (9 labels, a normal column), Y = (9 labels, a normal column), the labels
    independent and the normal columns correlated 0.8 (MI 0.511): one search within the 81
    cells of the label table read -0.25 nats at n = 1,000 (12 rows per cell), unwarned
    (benchmarks/ksg_categories.py); the chain rule reads -0.03. Both sides' labels take 9
    values, so it is the mean of both orders, whichever side is called X."""
    rng = np.random.default_rng(22)
    errors = []
    for _ in range(2):
        e = rng.standard_normal((1000, 2))
        x = np.column_stack([rng.integers(0, 9, 1000), e[:, 0]])
        y = np.column_stack([0.8 * e[:, 0] + 0.6 * e[:, 1], rng.integers(0, 9, 1000)])
        est = KSG(discrete="auto")
        with warnings.catch_warnings():
            warnings.simplefilter("error", DiscreteBiasWarning)
            value = est.estimate(x, y)
        terms = est.last_info["chain_rule"]
        assert list(terms) == ["I(Xd;Yd)", "I(Xd;Yc|Yd)", "I(Xc;Yc|Xd)", "I(Xc;Yd|Xd,Yc)",
                               "I(Yd;Xd)", "I(Yd;Xc|Xd)", "I(Yc;Xc|Yd)", "I(Yc;Xd|Yd,Xc)"]
        assert est.last_info["chain_rule_orders"] == 2
        assert value == pytest.approx(sum(terms.values()) / 2, abs=1e-12)
        assert terms["I(Xc;Yc|Xd)"] == KSG(discrete="auto").estimate_conditional(
            x[:, 1:], y[:, :1], x[:, :1])
        assert est.estimate(y, x) == value
        errors.append(value + 0.5 * np.log(1 - 0.8**2))
    assert abs(np.mean(errors)) < 0.1, errors


def test_the_chain_rule_searches_within_the_side_with_fewer_discrete_values() -> None:
    """X = (15 labels, a normal column), Y = (2 labels, a normal column), the normal columns
    correlated 0.8 (MI 0.511), n = 300: with X's side first, I(Xc;Yc|Xd) is searched
    within 15 groups of 20 rows and the sum read -0.22 on these 4 samples; with Y's, within
    2 groups, -0.05. The side with fewer values comes first, whichever is called X."""
    rng = np.random.default_rng(23)
    errors = []
    for _ in range(4):
        e = rng.standard_normal((300, 2))
        x = np.column_stack([rng.integers(0, 15, 300), e[:, 0]])
        y = np.column_stack([rng.integers(0, 2, 300), 0.8 * e[:, 0] + 0.6 * e[:, 1]])
        est = KSG(discrete="auto")
        value = est.estimate(x, y)
        assert list(est.last_info["chain_rule"]) == [
            "I(Yd;Xd)", "I(Yd;Xc|Xd)", "I(Yc;Xc|Yd)", "I(Yc;Xd|Yd,Xc)"]
        assert est.last_info["discrete_cells"]["x"] == 15
        assert est.estimate(y, x) == value
        errors.append(value + 0.5 * np.log(1 - 0.8**2))
    assert abs(np.mean(errors)) < 0.08, errors


def test_one_estimator_shared_by_threads_runs_the_chain_rule_without_error() -> None:
    """The chain rule's terms hand their run information back instead of leaving it on
    the estimator, so another thread's estimate in between cannot break it."""
    import sys
    import threading

    rng = np.random.default_rng(25)
    x = np.column_stack([rng.integers(0, 4, 200), rng.standard_normal(200)])
    y = np.column_stack([rng.integers(0, 4, 200), rng.standard_normal(200)])
    est, errors = KSG(discrete="auto"), []

    def work(a: np.ndarray, b: np.ndarray) -> None:
        try:
            for _ in range(60):
                est.estimate(a, b)
        except Exception as exc:          # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(x, y)),
                   threading.Thread(target=work, args=(x[:, 1:], y[:, 1:]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors


def test_numbers_do_not_call_continuous_columns_a_table() -> None:
    """discrete=True takes every column as discrete; on continuous X, Y and Z given Z the
    table warning must not fire (each value its own cell)."""
    rng = np.random.default_rng(24)
    z = rng.standard_normal((1000, 1))
    x, y = z + rng.standard_normal((1000, 1)), z + rng.standard_normal((1000, 1))
    est = KSG(discrete=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiscreteBiasWarning)
        est.estimate_conditional(x, y, z)
    assert "plugin_bias" not in est.last_info
    # a table of 25 values per column at n = 300 is one (each value seen 12 times)
    x, y, z = (rng.integers(0, 25, (300, 1)) * 1.0 for _ in range(3))
    with pytest.warns(DiscreteBiasWarning, match="with the values as numbers and fewer than "
                                                 "12 rows per cell"):
        est.estimate_conditional(x, y, z)
    assert "plugin_bias" in est.last_info


def test_matrices_and_scores_gather_the_rows_alone_warnings() -> None:
    from mistmodel.caller_warnings import SmallSampleWarning
    from mistmodel.selection import mutual_info_scores

    rng = np.random.default_rng(12)
    labels = np.concatenate([np.arange(15), rng.integers(15, 19, 185)]) * 1.0
    table = pd.DataFrame({"a": labels, "b": rng.standard_normal(200),
                          "c": rng.standard_normal(200)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mi_matrix(table, estimator=KSG(discrete="auto"))
        mutual_info_scores(table[["b", "c"]].to_numpy(), labels, estimator=KSG(discrete="auto"))
    messages = [str(w.message) for w in caught if w.category is SmallSampleWarning]
    assert messages == [
        "mi_matrix: 2 of its estimates warned; the first: KSG: 15 of 200 rows are alone in "
        "their combination of discrete values (19 combinations) and were left out of the "
        "estimate; more rows per value, or fewer discrete columns, keep them in.",
        "mutual_info_scores: 2 of its estimates warned; the first: KSG: 15 of 200 rows are "
        "alone in their combination of discrete values (19 combinations) and were left out "
        "of the estimate; more rows per value, or fewer discrete columns, keep them in."]


def test_copies_and_replicates_with_too_few_rows_say_so() -> None:
    """The sample keeps 22 of 30 rows; permuting Y leaves a copy with 6 (fewer than k + 2),
    and subsamples of 20 rows of two 10-valued columns keep too few: each is refused in
    the copy's or replicate's terms, and the sample's own warning is kept."""
    from mistmodel.estimators import TooFewRowsError

    rng = np.random.default_rng(15)
    a = rng.integers(0, 6, 30)
    b = (a + (rng.random(30) < 0.3) * rng.integers(0, 6, 30)) % 6
    table = pd.DataFrame({"a": a * 1.0, "b": b * 1.0, "c": rng.standard_normal(30)})
    x, y = table[["a"]].to_numpy(), table[["b", "c"]].to_numpy()
    est = KSG(discrete="auto")
    with pytest.warns(DiscreteBiasWarning):
        est.estimate(x, y)
    assert est.last_info["rows_used"] == 22 and est.last_info["rows_used_in"] == "I(X;Yc|Yd)"
    with pytest.raises(TooFewRowsError, match="could not estimate a permuted copy of the "
                                              "sample .*leaves 6 to estimate from"), \
            pytest.warns(DiscreteBiasWarning):
        independence_test(est, x, y, 50)
    with pytest.raises(TooFewRowsError, match="mi_matrix: KSG could not estimate a permuted "
                                              "copy of a pair"), \
            pytest.warns(DiscreteBiasWarning, match="mi_matrix: KSG: X is discrete"):
        mi_matrix(table, groups={"X": ["a"], "Y": ["b", "c"]}, estimator=est, permutations=50)
    pairs = np.random.default_rng(0).integers(0, 10, (40, 2)) * 1.0
    with pytest.warns(RuntimeWarning, match="20 of 20 bootstrap replicates \\(20 rows each\\) "
                                            "left too few usable rows"):
        lo, hi = est.interval(pairs, np.random.default_rng(1).standard_normal((40, 1)),
                              n_boot=20)
    assert np.isnan(lo) and np.isnan(hi)


def test_gathered_warnings_do_not_replace_an_error_in_flight() -> None:
    from mistmodel.caller_warnings import warn
    from mistmodel.estimators import TooFewRowsError
    from mistmodel.tabular import warned_once

    with pytest.warns(DiscreteBiasWarning, match="who: sparse"), \
            pytest.raises(TooFewRowsError, match="original"):
        with warned_once("who"):
            warn("sparse", DiscreteBiasWarning)
            raise TooFewRowsError("original")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # warnings raised as errors
        with pytest.raises(TooFewRowsError, match="original"):
            with warned_once("who"):
                warn("sparse", DiscreteBiasWarning)
                raise TooFewRowsError("original")
        with pytest.raises(KeyboardInterrupt):
            with warned_once("who"):
                warn("sparse", DiscreteBiasWarning)
                raise KeyboardInterrupt


def test_sparse_classes_of_one_side_warn_that_the_estimate_can_read_low() -> None:
    """15 classes cut from a Gaussian X at n = 50 (3.3 rows per class): I = ln 15, read
    about 0.4 low (benchmarks/class_scores.py), with a warning saying so."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((50, 1))
    classes = np.digitize(x[:, 0], stats.norm.ppf(np.linspace(0, 1, 16)[1:-1]))[:, None] * 1.0
    with pytest.warns(DiscreteBiasWarning, match=r"the discrete columns of Y split the n = 50 "
                                                 r"rows into 15 groups .* can read far low"):
        value = KSG(discrete="auto").estimate(x, classes)
    assert value < np.log(15) - 0.2


def test_few_rows_per_group_of_a_discrete_z_warn_that_the_estimate_reads_low() -> None:
    """Z on 19 labels, X and Y Gaussian with I(X;Y|Z) = 0.223: about 0 at 3 rows per group
    (n = 60; benchmarks/ksg_categories.py), with a warning; none at 53 rows (n = 1,000)."""
    def draw(n: int, seed: int) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng(seed)
        z = rng.integers(0, 19, (n, 1)) * 1.0
        e = rng.standard_normal((n, 2))
        return 3 * z / 19 + e[:, :1], 3 * z / 19 + 0.6 * e[:, :1] + 0.8 * e[:, 1:], z

    with pytest.warns(DiscreteBiasWarning, match=r"Z's discrete columns split the n = 60 rows "
                                                 r"into \d+ groups .* can read far low"):
        value = KSG(discrete="auto").estimate_conditional(*draw(60, 0))
    assert value < 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiscreteBiasWarning)
        value = KSG(discrete="auto").estimate_conditional(*draw(1000, 1))
    assert abs(value - 0.223) < 0.06


def test_a_table_with_many_rows_alone_in_their_cell_warns() -> None:
    """12 labels, Y = X's label kept with probability 0.9, else uniform (MI 1.959): at
    n = 100 the table has about 5 rows per observed cell, above the rows-per-cell rule,
    but a few full cells on the diagonal beside many near-empty ones, and the estimate
    reads about +0.2 nats as categories (benchmarks/ksg_discrete.py --channels-only),
    unwarned until the rows alone in their cell were counted (about 9% of them, times an
    estimate of about 2 nats). It now warns as categories, as numbers and beside a
    continuous column (the chain rule); at n = 3,000 (1% alone) nothing warns."""
    channel = np.full((12, 12), 0.1 / 144) + np.eye(12) * 0.9 / 12
    truth = table_mi(channel)
    rng = np.random.default_rng(23)
    for n, warned in ((100, True), (3000, False)):
        errors = []
        for _ in range(4):
            x, y = draw_table(rng, channel, n)
            with_normal = np.column_stack([y, rng.standard_normal(n)])
            for est, (a, b) in ((KSG(discrete="auto"), (x, y)), (KSG(discrete=True), (x, y)),
                                (KSG(discrete="auto"), (x, with_normal))):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    value = est.estimate(a, b)
                found = [str(w.message) for w in caught if w.category is DiscreteBiasWarning]
                alone = est.last_info["rows_alone_in_cell"]
                assert bool(found) == warned, (n, alone, found)
                if found:                   # share alone x the table's estimate
                    table = est.last_info.get("chain_rule", {}).get("I(X;Yd)", value)
                    assert f"has {alone} rows ({alone / n:.0%}) alone in their cell" in found[0]
                    assert f"({alone / n * table:.3f} nats here)" in found[0], found
                if est.discrete == "auto" and b is y:
                    errors.append(value - truth)
        if warned:
            assert np.mean(errors) > 0.1, errors
        else:
            assert abs(np.mean(errors)) < 0.05, errors


def test_continuous_columns_taken_as_numbers_do_not_warn_of_rows_alone() -> None:
    """discrete=True on continuous data puts every row alone in its cell, and on
    zero-inflated columns (its documented use) every row off the point mass; neither is a
    table, and nothing warns, at any n."""
    rng = np.random.default_rng(24)
    x = rng.standard_normal((300, 1))
    y = x + rng.standard_normal((300, 1))
    est = KSG(discrete=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiscreteBiasWarning)
        est.estimate(x, y)
        assert est.last_info["rows_alone_in_cell"] == 300
        for n in (300, 3000):
            e = rng.standard_normal((n, 2))
            zero = rng.random(n) < 0.6
            x = np.where(zero, 0.0, e[:, 0])[:, None]
            y = np.where(zero, 0.0, e[:, 0] + e[:, 1])[:, None]
            est.estimate(x, y)
            assert est.last_info["rows_alone_in_cell"] > 0.3 * n


def test_bootstrap_replicates_take_the_samples_discrete_columns() -> None:
    """The replicates of a bootstrap take as discrete the columns the sample's estimate
    does, whatever discrete_columns decides on their n / 2 rows: a column rounded to 0.1
    (about 65 values at n = 2,000: below n / 20 = 100, discrete) stays discrete where 1,000
    rows allow only 50 values; one of 124 values (continuous) stays continuous, though
    1,000 of its rows hold fewer than the 100 values the full sample's n would allow; a
    column a replicate drops as constant is left out of its flags."""
    seen = []

    class Spy(KSG):
        def _estimate_checked(self, x, y, seed):
            value, info = super()._estimate_checked(x, y, seed)
            seen.append((x.shape, info.get("discrete_x"), info.get("dropped_x")))
            return value, info

    rng = np.random.default_rng(25)
    y = rng.standard_normal((2000, 1))
    rounded = np.round(0.5 * y + 0.9 * rng.standard_normal((2000, 1)), 1)
    wide = np.round(rng.standard_t(3, (2000, 1)), 1)
    rare = (np.arange(2000) == 7)[:, None] * 1.0         # one row differs: often constant
    assert KSG()._discrete_flags(rounded).tolist() == [False]      # discrete=False: flags off
    assert discrete_columns(rounded).tolist() == [True] and \
        not discrete_columns(rounded[:1000])[0]
    x = np.hstack([rounded, wide, rare])
    assert discrete_columns(x).tolist() == [True, False, True]
    Spy(discrete="auto").interval(x, y, n_boot=8)
    assert len(seen) == 9                                 # the estimate and 8 replicates
    for shape, flags, dropped in seen:
        kept = [j for j in range(3) if j not in dropped]
        assert flags == [kept.index(j) for j in (0, 2) if j in kept], (flags, dropped)
    assert any(2 in dropped for _, _, dropped in seen)    # some replicate dropped it
