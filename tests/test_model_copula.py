"""The copula normalisation: ranks -> normal scores."""
import numpy as np
import torch
from scipy.special import ndtri

from scipy.stats import rankdata

from mistmodel.copula import average_ranks, normal_scores, normal_scores_torch, standardize


def test_normal_scores_formula():
    a = np.array([[3.0, 10.0], [1.0, 30.0], [2.0, 20.0], [5.0, 0.0]])
    z = normal_scores(a)
    ranks = np.array([[3, 2], [1, 4], [2, 3], [4, 1]])
    np.testing.assert_allclose(z, ndtri((ranks - 0.5) / 4), rtol=1e-6)
    assert z.dtype == np.float32


def test_ties_get_average_ranks_and_constant_columns_zero():
    a = np.array([[1.0, 7.0], [1.0, 7.0], [2.0, 7.0], [0.0, 7.0]])
    z = normal_scores(a)
    # ranks of column 0: 0.0 -> 1, 1.0 twice -> 2.5, 2.0 -> 4
    np.testing.assert_allclose(z[:, 0], ndtri((np.array([2.5, 2.5, 4, 1]) - 0.5) / 4), rtol=1e-6)
    np.testing.assert_array_equal(z[:, 1], 0.0)


def test_average_ranks_equal_scipy_with_and_without_ties():
    rng = np.random.default_rng(3)
    cases = [rng.standard_normal((200, 6)), np.round(rng.standard_normal((300, 5)), 1),
             rng.integers(0, 3, (50, 3)).astype(float), np.ones((10, 2)),
             rng.standard_normal((1, 4)), np.array([[np.inf], [1.0], [np.inf], [-np.inf]])]
    for a in cases:
        np.testing.assert_array_equal(average_ranks(a), rankdata(a, method="average", axis=0))
        n = a.shape[0]
        want = ndtri((rankdata(a, method="average", axis=0) - 0.5) / n).astype(np.float32)
        np.testing.assert_array_equal(normal_scores(a), want)


def test_invariant_to_increasing_maps_and_equivariant_to_row_order():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 3))
    np.testing.assert_array_equal(normal_scores(a), normal_scores(np.exp(a) * 5 + 1))
    p = rng.permutation(50)
    np.testing.assert_array_equal(normal_scores(a)[p], normal_scores(a[p]))


def test_torch_version_matches_numpy_with_padding():
    rng = np.random.default_rng(1)
    a = np.round(rng.standard_normal((30, 4)), 1)      # ties
    vals = torch.zeros(2, 40, 4)
    vals[0, :30] = torch.as_tensor(a, dtype=torch.float32)
    vals[1, :40] = torch.randn(40, 4)
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[0, :30] = True
    mask[1] = True
    z = normal_scores_torch(vals, mask)
    np.testing.assert_allclose(z[0, :30].numpy(), normal_scores(a.astype(np.float32)), atol=1e-5)
    assert (z[0, 30:] == 0).all()


def test_standardize():
    rng = np.random.default_rng(2)
    s = standardize(rng.normal(5, 3, size=(100, 2)))
    np.testing.assert_allclose(s.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(s.std(0), 1, atol=1e-5)


def test_standardize_does_not_depend_on_a_columns_scale():
    a = np.random.default_rng(5).standard_normal((200, 1))
    base = standardize(a)
    for scale in (1e-9, 1e-300, 1e160, 1e300):
        np.testing.assert_allclose(standardize(a * scale), base, atol=1e-6)
    assert not standardize(np.full((10, 1), 1e300)).any()          # constant: zeros
