"""Transforms are strictly monotone / invertible and never change a label; spec parsing."""
import numpy as np
import pytest

import mistgen
from mistgen import TRANSFORMS, SpecError, parse_spec

PER_COORDINATE = ["base", "asinh", "halfcube", "wiggly", "normal_cdf"]
GRID = np.concatenate([-np.logspace(3, -6, 400), [0.0], np.logspace(-6, 3, 400)])


@pytest.mark.parametrize("name", [t for t in PER_COORDINATE if t not in ("base",)])
@pytest.mark.parametrize("side", ["x", "y"])
def test_strictly_increasing(name, side):
    t = TRANSFORMS.get(name)
    grid = GRID[np.abs(GRID) < 8] if name == "normal_cdf" else GRID  # Phi saturates in float64
    v = t.forward(grid[:, None], side)[:, 0]
    assert np.all(np.diff(v) > 0)


@pytest.mark.parametrize("name", PER_COORDINATE + ["spiral", "fold", "saw", "negate"])
@pytest.mark.parametrize("side", ["x", "y"])
def test_inverse_round_trip(name, side):
    t = TRANSFORMS.get(name)
    rng = np.random.default_rng(0)
    v = rng.standard_normal((500, 4)) * 3
    if name == "normal_cdf":  # Phi(v) rounds to 1 in float64 beyond about 8.3
        v = np.clip(v, -5, 5)
    back = t.inverse(t.forward(v, side), side)
    np.testing.assert_allclose(back, v, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("name,pieces", [("fold", 2), ("saw", 4)])
def test_fold_and_saw_permute_y_and_leave_x(name, pieces):
    """A bijection of each Y coordinate that is not monotone: on a fine grid it permutes the
    grid, reverses the order of its pieces of [-2, 2) and keeps the order inside each."""
    t = TRANSFORMS.get(name)
    grid = np.round(np.arange(-3.0, 3.0, 1 / 64), 10)[:, None]
    out = t.forward(grid, "y")[:, 0]
    np.testing.assert_array_equal(np.sort(out), grid[:, 0])
    np.testing.assert_array_equal(t.forward(grid, "x"), grid)
    inside = (grid[:, 0] >= -2) & (grid[:, 0] < 2)
    assert (np.diff(out[inside]) < 0).sum() == pieces - 1       # one drop between pieces
    np.testing.assert_array_equal(out[~inside], grid[~inside, 0])


def test_negate_turns_every_other_y_coordinate_around():
    t = TRANSFORMS.get("negate")
    v = np.random.default_rng(2).standard_normal((50, 5))
    np.testing.assert_array_equal(t.forward(v, "x"), v)
    np.testing.assert_array_equal(t.forward(v, "y"), v * [-1, 1, -1, 1, -1])
    s = mistgen.sample("normal-dense-negate", 2000, 1, 1, seed=3)
    assert np.corrcoef(s.x[:, 0], s.y[:, 0])[0, 1] < -0.05 < s.mi


def test_wiggly_derivative_bound():
    t = TRANSFORMS.get("wiggly")
    v = np.linspace(-50, 50, 2_000_001)[:, None]
    for side, bound in [("x", 0.16), ("y", 0.53)]:
        slope = np.diff(t.forward(v, side)[:, 0]) / np.diff(v[:, 0])
        assert slope.min() > bound
        assert np.abs(t.forward(v, side) - v).max() <= t.max_shift


def test_spiral_keeps_norm_and_mixes_coordinates():
    t = TRANSFORMS.get("spiral")
    v = np.random.default_rng(1).standard_normal((100, 3))
    out = t.forward(v, "x")
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(v, axis=1))
    np.testing.assert_array_equal(out[:, 2], v[:, 2])
    assert not np.allclose(out[:, :2], v[:, :2])


@pytest.mark.parametrize("spec", ["student-sparse-asinh", "normal-lvm-wiggly", "additive_noise-halfcube",
                                  "normal-dense-normal_cdf-spiral", "student-2pair-wiggly-asinh",
                                  "normal-dense-fold", "student-dense-asinh-saw",
                                  "normal-sparse-negate"])
def test_transforms_change_no_label(spec):
    parsed = parse_spec(spec)
    base_spec = parsed.family.name + "-base"
    s = mistgen.sample(spec, 300, 3, 3, seed=11)
    b = mistgen.sample(base_spec, 300, 3, 3, seed=11)
    assert s.mi == b.mi and s.params == b.params
    x, y = parsed.apply(b.x, b.y)
    np.testing.assert_array_equal(s.x, x)
    np.testing.assert_array_equal(s.y, y)
    xi, yi = parsed.invert(s.x, s.y)
    np.testing.assert_allclose(xi, b.x, atol=1e-8)
    np.testing.assert_allclose(yi, b.y, atol=1e-8)


def test_spec_parsing():
    p = parse_spec("normal-dense-normal_cdf-spiral")
    assert p.family.name == "normal-dense"
    assert [t.name for t in p.transforms] == ["normal_cdf", "spiral"]
    assert parse_spec("additive_noise-base").transforms == ()
    assert parse_spec("student-identity").family.name == "student-identity"


@pytest.mark.parametrize("spec, message", [
    ("gamma-dense-base", "does not start with a known family"),
    ("normal-dense-cube", "unknown transform 'cube'"),
    ("normal-densest", "does not start with a known family"),
    ("", "non-empty string"),
])
def test_bad_specs(spec, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(spec)


def test_sample_is_a_pure_function_of_its_arguments():
    a = mistgen.sample("student-dense-wiggly", 50, 3, 2, seed=5)
    b = mistgen.sample("student-dense-wiggly", 50, 3, 2, seed=5)
    c = mistgen.sample("student-dense-wiggly", 50, 3, 2, seed=6)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.params == b.params and not np.array_equal(a.x, c.x)
