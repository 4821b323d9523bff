"""Split-conformal calibration of MIST-QR intervals."""
import warnings

import numpy as np
import pytest

from mistmodel import MIST
from mistmodel.calibration import calibration_problem, conformal_factor, widen
from mistmodel.caller_warnings import UncalibratedLevelWarning


def noisy_intervals(rng, m, half_width):
    """Truths and intervals centred on a noisy guess: raw coverage depends on half_width."""
    truth = rng.uniform(0.0, 5.0, m)
    centre = truth + rng.standard_normal(m)
    return centre - half_width, centre + half_width, truth


@pytest.mark.parametrize("half_width", [0.3, 1.0, 3.0])
@pytest.mark.parametrize("level", [0.8, 0.9])
def test_calibrated_intervals_cover_fresh_data_at_the_level(half_width, level):
    rng = np.random.default_rng(0)
    lo, hi, truth = noisy_intervals(rng, 2000, half_width)
    factor = conformal_factor(lo, hi, truth, level)
    lo2, hi2, truth2 = noisy_intervals(rng, 20000, half_width)
    raw = np.mean((truth2 >= lo2) & (truth2 <= hi2))
    a, b = widen(lo2, hi2, factor)
    covered = np.mean((truth2 >= a) & (truth2 <= b))
    assert abs(covered - level) < 0.025, (raw, covered)
    # too narrow raw intervals are widened, too wide ones narrowed
    assert (factor > 0) == (raw < level)


def test_factor_is_the_conformal_order_statistic():
    lo, hi = np.zeros(9), np.ones(9)
    truth = np.array([-4.0, -3.0, -2.0, -1.0, 0.5, 2.0, 3.0, 4.0, 5.0])
    # scores: 4, 3, 2, 1, -0.5, 1, 2, 3, 4; level 0.8 -> ceil(10 * 0.8) = 8th smallest = 4
    assert conformal_factor(lo, hi, truth, 0.8) == 4.0
    assert conformal_factor(lo, hi, truth, 0.5) == 2.0


def test_too_few_points_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="too few"):
        conformal_factor(np.zeros(5), np.ones(5), np.ones(5), 0.9)
    with pytest.raises(ValueError, match="same length"):
        conformal_factor(np.zeros(5), np.ones(4), np.ones(5), 0.5)
    for level in (0.0, -0.5, 1.0, 1.5, float("nan"), True, "0.9"):
        with pytest.raises(ValueError, match="level must be a number strictly between"):
            conformal_factor(np.zeros(50), np.ones(50), np.ones(50), level)
    truth = np.full(20, 0.5)
    truth[:2] = np.nan
    with pytest.raises(ValueError, match="truth holds 2 NaN or infinite values"):
        conformal_factor(np.zeros(20), np.ones(20), truth, 0.9)


def test_bad_levels_are_refused_before_any_work_and_named_right():
    qr = MIST.load(variant="mist_qr", device="cpu")
    rng = np.random.default_rng(0)
    pair = (rng.standard_normal((50, 1)), rng.standard_normal((50, 1)))
    for level in ("0.9", None, [0.9], 1.0):
        with pytest.raises(ValueError, match="level must be a number strictly between"):
            qr.interval_batch([pair], level=level)
        with pytest.raises(ValueError, match="level must be a number strictly between"):
            qr.calibration_factors(level, [50])
    with pytest.raises(ValueError, match=r"tau = 0.005 and 0.995"):
        qr.interval_batch([pair], level=0.99)


def test_widen_keeps_the_lower_end_non_negative():
    a, b = widen(np.array([0.1, 2.0]), np.array([0.3, 2.5]), 1.0)
    np.testing.assert_allclose(a, [0.0, 1.5])
    np.testing.assert_allclose(b, [0.5, 3.0])


def test_mist_interval_applies_the_checkpoint_factor():
    qr = MIST.load(variant="mist_qr", device="cpu")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 3))
    y = x[:, :2] + rng.standard_normal((200, 2))
    raw = qr.interval_batch([(x, y)], 0.9, calibrated=False)[0]
    qr.meta["interval_calibration"] = {"factors": {"0.9": 0.5}}
    width = raw[1] - raw[0]
    lo, hi = qr.interval(x, y, 0.9)
    np.testing.assert_allclose([lo, hi], [max(raw[0] - 0.5 * width, 0.0), raw[1] + 0.5 * width])
    # a level without a factor gives the raw quantiles, and says so
    with pytest.warns(UncalibratedLevelWarning, match=r"level 0\.7 \(calibrated levels: 0\.9\)"):
        np.testing.assert_allclose(qr.interval(x, y, 0.7), qr.quantiles(x, y, [0.15, 0.85]))


class QuantileStub:
    """A stand-in for MIST-QR: Gaussian quantiles around a noisy guess of each truth."""

    def __init__(self, centre, scale):
        self.centre, self.scale = centre, scale

    def quantiles_batch(self, samples, taus):
        from scipy.stats import norm
        assert len(samples) == len(self.centre)
        return self.centre[:, None] + self.scale[:, None] * norm.ppf(np.asarray(taus))[None, :]


def size_dependent_intervals(rng, m):
    """Samples of n rows in [10, 500]; the guess is noisier at small n than the quantiles
    say (too narrow there) and less noisy at large n (too wide)."""
    n = rng.integers(10, 501, m)
    truth = rng.uniform(0.0, 5.0, m)
    noise_sd = np.where(n < 100, 2.0, 0.4)
    centre = truth + noise_sd * rng.standard_normal(m)
    samples = [(np.zeros((k, 1)), np.zeros((k, 1))) for k in n]
    return samples, n, truth, QuantileStub(centre, np.ones(m))


def test_per_n_factors_cover_every_bin_where_a_pooled_factor_does_not():
    from mistmodel.calibration import fit_interval_calibration, sample_factors
    rng = np.random.default_rng(3)
    samples, n, truth, stub = size_dependent_intervals(rng, 4000)
    calib = fit_interval_calibration(stub, samples, truth, levels=(0.9,), n_cuts=(100,))
    assert calib["count_by_n"] == [int((n < 100).sum()), int((n >= 100).sum())]
    small, large = calib["factors_by_n"]["0.9"]
    assert small > calib["factors"]["0.9"] > large        # widen small n, narrow large n
    samples2, n2, truth2, stub2 = size_dependent_intervals(rng, 20000)
    q = stub2.quantiles_batch(samples2, [0.05, 0.95])
    for factors, check in ((sample_factors(calib, 0.9, n2), True),
                           (np.full(n2.shape, calib["factors"]["0.9"]), False)):
        lo, hi = widen(q[:, 0], q[:, 1], factors)
        inside = (truth2 >= lo) & (truth2 <= hi)
        by_bin = [inside[n2 < 100].mean(), inside[n2 >= 100].mean()]
        if check:
            assert all(abs(c - 0.9) < 0.025 for c in by_bin), by_bin
        else:                                              # pooled: small n under-covered
            assert by_bin[0] < 0.85 and by_bin[1] > 0.95, by_bin


def test_a_bin_with_too_few_datapoints_uses_the_pooled_factor():
    from mistmodel.calibration import fit_interval_calibration, sample_factors
    rng = np.random.default_rng(4)
    samples, n, truth, stub = size_dependent_intervals(rng, 600)
    calib = fit_interval_calibration(stub, samples, truth, levels=(0.9,), n_cuts=(12, 100))
    assert calib["count_by_n"][0] < 9 and calib["factors_by_n"]["0.9"][0] is None
    f = sample_factors(calib, 0.9, np.array([10, 50, 400]))
    np.testing.assert_allclose(f, [calib["factors"]["0.9"]] + calib["factors_by_n"]["0.9"][1:])
    assert sample_factors(calib, 0.7, np.array([10])) is None


def test_mist_interval_applies_the_factor_of_the_samples_n_bin():
    qr = MIST.load(variant="mist_qr", device="cpu")
    rng = np.random.default_rng(2)
    samples = []
    for n in (60, 240):
        x = rng.standard_normal((n, 2))
        samples.append((x, x[:, :1] + rng.standard_normal((n, 1))))
    raw = qr.interval_batch(samples, 0.9, calibrated=False)
    qr.meta["interval_calibration"] = {"factors": {"0.9": 0.0}, "n_cuts": [100],
                                       "factors_by_n": {"0.9": [0.5, -0.2]}}
    got = qr.interval_batch(samples, 0.9)
    for (lo, hi), (a, b), s in zip(raw, got, (0.5, -0.2)):
        w = hi - lo
        np.testing.assert_allclose([a, b], [max(lo - s * w, 0.0), hi + s * w])
    assert qr.interval(*samples[0], 0.9) == pytest.approx(tuple(got[0]))


class ZeroAwareStub(QuantileStub):
    """Quantiles of a non-negative quantity: a stub whose quantiles are clipped just above 0
    (like MIST-QR's, whose lowest knot is a softplus)."""

    def quantiles_batch(self, samples, taus):
        return np.maximum(super().quantiles_batch(samples, taus), 1e-3)


def mostly_dependent_with_zeros(rng, m):
    """One n-bin; 7% of the truths are exactly 0 (guessed near 0, lower end 1e-3 above
    it), the rest dependent with too-wide quantiles (a negative factor narrows them)."""
    zero = rng.random(m) < 0.07
    truth = np.where(zero, 0.0, rng.uniform(1.5, 5.0, m))
    centre = np.where(zero, 0.01, truth + 0.3 * rng.standard_normal(m))
    scale = np.where(zero, 0.01, 1.0)
    samples = [(np.zeros((200, 1)), np.zeros((200, 1)))] * m
    return samples, truth, zero, ZeroAwareStub(centre, scale)


def test_median_cells_keep_zero_inside_the_intervals_of_independent_samples():
    from mistmodel.calibration import fit_interval_calibration, sample_factors
    rng = np.random.default_rng(5)
    samples, truth, zero, stub = mostly_dependent_with_zeros(rng, 3000)
    calib = fit_interval_calibration(stub, samples, truth, levels=(0.9,), n_cuts=(100,),
                                     mi_cuts=(0.1,))
    assert calib["count_by_cell"][1] == [int(zero.sum()), int((~zero).sum())]
    assert calib["factors_by_n"]["0.9"][1] < 0          # dependent majority: narrowed
    zero_cell, dependent_cell = calib["factors_by_cell"]["0.9"][1]
    assert zero_cell > 0 and dependent_cell == calib["factors_by_n"]["0.9"][1]   # never below
    samples2, truth2, zero2, stub2 = mostly_dependent_with_zeros(rng, 20000)
    q = stub2.quantiles_batch(samples2, [0.05, 0.5, 0.95])
    n2 = np.full(truth2.size, 200)
    by_n = widen(q[:, 0], q[:, 2], sample_factors(calib, 0.9, n2))
    by_cell = widen(q[:, 0], q[:, 2], sample_factors(calib, 0.9, n2, q[:, 1]))
    for (lo, hi), check in ((by_cell, True), (by_n, False)):
        inside = (truth2 >= lo) & (truth2 <= hi)
        if check:
            assert inside[zero2].mean() > 0.88 and inside[~zero2].mean() > 0.875
        else:                                  # zero truths just outside their narrowed intervals
            assert inside[zero2].mean() < 0.5


def test_cells_without_enough_datapoints_fall_back_to_the_n_bin_then_the_pool():
    from mistmodel.calibration import sample_factors
    calib = {"factors": {"0.9": 0.1}, "n_cuts": [100], "factors_by_n": {"0.9": [None, 0.2]},
             "mi_cuts": [0.05], "factors_by_cell": {"0.9": [[0.3, None], [None, 0.4]]}}
    n = np.array([50, 50, 200, 200])
    median = np.array([0.01, 1.0, 0.01, 1.0])
    np.testing.assert_allclose(sample_factors(calib, 0.9, n, median), [0.3, 0.1, 0.2, 0.4])
    np.testing.assert_allclose(sample_factors(calib, 0.9, n), [0.1, 0.1, 0.2, 0.2])


def test_mist_interval_applies_the_factor_of_the_samples_median_cell():
    qr = MIST.load(variant="mist_qr", device="cpu")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((300, 2))
    samples = [(x, rng.standard_normal((300, 2))), (x, x + 0.3 * rng.standard_normal((300, 2)))]
    raw = qr.interval_batch(samples, 0.9, calibrated=False)
    median = qr.quantiles_batch(samples, [0.5])[:, 0]
    assert median[0] < 0.2 < median[1]
    qr.meta["interval_calibration"] = {"factors": {"0.9": 0.0}, "n_cuts": [100],
                                       "factors_by_n": {"0.9": [0.0, 0.0]}, "mi_cuts": [0.2],
                                       "factors_by_cell": {"0.9": [[None, None], [2.0, -0.1]]}}
    got = qr.interval_batch(samples, 0.9)
    for (lo, hi), (a, b), s in zip(raw, got, (2.0, -0.1)):
        w = hi - lo
        np.testing.assert_allclose([a, b], [max(lo - s * w, 0.0), hi + s * w])
    assert got[0][0] == 0.0
    assert qr.interval(*samples[1], 0.9) == pytest.approx(tuple(got[1]))
    assert "-0.100" in qr.last_info["interval_method"]


def test_a_level_without_a_factor_warns_once_per_call_and_keeps_its_numbers():
    qr = MIST.load(variant="mist_qr", device="cpu", cross_check=False)
    rng = np.random.default_rng(3)
    samples = [(x, x + rng.standard_normal((n, 2))) for n in (40, 150, 300)
               for x in [rng.standard_normal((n, 2))]]
    raw = qr.interval_batch(samples, 0.85, calibrated=False)
    held = [qr.interval_batch(samples, level) for level in (0.5, 0.8)]
    lower = np.minimum.reduce([raw[:, 0]] + [h[:, 0] for h in held])
    upper = np.maximum.reduce([raw[:, 1]] + [h[:, 1] for h in held])
    calls = {"interval": lambda: [qr.interval(*samples[0], level=0.85)],
             "interval_batch": lambda: qr.interval_batch(samples, level=0.85),
             "estimate_with_interval": lambda: [
                 (lambda r: (r.lower, r.upper))(qr.estimate_with_interval(*samples[0], 0.85))]}
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = np.asarray(call())
        assert [w.category for w in caught] == [UncalibratedLevelWarning], name
        assert caught[0].filename == __file__, name
        message = str(caught[0].message)
        assert "no conformal factor at level 0.85 (calibrated levels: 0.5, 0.8, 0.9, 0.95)" \
            in message and "coverage is not calibrated and depends on the data" in message, name
        assert "0.953 and 0.879 at 0.85" in message, name
        # the raw quantiles, widened only to hold the calibrated intervals at 0.5 and 0.8
        np.testing.assert_allclose(got, np.stack([lower, upper], 1)[:len(got)], rtol=1e-5,
                                   atol=1e-6)


def test_calibrated_levels_raw_requests_and_constant_sides_do_not_warn():
    qr = MIST.load(variant="mist_qr", device="cpu", cross_check=False)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((100, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncalibratedLevelWarning)
        for level in (0.5, 0.8, 0.9, 0.95):
            qr.interval(x, x + rng.standard_normal((100, 1)), level=level)
        qr.interval_batch([(x, x + rng.standard_normal((100, 1)))], level=0.7,
                          calibrated=False)
        assert qr.interval(x, np.ones((100, 1)), level=0.7) == (0.0, 0.0)


def test_a_checkpoint_without_factors_warns_at_every_level():
    qr = MIST.load(variant="mist_qr", device="cpu", cross_check=False)
    bare = MIST(qr.network, {k: v for k, v in qr.meta.items() if k != "interval_calibration"},
                device="cpu", cross_check=False)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((100, 1))
    with pytest.warns(UncalibratedLevelWarning, match=r"level 0\.9 \(calibrated levels: none\)"):
        bare.interval(x, x + rng.standard_normal((100, 1)), level=0.9)


@pytest.mark.parametrize("calibration,problem", [
    ({"factors": {"0.90": 0.5}}, "'factors' has a key '0.90' not written as '0.9'"),
    ({"factors": {"5e-1": 0.5}}, "'factors' has a key '5e-1' not written as '0.5'"),
    ({"factors": {"0.9": 0.5}, "n_cuts": [20], "factors_by_n": {"0.90": [0.1, 0.2]}},
     "'factors_by_n' has a key '0.90' not written as '0.9'"),
    ({"factors": {"0.9": 0.5}, "n_cuts": [20], "factors_by_n": {"0.8": [0.1, 0.2]}},
     "'factors_by_n' has level '0.8', which 'factors' lacks"),
    ({"factors": {"0.9": 0.5}, "n_cuts": [20], "mi_cuts": [0.1],
      "factors_by_cell": {"0.5": [[0.1, 0.2], [0.1, 0.2]]}},
     "'factors_by_cell' has level '0.5', which 'factors' lacks"),
])
def test_level_keys_must_be_written_as_they_are_looked_up(calibration, problem):
    """A factor under "0.90" would never be used: interval(x, y, 0.9) looks up "0.9"."""
    assert problem in calibration_problem(calibration)
    qr = MIST.load(variant="mist_qr", device="cpu")
    with pytest.raises(ValueError, match=r"meta\['interval_calibration'\] .*" + problem):
        MIST(qr.network, {"interval_calibration": calibration})


def test_canonical_level_keys_are_accepted():
    assert calibration_problem({"factors": {"0.5": 0.1, "0.9": 0.2, "0.95": 0.0,
                                            "1e-05": 0.3}}) is None
