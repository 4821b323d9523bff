"""Exact invariances of the MIST network: rows, columns within X / Y, padding, and
strictly increasing per-coordinate transforms (through the copula)."""
import numpy as np
import pytest
import torch
from scipy.special import ndtr

from mistmodel.batching import collate
from mistmodel.model import MISTNet, ModelConfig

TAUS = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])


def make_net(variant="mist", stats=True, seed=0):
    torch.manual_seed(seed)
    net = MISTNet(ModelConfig(variant=variant, stats_features=stats)).eval()
    # perturb every parameter so that no block sits at a symmetric initial value
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return net


def predict(net, pairs):
    batch = collate(pairs, copula=net.config.copula)
    with torch.no_grad():
        if net.is_quantile:
            return net(*batch.inputs(), tau=TAUS).double().numpy()
        return net(*batch.inputs()).double().numpy()


def dependent_sample(rng, n, dx, dy):
    x = rng.standard_normal((n, dx))
    mix = rng.standard_normal((dx, dy))
    y = np.tanh(x @ mix) + 0.5 * rng.standard_normal((n, dy))
    return x, y


@pytest.fixture(params=[("mist", True), ("mist_qr", True), ("mist", False)],
                ids=["mist", "mist_qr", "mist-nostats"])
def net(request):
    variant, stats = request.param
    return make_net(variant, stats)


def test_network_depends_on_the_data(net):
    rng = np.random.default_rng(0)
    a = predict(net, [dependent_sample(rng, 60, 3, 2)])
    b = predict(net, [(rng.standard_normal((60, 3)), rng.standard_normal((60, 2)))])
    assert np.abs(a - b).max() > 1e-4


def test_row_permutation(net):
    rng = np.random.default_rng(1)
    x, y = dependent_sample(rng, 73, 3, 2)
    p = rng.permutation(73)
    np.testing.assert_allclose(predict(net, [(x, y)]), predict(net, [(x[p], y[p])]),
                               rtol=1e-5, atol=1e-5)


def test_column_permutation_within_x_and_within_y(net):
    rng = np.random.default_rng(2)
    x, y = dependent_sample(rng, 50, 4, 3)
    px, py = rng.permutation(4), rng.permutation(3)
    np.testing.assert_allclose(predict(net, [(x, y)]), predict(net, [(x[:, px], y[:, py])]),
                               rtol=1e-5, atol=1e-5)


def test_swapping_x_and_y_is_seen(net):
    """The X/Y tags are real: a sample with dim_x != dim_y is not read as its mirror."""
    rng = np.random.default_rng(3)
    x, y = dependent_sample(rng, 50, 4, 1)
    assert np.abs(predict(net, [(x, y)]) - predict(net, [(y, x)])).max() > 1e-6


def test_padding_invariance(net):
    rng = np.random.default_rng(4)
    target = dependent_sample(rng, 37, 2, 3)
    others = [dependent_sample(rng, 90, 5, 1), dependent_sample(rng, 12, 1, 1),
              dependent_sample(rng, 64, 3, 6)]
    alone = predict(net, [target])[0]
    batched = predict(net, [others[0], target, others[1], others[2]])
    np.testing.assert_allclose(batched[1], alone, rtol=1e-5, atol=1e-5)
    # and the others are unaffected by the target
    np.testing.assert_allclose(batched[0], predict(net, [others[0]])[0], rtol=1e-5, atol=1e-5)


def wiggly_x(x):
    return x + 0.4 * np.sin(x) + 0.2 * np.sin(1.7 * x + 1) + 0.03 * np.sin(3.3 * x - 2.5)


def wiggly_y(y):
    return y - 0.4 * np.sin(0.4 * y) + 0.17 * np.sin(1.3 * y + 3.5) + 0.02 * np.sin(4.3 * y - 2.5)


@pytest.mark.parametrize("name,fx,fy", [
    ("asinh", np.arcsinh, np.arcsinh),
    ("halfcube", lambda a: a * np.sqrt(np.abs(a)), lambda a: a * np.sqrt(np.abs(a))),
    ("wiggly", wiggly_x, wiggly_y),
    ("normal_cdf", ndtr, ndtr),
    ("affine", lambda a: 3.0 * a - 7.0, lambda a: 0.01 * a + 100.0),
])
def test_increasing_transforms(name, fx, fy):
    net = make_net("mist_qr")
    rng = np.random.default_rng(5)
    x, y = dependent_sample(rng, 80, 3, 2)
    np.testing.assert_allclose(predict(net, [(x, y)]), predict(net, [(fx(x), fy(y))]),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n,dx,dy", [(10, 1, 1), (25, 1, 7), (40, 9, 2), (15, 40, 45)])
def test_any_shape(n, dx, dy):
    net = make_net("mist")
    rng = np.random.default_rng(6)
    out = predict(net, [dependent_sample(rng, n, dx, dy)])
    assert out.shape == (1,) and np.isfinite(out).all() and out[0] >= 0


def test_large_n_runs():
    net = make_net("mist")
    rng = np.random.default_rng(7)
    out = predict(net, [dependent_sample(rng, 10_000, 2, 2)])
    assert np.isfinite(out).all()


def test_quantiles_monotone_random_network():
    net = make_net("mist_qr", seed=3)
    rng = np.random.default_rng(8)
    pairs = [dependent_sample(rng, int(rng.integers(10, 120)), int(rng.integers(1, 5)),
                              int(rng.integers(1, 5))) for _ in range(6)]
    batch = collate(pairs)
    taus = torch.linspace(0.001, 0.999, 400)
    with torch.no_grad():
        q = net(*batch.inputs(), tau=taus)
    assert q.shape == (6, 400)
    assert (torch.diff(q, dim=1) >= 0).all()
    assert (q >= 0).all()
