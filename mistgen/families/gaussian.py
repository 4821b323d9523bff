"""Multivariate normal families: dense, sparse, 2pair and the latent-variable model."""
from __future__ import annotations

from ..registry import FAMILIES
from .base import correlated_normal, gaussian_mi
from .structures import DenseStructure, LVMStructure, SparseStructure, Structure, TwoPairStructure


class GaussianFamily(Structure):
    """Zero-mean normal whose covariance is the structure's (unit-diagonal) matrix."""

    def draw_params(self, rng, dim_x, dim_y, prior):
        return self.draw_structure(rng, dim_x, dim_y, prior)

    def mutual_information(self, params, dim_x, dim_y):
        return gaussian_mi(self.matrix(params, dim_x, dim_y), dim_x)

    def sample(self, rng, n, dim_x, dim_y, params):
        xy = correlated_normal(rng, n, self.matrix(params, dim_x, dim_y))
        return xy[:, :dim_x], xy[:, dim_x:]


@FAMILIES.register
class NormalDense(DenseStructure, GaussianFamily):
    name = "normal-dense"
    default_prior = dict(DenseStructure.structure_prior)


@FAMILIES.register
class NormalSparse(SparseStructure, GaussianFamily):
    name = "normal-sparse"
    default_prior = dict(SparseStructure.structure_prior)


@FAMILIES.register
class NormalTwoPair(TwoPairStructure, GaussianFamily):
    name = "normal-2pair"
    default_prior = dict(TwoPairStructure.structure_prior)


@FAMILIES.register
class NormalLVM(LVMStructure, GaussianFamily):
    name = "normal-lvm"
    default_prior = dict(LVMStructure.structure_prior)
