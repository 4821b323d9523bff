"""The study: run estimators over test stores into xarray tables, summarise, draw, report.

Each function here is what one Snakemake rule calls; everything can be run from Python.
"""
from .benchmark import benchmark_stores, combine_estimates
from .estimators import make_estimator
from .summary import summarize

__all__ = ["benchmark_stores", "combine_estimates", "make_estimator", "summarize"]
