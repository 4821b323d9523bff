"""Fixtures shared by test modules."""
import threading

import pytest
import torch


@pytest.fixture
def drawn_beside():
    """``drawn_beside(work)`` runs ``work()`` while another thread draws 20,000 numbers
    from torch's global generator after seeding it, and asserts that the thread got the
    sequence its seed gives: ``work`` neither drew from that generator nor reset it."""

    def draws(count):
        torch.manual_seed(999)
        return torch.cat([torch.randint(1 << 62, (1,)) for _ in range(count)])

    def check(work):
        expected = draws(20_000)
        got, started = {}, threading.Event()

        def drawer():
            started.wait(10)
            got["values"] = draws(20_000)

        thread = threading.Thread(target=drawer)
        thread.start()
        started.set()
        work()
        thread.join(60)
        assert torch.equal(got["values"], expected)

    return check
