"""MINE and InfoNCE refuse a split whose held-out rows would leave a block of one row."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from mistmodel.estimators import MINE, InfoNCE, TooFewRowsError
MIN_BLOCK_ROWS = 2

FAST = dict(max_steps=10, eval_every=5, device="cpu", threads=1)


def pair(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1))
    return x, x + rng.standard_normal((n, 1))


@pytest.mark.parametrize("cls", [MINE, InfoNCE])
@pytest.mark.parametrize("n,test_fraction", [(5, 0.6), (7, 0.75), (9, 0.9)])
def test_two_training_rows_and_an_odd_held_out_part_are_refused(cls, n, test_fraction):
    est = cls(test_fraction=test_fraction, **FAST)
    with pytest.raises(TooFewRowsError) as caught:
        est.estimate(*pair(n))
    message = str(caught.value)
    assert f"n = {n} rows" in message
    assert f"test_fraction={test_fraction:g}" in message
    assert f"at least {MIN_BLOCK_ROWS} rows" in message
    assert "single row" in message
    assert isinstance(caught.value, ValueError)
    assert est.last_info == {}


@pytest.mark.parametrize("cls", [MINE, InfoNCE])
def test_batch_size_two_with_an_odd_held_out_part_is_refused(cls):
    with pytest.raises(TooFewRowsError, match=r"n = 98 rows at test_fraction=0\.5 hold out 49 "
                       r"rows, which batch_size=2 .*at least 2 rows.*batch_size of 3 or more"):
        cls(batch_size=2, **FAST).estimate(*pair(98))


@pytest.mark.parametrize("cls", [MINE, InfoNCE])
def test_refused_before_any_warning_about_the_rows(cls):
    x, y = pair(5)
    x[1], y[1] = x[0], y[0]                # a copied row warns when the sample is estimated
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TooFewRowsError):
            cls(test_fraction=0.6, **FAST).estimate(x, y)


@pytest.mark.parametrize("batch_size", [2, 3, 5, 64])
@pytest.mark.parametrize("test_fraction", [0.1, 0.3, 0.5, 0.6, 0.75, 0.9])
def test_every_accepted_split_has_held_out_blocks_of_two_rows_or_more(batch_size,
                                                                     test_fraction):
    est = InfoNCE(batch_size=batch_size, test_fraction=test_fraction, **FAST)
    for n in range(est.min_rows, 80):
        try:
            n_train, n_test = est._split_sizes(n)
        except TooFewRowsError as err:
            assert f"n = {n} rows" in str(err) and "single row" in str(err)
            continue
        b = min(batch_size, n_train)
        assert n_train >= MIN_BLOCK_ROWS and n_test >= MIN_BLOCK_ROWS
        assert n_test // math.ceil(n_test / b) >= MIN_BLOCK_ROWS, (n, n_train, n_test)


@pytest.mark.parametrize("test_fraction", [0.1, 0.25, 0.5])
def test_a_test_fraction_of_at_most_a_half_is_never_refused(test_fraction):
    est = MINE(test_fraction=test_fraction, batch_size=3, **FAST)
    for n in range(est.min_rows, 400):
        est._split_sizes(n)


def test_the_infonce_ceiling_counts_no_block_of_one_row():
    # n = 6 at test_fraction 0.6: 4 held-out rows in 2 blocks of 2 (ceiling log 2); n = 5
    # used to hold out 3 rows in blocks of 2 and 1, whose ceiling fell below log 2
    est = InfoNCE(test_fraction=0.6, **FAST)
    assert np.isfinite(est.estimate(*pair(6)))
    assert est.last_info["n_test"] == 4
    assert est.last_info["ceiling"] == pytest.approx(math.log(2))


@pytest.mark.parametrize("cls", [MINE, InfoNCE])
def test_small_samples_the_default_split_takes_are_still_estimated(cls):
    for n in (4, 5, 6, 7):
        est = cls(**FAST)
        assert np.isfinite(est.estimate(*pair(n, seed=n)))
        assert est.last_info["n_train"] + est.last_info["n_test"] == n


def test_bootstrap_replicates_too_small_to_split_are_left_out_not_the_sample():
    # the sample (18 rows) splits; its half-samples (9 rows at test_fraction 0.8: 2 training
    # rows, 7 held out) do not, and are left out as replicates with too few usable rows
    x, y = pair(18)
    est = InfoNCE(test_fraction=0.8, **FAST)
    assert np.isfinite(est.estimate(x, y))
    with pytest.warns(RuntimeWarning, match="5 of 5 bootstrap replicates"):
        lo, hi = est.interval(x, y, n_boot=5)
    assert math.isnan(lo) and math.isnan(hi)
