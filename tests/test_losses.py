"""The training objectives: the log-scale term weighs small MI and keeps the minimiser."""
import numpy as np
import pytest
import torch

from mistmodel.losses import log_scale, pinball_loss, point_loss, quantile_loss
from mistmodel.training import TrainConfig


def test_point_loss_without_log_term_is_the_mse():
    pred, target = torch.tensor([0.1, 2.0, 5.0]), torch.tensor([0.0, 2.5, 4.0])
    assert float(point_loss(pred, target)) == pytest.approx(float(((pred - target) ** 2).mean()))


def test_log_term_makes_an_error_at_independence_count():
    # the same error of 0.1 nats: at MI = 0 it is large on the log scale, at MI = 10 small
    at_zero = point_loss(torch.tensor([0.1]), torch.tensor([0.0]), log_weight=1.0)
    at_ten = point_loss(torch.tensor([10.1]), torch.tensor([10.0]), log_weight=1.0)
    assert float(at_zero) > 50 * float(at_ten)
    # and a negative prediction is clamped, not a NaN
    assert torch.isfinite(point_loss(torch.tensor([-0.5]), torch.tensor([0.0]), 1.0))


def test_log_scale_is_increasing():
    mi = torch.tensor([0.0, 0.01, 0.5, 3.0, 30.0])
    assert (log_scale(mi, 0.02).diff() > 0).all()


@pytest.mark.parametrize("tau", [0.1, 0.5, 0.9])
def test_quantile_loss_keeps_the_quantile_as_minimiser(tau):
    rng = np.random.default_rng(0)
    target = torch.tensor(rng.exponential(0.3, size=4001), dtype=torch.float32)
    grid = torch.linspace(0.0, 2.0, 2001)
    losses = torch.stack([quantile_loss(q.expand(len(target), 1), target,
                                        torch.full((len(target), 1), tau), log_weight=1.0)
                          for q in grid])
    best = float(grid[int(losses.argmin())])
    assert best == pytest.approx(float(torch.quantile(target, tau)), abs=2e-3)
    # with the log term the loss differs from the plain pinball loss
    q = torch.full((len(target), 1), 0.3)
    t = torch.full((len(target), 1), tau)
    assert float(quantile_loss(q, target, t, log_weight=1.0)) > float(pinball_loss(q, target, t))


@pytest.mark.parametrize("key,value", [("log_weight", -0.1), ("log_eps", 0.0)])
def test_train_config_refuses_bad_log_settings(key, value):
    with pytest.raises(ValueError, match=key):
        TrainConfig(train="x", **{key: value})
