"""MINE and InfoNCE: accuracy, the log-batch ceiling, small samples, seeding."""

from __future__ import annotations

import math
import threading
import warnings

import numpy as np
import pytest
import torch

from mistmodel.caller_warnings import CeilingWarning
from mistmodel.estimators import MINE, InfoNCE


def dense_gaussian(rng: np.random.Generator, n: int, dx: int, dy: int, c: float):
    d = dx + dy
    cov = (1 - c) * np.eye(d) + c * np.ones((d, d))
    z = rng.multivariate_normal(np.zeros(d), cov, size=n)
    truth = 0.5 * (
        -math.log(1 - c)
        + math.log(1 + (dx - 1) * c)
        + math.log(1 + (dy - 1) * c)
        - math.log(1 + (d - 1) * c)
    )
    return z[:, :dx], z[:, dx:], truth


@pytest.mark.parametrize("cls", [MINE, InfoNCE])
def test_dense_gaussian_2x2(cls) -> None:
    x, y, truth = dense_gaussian(np.random.default_rng(1), 2000, 2, 2, 0.5)
    assert abs(truth - 0.294) < 1e-3
    est = cls(seed=0)
    value = est.estimate(x, y)
    assert abs(value - truth) < 0.15
    info = est.last_info
    for key in ("batch_size_used", "steps", "best_step", "device", "hidden", "lr", "n_train"):
        assert key in info
    assert info["steps"] >= info["best_step"] > 0


def test_infonce_never_exceeds_log_batch() -> None:
    # Nearly deterministic relation: the true MI (~4.6 nats) is far above log 8.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 1))
    y = x + 0.01 * rng.standard_normal((400, 1))
    est = InfoNCE(batch_size=8, max_steps=300)
    with pytest.warns(CeilingWarning, match=r"InfoNCE: the estimate, .* of the most its bound "
                                            r"can report on these 200 held-out rows \(2\.079: "
                                            r"the mean log of their block size, 8 rows, at "
                                            r"most the batch size 8\)"):
        value = est.estimate(x, y)
    assert est.last_info["batch_size_used"] == 8
    assert est.last_info["ceiling"] == pytest.approx(math.log(8))
    assert value <= math.log(8) + 1e-6
    assert value > math.log(8) - 0.5  # it does approach the ceiling


def test_infonce_warns_near_its_ceiling_only() -> None:
    """Gaussians at n = 300 (benchmarks/infonce_ceiling.py): MI 9.3 nats (8 + 8 columns
    at rho 0.95) reads about 3.9, 99% of the ceiling, and warns; MI 0.83 (1 + 1 at rho
    0.9) reads 0.82, 21% of it, and does not; nor do bootstrap replicates."""
    import warnings

    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 8))
    y = 0.95 * x + math.sqrt(1 - 0.95**2) * rng.standard_normal((300, 8))
    with pytest.warns(CeilingWarning):
        InfoNCE(max_steps=300).estimate(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CeilingWarning)
        InfoNCE(max_steps=300).estimate(x[:, :1], 0.9 * x[:, :1] + 0.44 * y[:, 1:2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        InfoNCE(max_steps=100).interval(x, y, n_boot=3)
    assert sum(w.category is CeilingWarning for w in caught) == 1, caught
    mine = MINE(max_steps=50)
    mine.estimate(x, y)                           # the DV bound has no ceiling
    assert "ceiling" not in mine.last_info


def test_an_mi_matrix_gathers_the_ceiling_warnings() -> None:
    import pandas as pd

    from mistmodel.matrix import mi_matrix

    rng = np.random.default_rng(5)
    base = rng.standard_normal(200)
    table = pd.DataFrame({c: base + 0.01 * rng.standard_normal(200) for c in "abc"})
    with pytest.warns(CeilingWarning) as caught:
        mi_matrix(table, estimator=InfoNCE(batch_size=8, max_steps=300))
    messages = [str(w.message) for w in caught if w.category is CeilingWarning]
    assert len(messages) == 1 and messages[0].startswith(
        "mi_matrix: 3 of its estimates warned; the first: InfoNCE: the estimate"), messages


def test_infonce_ceiling_with_adapted_batch() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 2))
    y = x + 0.01 * rng.standard_normal((10, 2))
    est = InfoNCE()
    with pytest.warns(CeilingWarning):
        value = est.estimate(x, y)
    b = est.last_info["batch_size_used"]
    assert b == 5
    assert value <= math.log(b) + 1e-6


@pytest.mark.parametrize("cls", [MINE, InfoNCE])
@pytest.mark.parametrize("n,dx,dy", [(10, 1, 1), (10, 1, 7), (10, 64, 64), (4, 2, 1), (37, 3, 5)])
def test_finite_on_small_and_uneven_samples(cls, n: int, dx: int, dy: int) -> None:
    rng = np.random.default_rng(n * 100 + dx)
    x = rng.standard_normal((n, dx))
    y = rng.standard_normal((n, dy))
    y[:, 0] += x[:, 0]
    est = cls(max_steps=100)
    assert np.isfinite(est.estimate(x, y))
    assert est.last_info["n_train"] + est.last_info["n_test"] == n


@pytest.mark.parametrize("cls", [MINE, InfoNCE])
def test_seeded_and_leaves_global_rng_alone(cls) -> None:
    x, y, _ = dense_gaussian(np.random.default_rng(4), 200, 2, 3, 0.4)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = cls(seed=5, max_steps=60).estimate(x, y)
    assert torch.equal(before, torch.get_rng_state())
    b = cls(seed=5, max_steps=60).estimate(x, y)
    c = cls(seed=6, max_steps=60).estimate(x, y)
    assert a == b
    assert a != c


def test_settings_recorded_and_validated() -> None:
    est = MINE(hidden=(16, 8), batch_size=32, lr=3e-4)
    s = est.settings()
    assert s["hidden"] == [16, 8] and s["batch_size"] == 32 and s["lr"] == 3e-4
    assert "ema_rate" in s and s["device"] == "auto"
    assert "ema_rate" not in InfoNCE().settings()
    with pytest.raises(ValueError):
        InfoNCE(batch_size=1)
    with pytest.raises(ValueError):
        InfoNCE(test_fraction=1.0)
    with pytest.raises(ValueError):
        MINE(hidden=())
    with pytest.raises(ValueError):
        MINE(ema_rate=0.0)


def test_too_few_rows() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 4 rows; got 3"):
        InfoNCE().estimate(rng.standard_normal((3, 1)), rng.standard_normal((3, 1)))


class _RecordsThreads(InfoNCE):
    """InfoNCE that notes torch's thread count at every training step."""

    def _batch_loss(self, scores: torch.Tensor) -> torch.Tensor:
        self.seen_threads.add(torch.get_num_threads())
        return super()._batch_loss(scores)


class _FailsInTraining(InfoNCE):
    def _batch_loss(self, scores: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("failure inside training")


def _other_count() -> int:
    return 1 if torch.get_num_threads() != 1 else 2


def test_threads_apply_during_the_call_and_are_restored() -> None:
    x, y, _ = dense_gaussian(np.random.default_rng(5), 64, 1, 1, 0.5)
    before = torch.get_num_threads()
    want = _other_count()
    est = _RecordsThreads(max_steps=3, device="cpu", threads=want)
    est.seen_threads = set()
    est.estimate(x, y)
    assert est.seen_threads == {want}
    assert torch.get_num_threads() == before
    untouched = _RecordsThreads(max_steps=3, device="cpu")
    untouched.seen_threads = set()
    untouched.estimate(x, y)
    assert untouched.seen_threads == {before}


def test_threads_restored_when_the_call_raises() -> None:
    x, y, _ = dense_gaussian(np.random.default_rng(6), 64, 1, 1, 0.5)
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="failure inside training"):
        _FailsInTraining(max_steps=3, device="cpu", threads=_other_count()).estimate(x, y)
    assert torch.get_num_threads() == before


def test_a_second_thread_keeps_its_thread_count() -> None:
    # The thread's first torch call is inside the estimator; afterwards the
    # thread, and the caller, still run on the count they had.
    x, y, _ = dense_gaussian(np.random.default_rng(7), 64, 1, 1, 0.5)
    main_before = torch.get_num_threads()
    seen: dict[str, object] = {}

    def work() -> None:
        try:
            est = _RecordsThreads(max_steps=3, device="cpu", threads=_other_count())
            est.seen_threads = set()
            est.estimate(x, y)
            seen["inside"] = est.seen_threads
            seen["after"] = torch.get_num_threads()
            _FailsInTraining(max_steps=3, device="cpu", threads=_other_count()).estimate(x, y)
        except RuntimeError as exc:
            seen["raised"] = str(exc)
            seen["after_raise"] = torch.get_num_threads()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen["raised"] == "failure inside training"
    assert seen["after"] == seen["after_raise"] == main_before
    assert len(seen["inside"]) == 1 and seen["inside"] != {main_before}
    assert torch.get_num_threads() == main_before


def test_bad_threads() -> None:
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            InfoNCE(threads=bad)


def test_thread_blocks_overlapping_in_two_threads_give_each_thread_its_own_count_back():
    import threading

    import torch

    from mistmodel.threads import torch_threads

    before = torch.get_num_threads()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        torch.set_num_threads(2)                # a count this thread chose itself
        with torch_threads(1):
            a_in.set()
            seen["overlap"] = b_in.wait(10)   # the second block starts while this one runs
        a_out.set()
        seen["a after"] = torch.get_num_threads()

    def second():
        a_in.wait(10)
        torch.set_num_threads(4)                # and this one, another
        with torch_threads(3):
            b_in.set()
            a_out.wait(10)          # and ends after it: neither waits for the other
            seen["b inside"] = torch.get_num_threads()
        seen["b after"] = torch.get_num_threads()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen["overlap"] and seen["b inside"] == 3
    assert seen["a after"] == 2 and seen["b after"] == 4
    torch.set_num_threads(before)               # the count set last, as new threads see it
    with torch_threads(2):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("cls", [MINE, InfoNCE])
def test_a_callers_no_grad_inference_mode_or_float64_default_changes_nothing(cls) -> None:
    x, y, _ = dense_gaussian(np.random.default_rng(4), 200, 2, 3, 0.4)
    expected = cls(seed=5, max_steps=40).estimate(x, y)
    with torch.no_grad():
        assert cls(seed=5, max_steps=40).estimate(x, y) == expected
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        assert cls(seed=5, max_steps=40).estimate(x, y) == expected
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert cls(seed=5, max_steps=40).estimate(x, y) == expected
    finally:
        torch.set_default_dtype(previous)


def test_training_draws_nothing_from_the_generator_other_threads_use(drawn_beside) -> None:
    x, y, _ = dense_gaussian(np.random.default_rng(4), 200, 2, 3, 0.4)
    drawn_beside(lambda: [InfoNCE(seed=seed, max_steps=5).estimate(x, y) for seed in range(5)])


def test_bad_seeds_widths_and_devices_are_refused_at_construction() -> None:
    for bad in (-1, 2 ** 32, 1.7, True, "3"):
        with pytest.raises(ValueError, match="seed must be an integer from 0 to 2\\*\\*32 - 1"):
            MINE(seed=bad)
    for bad in ((8.9,), ("8",), (True,), "64", (0,)):
        with pytest.raises(ValueError, match="hidden must list at least one positive integer"):
            InfoNCE(hidden=bad)
    with pytest.raises(ValueError, match="device 'tpu' is not a torch device"):
        InfoNCE(device="tpu")
    assert MINE(seed=np.int64(2 ** 32 - 1), hidden=(np.int64(8),)).hidden == (8,)


@pytest.mark.parametrize("cls", [MINE, InfoNCE])
def test_unstandardised_columns_far_from_unit_scale_warn_and_merged_ones_are_refused(cls):
    from mistmodel.caller_warnings import OutOfRangeWarning

    rng = np.random.default_rng(0)
    t = rng.standard_normal((300, 1))
    y = t + rng.standard_normal((300, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfRangeWarning)
        cls(standardize=False, max_steps=20).estimate(t, y)                 # unit scale
    for x in (1e3 * t, 1e3 + t):
        with pytest.warns(OutOfRangeWarning, match="x column 0 goes to the critic far from "
                                                   "unit scale"):
            cls(standardize=False, max_steps=20).estimate(x, y)
    constant = np.ones((300, 1))
    with pytest.raises(ValueError, match="x column 1 has more than 1% of its distinct values "
                                         "merged by float32"):
        cls(standardize=False, max_steps=20).estimate(np.hstack([constant, 1e8 + 20 * t]), y)


def test_unstandardised_huge_scores_do_not_read_high() -> None:
    """Scores near 1e8 in float32: rows whose scores were all alike used to count as
    matches (their log-sum-exp rounded away), and InfoNCE read 1.5 nats for 0.35."""
    rng = np.random.default_rng(0)
    t = rng.standard_normal((600, 1))
    y = t + rng.standard_normal((600, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = InfoNCE(standardize=False, max_steps=300, seed=1).estimate(1e8 + 1e6 * t, y)
    assert value < 0.5

