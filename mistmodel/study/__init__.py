"""The study: run estimators over test stores into xarray tables, summarise, draw, report.

Each function here is what one Snakemake rule calls; everything can be run from Python.
"""
from importlib import import_module

__all__ = ["benchmark_stores", "combine_estimates", "make_estimator", "summarize"]

_HOME = {"benchmark_stores": "benchmark", "combine_estimates": "benchmark",
         "make_estimator": "estimators", "summarize": "summary"}


def __getattr__(name: str):
    # Imported on first use, so that a rule importing one helper (e.g. ``logs``) does not
    # pay for torch, xarray and the estimators.
    if name in _HOME:
        return getattr(import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
