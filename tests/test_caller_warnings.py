"""Warnings point at the caller, and silencing them touches only the silencing thread."""
import threading
import warnings

import numpy as np
import pytest

from mistmodel.caller_warnings import TiedDataWarning, held, silenced, warn
from mistmodel.independence import conditional_independence_test


def test_warn_names_the_first_line_outside_the_package():
    with pytest.warns(TiedDataWarning) as caught:
        warn("tied", TiedDataWarning)
    assert caught[0].filename == __file__


def test_silenced_drops_only_its_categories_and_restores_them():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with silenced(TiedDataWarning):
            warn("dropped", TiedDataWarning)
            warn("kept", RuntimeWarning)
        warn("after", TiedDataWarning)
    assert [str(w.message) for w in caught] == ["kept", "after"]


def test_held_gathers_its_categories_and_lets_others_through():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with held(TiedDataWarning) as outer:
            with held(TiedDataWarning) as inner:
                warn("inner", TiedDataWarning)
            warn("outer", TiedDataWarning)
            warn("shown", RuntimeWarning)
        warn("after", TiedDataWarning)
    assert inner == ["inner"] and outer == ["outer"]
    assert [str(w.message) for w in caught] == ["shown", "after"]


class _PausingEstimator:
    """A conditional estimator that holds its first null estimate until released."""
    name = "pausing"

    def __init__(self):
        self.calls = 0
        self.in_null = threading.Event()
        self.release = threading.Event()

    def estimate_conditional(self, x, y, z):
        self.calls += 1
        if self.calls == 2:                       # the first permuted copy
            self.in_null.set()
            assert self.release.wait(30)
        return float(np.mean(x[:, 0] * y[:, 0]))


def test_a_conditional_test_in_one_thread_leaves_other_threads_warnings_alone():
    rng = np.random.default_rng(0)
    x, y, z = (rng.standard_normal((60, 1)) for _ in range(3))
    estimator = _PausingEstimator()
    worker = threading.Thread(
        target=conditional_independence_test, args=(estimator, x, y, z, 3))
    filters = list(warnings.filters)
    worker.start()
    try:
        assert estimator.in_null.wait(30)
        assert warnings.filters == filters        # the process's filters are untouched
        with pytest.warns(TiedDataWarning, match="repeats values"):
            warn("x column 0 repeats values", TiedDataWarning)   # not silenced here
    finally:
        estimator.release.set()
        worker.join(30)
    assert not worker.is_alive() and estimator.calls == 4


def test_recorded_keeps_the_filters_in_force():
    """The command line and the study record warnings to print them once in their own
    words; -W ignore still hides one, -W error still raises it where it is issued, and the
    default filters (whose module field is a plain string) do not break it."""
    import warnings

    from mistmodel.caller_warnings import recorded

    def noisy():
        warnings.warn("first", UserWarning)
        warnings.warn("second", DeprecationWarning)
        warnings.warn("first", UserWarning)
        return "done"

    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        # as in Python's own default filters, a module given as a plain string is matched
        # exactly: a prefix of this module's name hides nothing
        warnings.filters.insert(0, ("ignore", None, UserWarning, __name__[:-3], 0))
        warnings.filters.insert(0, ("default", None, DeprecationWarning, "__main__", 0))
        with recorded() as caught:
            assert noisy() == "done"
        assert [str(w.message) for w in caught] == ["first", "second", "first"]
        warnings.filterwarnings("ignore", "sec")
        with recorded() as caught:
            noisy()
        assert [str(w.message) for w in caught] == ["first", "first"]
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(UserWarning, match="first"), recorded() as caught:
            noisy()
        assert caught == []
