"""Split-conformal calibration of MIST-QR intervals."""
import numpy as np
import pytest

from mistmodel import MIST
from mistmodel.calibration import conformal_factor, widen


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
    # a level without a factor gives the raw quantiles
    np.testing.assert_allclose(qr.interval(x, y, 0.7), qr.quantiles(x, y, [0.15, 0.85]))
