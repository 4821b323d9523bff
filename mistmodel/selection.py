"""Feature scores for scikit-learn's feature selection: I(X_j; y) for every feature j.

    from functools import partial
    from sklearn.feature_selection import SelectKBest
    from mistmodel.selection import mutual_info_scores
    SelectKBest(score_func=mutual_info_scores, k=5).fit(X, y)
    SelectKBest(score_func=partial(mutual_info_scores, estimator=KSG()), k=5)

:func:`mutual_info_scores` has the call shape of scikit-learn's
``mutual_info_regression(X, y)``: ``X`` ``(n_samples, n_features)`` (array or DataFrame),
``y`` ``(n_samples,)``, and it returns an array ``(n_features,)`` of MI estimates in nats.
For a continuous target the default estimator is the shipped MIST checkpoint, loaded
once per process, which scores all features in one batched call; any other estimator
with ``estimate(x, y)`` is called feature by feature (with ``estimate_batch`` when it has
one).

A constant feature, or a constant ``y``, scores 0 (no information), as in scikit-learn.  NaN or an
infinite value is refused with an error naming the feature (or ``y``).

``discrete_target=True`` reads ``y`` as class labels (any values: strings, integers).
The default estimator is then ``KSG(discrete="auto")``, and the classes, coded
``0 .. K-1``, go to it as they are: its mixed-KSG rule reads a column with few distinct
values as discrete.  For other estimators (and for more classes than that rule calls
discrete) each code is dithered by independent uniform noise on ``[0, 1)`` (seeded by
``random_state``): the dithered target ``y + U`` determines the class (its floor) and
adds only noise independent of ``X``, so ``I(X_j; y + U) = I(X_j; class)`` exactly, and a
continuous estimator sees no ties.  MIST cannot estimate it (a dithered class is a step
function of a uniform variable, a dependence MIST reads as none; its scores change with
the order of the codes), so it is given class labels only with a
:class:`~mistmodel.caller_warnings.TiedDataWarning`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from . import cross_check
from .caller_warnings import (CrossCheckWarning, TiedDataWarning, sample_labels, silenced,
                              warn)
from .estimators.base import check_exact_float64, constant_columns, refuse_masked
from .estimators.ksg import KSG, discrete_columns
from .tabular import table_columns, ties_by_name, warned_once

__all__ = ["mutual_info_scores"]


def mutual_info_scores(X: Any, y: Any, estimator: Any = None, discrete_target: bool = False,
                       random_state: int | None = None) -> np.ndarray:
    """``I(X_j; y)`` in nats for each column ``j`` of ``X``: an array ``(n_features,)``.

    Parameters
    ----------
    X : ``(n_samples, n_features)`` numpy array or pandas DataFrame.
    y : ``(n_samples,)`` target.
    estimator : object with ``estimate(x, y)``; ``None``: the shipped MIST checkpoint, or
        ``KSG(discrete="auto")`` with ``discrete_target`` (which needs at least 7 samples,
        k + 2 for its k = 5).
    discrete_target : ``y`` holds class labels (see the module docs).
    random_state : seed of the dither of a discrete target (``None``: 0, so that
        repeated calls give the same scores).
    """
    names, features = table_columns(X)
    if features.shape[0] < 2:
        raise ValueError(f"mutual_info_scores needs at least 2 samples; got {features.shape[0]}")
    if estimator is None:
        estimator = KSG(discrete="auto") if discrete_target else _shipped_mist()
    if not callable(getattr(estimator, "estimate", None)):
        raise TypeError(f"estimator must have an estimate(x, y) method; got "
                        f"{type(estimator).__name__}")
    target, constant = _target(y, features.shape[0], discrete_target, random_state,
                               dither=not _reads_classes(estimator))
    live = np.setdiff1d(np.arange(features.shape[1]), constant_columns(features))
    scores = np.zeros(features.shape[1])
    if not live.size or constant:
        return scores
    if discrete_target and getattr(estimator, "continuous_only", False):
        warn(f"mutual_info_scores: {getattr(estimator, 'name', 'this estimator')} reads "
             "the dithered class labels as a continuous target and sees almost none of "
             "their dependence on the features (its scores change with the order of the "
             "class codes). For class labels leave estimator=None: KSG(discrete='auto'), "
             "the mixed-KSG estimator.", TiedDataWarning)
    samples = [(features[:, j:j + 1], target) for j in live]        # views, not copies
    named = [(names[j], x) for j, (x, _) in zip(live, samples)]
    named.append((_target_name(getattr(y, "name", None), names), target))
    with ties_by_name(estimator, named), warned_once("mutual_info_scores"), \
            silenced(CrossCheckWarning):
        if callable(getattr(estimator, "estimate_batch", None)):
            # a warning about one sample of the batch names its feature
            with sample_labels([f"mutual_info_scores: feature {names[j]!r}" for j in live]):
                values = np.asarray(estimator.estimate_batch(samples),
                                    dtype=np.float64).ravel()
        else:
            values = np.array([estimator.estimate(x, t) for x, t in samples],
                              dtype=np.float64)
    cross_check.warn_by_name(estimator, "mutual_info_scores",
                             [f"feature {names[j]!r}" for j in live], samples, values)
    failed = [names[j] for j, v in zip(live, values) if np.isnan(v)]
    if failed:
        warn(f"mutual_info_scores: {getattr(estimator, 'name', type(estimator).__name__)} "
             f"returned NaN for the feature(s) {', '.join(map(repr, failed[:5]))}"
             f"{' and more' if len(failed) > 5 else ''}: their scores are NaN (a selector "
             "such as SelectKBest ranks NaN last)", RuntimeWarning)
    scores[live] = values
    return scores


def _target_name(label: Any, names: list[str]) -> str:
    """The target's name in warnings: its own (a named pandas Series), or ``y``, made
    unlike every feature's name."""
    name = "y" if label is None or str(label) in names else str(label)
    while name in names:
        name += "_"
    return name


def _reads_classes(estimator: Any) -> bool:
    """Whether ``estimator`` reads class codes as discrete (KSG's mixed rule)."""
    return isinstance(estimator, KSG) and estimator.discrete is not False


def _target(y: Any, n: int, discrete: bool, random_state: int | None,
            dither: bool = True) -> tuple[np.ndarray, bool]:
    """The target as an ``(n, 1)`` float column (class codes when ``discrete``, dithered
    unless ``dither`` is False and :func:`discrete_columns` reads the codes as discrete)
    and whether it is constant (one class)."""
    refuse_masked(y, "y")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D with one value per sample; got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"X has {n} samples but y has {y.shape[0]}")
    if discrete:
        missing = np.flatnonzero([_missing(v) for v in y.tolist()])
        if missing.size:
            raise ValueError(f"y contains a missing class label ({y[missing[0]]}, first at "
                             f"row {missing[0]}; {missing.size} such rows)")
        try:
            _, codes = np.unique(y, return_inverse=True)
        except TypeError:
            raise ValueError(f"y's class labels cannot be compared with each other (mixed "
                             f"types in dtype {y.dtype})") from None
        codes = codes.reshape(-1, 1).astype(np.float64)
        if not dither and discrete_columns(codes)[0]:
            return codes, bool(constant_columns(codes).size)
        rng = np.random.default_rng(0 if random_state is None else random_state)
        return codes + rng.random((n, 1)), bool(constant_columns(codes).size)
    if y.dtype == object:
        # Python ints beyond 2**53 round together as float64, as int64 ones do
        ints = [int(v) for v in y.tolist()
                if isinstance(v, (int, np.integer)) and not isinstance(v, bool)]
        if ints and max(-min(ints), max(ints)) > 2**53 and \
                np.unique(np.array(ints, dtype=np.float64)).size < len(set(ints)):
            raise ValueError("y holds integers beyond 2**53 that float64 cannot tell apart: "
                             "converting them merges distinct values. Subtract an offset "
                             "(such as its minimum) first.")
    if y.dtype.kind in "iu":
        check_exact_float64(y.reshape(-1, 1), lambda _: "y")
    # numbers only: text, dates and complex values are not a continuous target
    numeric = y.dtype.kind in "biuf" or (y.dtype == object and all(
        isinstance(v, (int, float, np.integer, np.floating)) for v in y.tolist()))
    if not numeric:
        raise ValueError(f"y is not numeric (dtype {y.dtype}); for class labels pass "
                         "discrete_target=True")
    values = y.astype(np.float64).reshape(-1, 1)
    bad = np.flatnonzero(~np.isfinite(values[:, 0]))
    if bad.size:
        raise ValueError(f"y contains {values[bad[0], 0]} (first at row {bad[0]}; "
                         f"{bad.size} such rows)")
    return values, bool(constant_columns(values).size)


def _missing(label: Any) -> bool:
    """Whether a class label is a missing value: None, a float NaN, pandas' NA or NaT."""
    return (label is None or (isinstance(label, (float, np.floating)) and label != label)
            or type(label).__name__ in ("NAType", "NaTType"))


@lru_cache(maxsize=1)
def _shipped_mist():
    from .mist import MIST
    return MIST.load()
