"""One estimator shared by several threads: each call's record belongs to its thread."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from mistmodel import MIST
from mistmodel.estimators import CCA, KSG, MINE
from mistmodel.model import MISTNet, ModelConfig
from mistmodel.per_thread import PerThread


class Holder:
    value = PerThread(lambda: [])


def in_turns(*steps):
    """Run ``steps`` (pairs of thread number and callable) in this order, each in its
    thread (thread 0 or 1, each alive throughout); returns their results."""
    results, turn = [None] * len(steps), threading.Condition()
    state = {"next": 0}

    def worker(me: int) -> None:
        for k, (who, step) in enumerate(steps):
            if who != me:
                continue
            with turn:
                turn.wait_for(lambda: state["next"] == k)
            results[k] = step()
            with turn:
                state["next"] += 1
                turn.notify_all()

    threads = [threading.Thread(target=worker, args=(me,)) for me in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_each_thread_reads_what_it_wrote_and_a_fresh_default_before():
    h = Holder()
    got = in_turns((0, lambda: setattr(h, "value", [0])), (1, lambda: h.value),
                   (1, lambda: setattr(h, "value", [1])), (0, lambda: h.value),
                   (1, lambda: h.value))
    assert got[1] == [] and got[3] == [0] and got[4] == [1]
    h.value.append(5)                    # the default is made afresh for every read
    assert Holder().value == [] and h.value == []
    assert isinstance(Holder.value, PerThread)


def tiny_mist() -> MIST:
    torch.manual_seed(0)
    net = MISTNet(ModelConfig(variant="mist", width=8, summary_width=16, pair_width=8,
                              head_hidden=16))
    meta = {"data_ranges": {"n": [10, 100], "dim_x": [1, 4], "dim_y": [1, 4]}}
    return MIST(net, meta, device="cpu", max_rows=100)


def test_a_shared_mist_reports_each_threads_own_call():
    mist = tiny_mist()
    rng = np.random.default_rng(0)
    big, small = rng.standard_normal((1000, 2)), rng.standard_normal((50, 2))
    got = in_turns((0, lambda: mist.estimate(big[:, :1], big[:, 1:])),
                   (1, lambda: mist.estimate(small[:, :1], small[:, 1:])),
                   (0, lambda: mist.last_info), (1, lambda: mist.last_info))
    assert (got[2]["n"], got[2]["row_groups"]) == (1000, 10)
    assert (got[3]["n"], got[3]["row_groups"]) == (50, 1)


def test_shared_ksg_and_cca_report_each_threads_own_call():
    rng = np.random.default_rng(1)
    wide = (rng.standard_normal((200, 3)), rng.standard_normal((200, 1)))
    narrow = (rng.standard_normal((300, 1)), rng.standard_normal((300, 1)))
    for est in (KSG(k=5), CCA()):
        got = in_turns((0, lambda: est.estimate(*wide)), (1, lambda: est.estimate(*narrow)),
                       (0, lambda: est.last_info), (1, lambda: est.last_info))
        assert (got[2]["n"], got[2]["dx"]) == (200, 3), type(est).__name__
        assert (got[3]["n"], got[3]["dx"]) == (300, 1), type(est).__name__


def test_a_shared_mine_gives_each_thread_its_seeds_estimate():
    # MINE keeps a running average of its marginal term for the call in progress, and
    # seeds its critic's initial weights from the process's generator
    rng = np.random.default_rng(2)
    samples = []
    for rho in (0.3, 0.6, 0.8, 0.9):
        x = rng.standard_normal((300, 1))
        samples.append((x, rho * x + np.sqrt(1 - rho ** 2) * rng.standard_normal((300, 1))))
    mine = MINE(max_steps=60, eval_every=10, device="cpu", seed=3)
    alone = [mine.estimate(x, y) for x, y in samples]
    with ThreadPoolExecutor(max_workers=4) as pool:
        shared = list(pool.map(lambda s: mine.estimate(*s), samples))
    assert shared == alone


def test_an_estimator_pickles_and_copies_after_a_call_and_the_copy_starts_afresh():
    import copy
    import pickle

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((200, 2)), rng.standard_normal((200, 1))
    for est in (KSG(k=5), tiny_mist()):
        value = est.estimate(x, y)
        for clone in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est), copy.copy(est)):
            assert clone.last_info == {}
            assert clone.estimate(x, y) == value
            clone.estimate(x[:50], y[:50])
            assert clone.last_info["n"] == 50 and est.last_info["n"] == 200
