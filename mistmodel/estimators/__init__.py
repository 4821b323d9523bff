"""Mutual-information estimators sharing one interface.

Every estimator takes ``x`` of shape ``(n, dx)`` and ``y`` of shape ``(n, dy)``
(all coordinates are used, ``dx`` and ``dy`` may differ) and offers
``estimate(x, y) -> float`` (nats), ``interval(x, y, level)`` (percentile
bootstrap), ``estimate_with_interval`` / ``run`` (a record with settings,
run facts and timing) and ``settings()``. See :mod:`.base` for the contract,
the input checks and the bootstrap schemes. KSG and CCA also estimate conditional
mutual information, ``estimate_conditional(x, y, z)`` (``estimates_conditional`` says
whether an estimator does), and every estimator offers ``test_independence(x, y)``.

- :class:`KSG` - Kraskov et al. (2004) k-nearest-neighbour estimator; Frenzel & Pompe
  (2007) for I(X;Y|Z); the mixed estimator of Gao et al. (2017) with ``discrete=``.
- :class:`MINE` - Belghazi et al. (2018) Donsker-Varadhan critic.
- :class:`InfoNCE` - van den Oord et al. (2018) contrastive bound.
- :class:`CCA` - Gaussian mutual information from canonical correlations; the Gaussian
  partial form for I(X;Y|Z).
"""

from importlib import import_module

from .base import (
    BootstrapError,
    Estimate,
    Estimator,
    TooFewRowsError,
    check_xy,
    check_xyz,
    constant_columns,
    standardize_columns,
)

_HOME = {"CCA": "cca", "InfoNCE": "infonce", "KSG": "ksg", "MINE": "mine"}


def __getattr__(name: str):
    # Each estimator's module is imported on first use: KSG and CCA need no torch.
    if name in _HOME:
        return getattr(import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


__all__ = [
    "BootstrapError",
    "CCA",
    "KSG",
    "MINE",
    "Estimate",
    "Estimator",
    "InfoNCE",
    "TooFewRowsError",
    "check_xy",
    "check_xyz",
    "constant_columns",
    "standardize_columns",
]
