"""The interface every mutual-information estimator of mistmodel shares.

An estimator is a small object built from its settings. It reads one sample
``(x, y)`` with ``x`` of shape ``(n, dx)`` and ``y`` of shape ``(n, dy)`` and
returns ``I(X; Y)`` in nats, using every coordinate of both sides::

    est = KSG(k=5)
    value = est.estimate(x, y)                 # float, nats
    lo, hi = est.interval(x, y, level=0.9)     # bootstrap interval
    record = est.estimate_with_interval(x, y)  # value, interval, settings, timing

Writing an estimator
--------------------
Subclass :class:`Estimator`, set the class attribute ``name``, store a
``seed`` (int) in ``__init__``, and implement

* ``settings()`` - the constructor arguments as a JSON-serialisable dict;
* ``_estimate(x, y, seed)`` - the estimate for inputs that have already been
  validated (float64, 2-D, finite, same number of rows, at least
  ``min_rows`` rows, no constant column). ``seed`` drives every random choice
  the estimator makes; the public :meth:`Estimator.estimate` passes
  ``self.seed``, bootstrap replicates pass fresh seeds. Anything worth keeping
  about the run (effective batch size, steps, device...) goes into the dict
  returned by ``_run_info()``, which is read right after ``_estimate``.

An estimator of conditional mutual information ``I(X; Y | Z)`` also
implements ``_estimate_conditional(x, y, z, seed)`` on validated input
without constant columns; :meth:`Estimator.estimate_conditional` checks the
three sides with :func:`check_xyz`, drops constant columns (a constant ``z``
leaves ``I(X; Y | Z) = I(X; Y)``, and :meth:`Estimator.estimate` answers) and
refuses estimators without it. Each estimator standardises ``z`` as it does
``x`` and ``y``.

Optionally override ``min_rows`` (default 2), the class attribute
``bootstrap`` (see below) or :meth:`Estimator.interval` itself (an estimator
with its own notion of uncertainty, such as a quantile network, does that).

Constant columns
----------------
A column that takes a single value carries no information, and removing it
leaves ``I(X; Y)`` unchanged. :meth:`Estimator.estimate` therefore drops
constant columns before calling ``_estimate``; when one side has no
non-constant column left, the mutual information is exactly 0 and 0.0 is
returned without calling ``_estimate``. Which columns were dropped is
recorded in :attr:`Estimator.last_info` (``dropped_x`` and ``dropped_y``,
column indices of the input, empty when none) and in every
:class:`Estimate` (``record.dropped_x``, ``record.dropped_y``).

Scale
-----
Mutual information does not depend on the scale of a column, and no
estimator's answer may either. :func:`standardize_columns` centres each
column and divides it by its standard deviation at any magnitude: each
column is first divided by a power of two close to its largest absolute
value (exact in floating point), so that squares neither overflow (values
from about 1e154) nor underflow (below about 1e-154). Data scaled by any
factor from 1e-300 to 1e300, per side or per column, gives the same
standardised columns to rounding. The estimators standardise with it (or
with :func:`scale_to_unit`, which divides all columns by one common power
of two, where the relative scale of the columns matters).

Bootstrap intervals
-------------------
:meth:`Estimator.interval` is a percentile bootstrap over rows, in one of two
schemes chosen by the class attribute ``bootstrap``:

``"replacement"``
    The classical percentile bootstrap: ``n_boot`` samples of ``n`` rows drawn
    with replacement, and the interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the replicate estimates.

``"replacement-bc"``
    The same replicates, shifted by the bootstrap estimate of the bias: the
    interval is that of ``theta* + 2 (theta_hat - mean(theta*))``, i.e. the
    spread of the replicates around the bias-corrected estimate
    ``2 theta_hat - mean(theta*)`` (Efron & Tibshirani 1993, ch. 10). The
    plain percentile interval sits around ``theta_hat + bias``, which is the
    truth plus twice the bias; for a statistic whose bias is of the order of
    its standard error (CCA in 8 + 8 dimensions at n = 300) its coverage
    collapses, while the corrected one stays near nominal. The point estimate
    itself is not corrected, so it can lie outside its own interval.

``"replacement-centred"``
    The same replicates, moved so that their mean is the estimate: the interval
    is that of ``theta* + (theta_hat - mean(theta*))``. For an estimator that is
    unbiased on its own (CCA's bias-corrected form) the bootstrap's shift would
    correct a bias that is no longer there; only the spread is taken from it.

``"subsample"``
    For estimators that a duplicated row breaks. A bootstrap sample drawn with
    replacement contains on average 37% repeated rows; for a nearest-neighbour
    estimator a repeated row is its own nearest neighbour at distance zero (or
    at the scale of the tie-breaking noise), which drives the estimate far
    upwards, and a neural estimator sees the same row in its training and its
    held-out half. Instead, each replicate is a subsample of
    ``m = n // 2`` distinct rows drawn without replacement
    (half-sampling, or the delete-d jackknife of Shao & Wu 1989 with
    ``d = n - m``). The deviations of the replicates from their mean are
    rescaled by ``sqrt(m (n - 1) / (n (n - m)))``, the ratio between the
    variance of a mean over ``n`` i.i.d. rows and that of a mean over ``m``
    rows drawn without replacement from ``n`` (the factor is about 1 at
    ``m = n / 2``), and added to the full-sample estimate; the interval is the
    percentile interval of these recentred replicates. Recentring removes the
    difference in bias between sample sizes ``m`` and ``n``; the rescaling is
    exact for estimators that are averages of per-row terms, which the
    k-nearest-neighbour estimators are to first order.

Neither scheme corrects an estimator's bias: an interval around a biased
estimate covers the truth less often than its level says.

Too small samples and degenerate bootstraps
-------------------------------------------
Replicates that are all (or nearly all) equal give an interval of zero
width, which claims a certainty no sample has. That happens when the
replicate samples are at the estimator's smallest size: a KSG replicate of
``k + 2`` rows has all but one of the other rows among its k nearest neighbours,
so replicates return nearly the same number. Every scheme therefore needs
``n >= 4 * min_rows`` (:attr:`Estimator.min_bootstrap_rows`): subsamples of
``n // 2 >= 2 * min_rows`` rows (28 rows for KSG with k = 5, where measured
intervals reach their full width from subsamples of about ``2 (k + 1)``
rows), and resamples with replacement holding about ``0.63 n >= 2.5 *
min_rows`` distinct rows. Any bootstrap whose interval comes out with zero
width is refused as well. Both raise :class:`BootstrapError` (a ``ValueError``)
saying why. When a whole side is constant the mutual information is exactly
0 and the interval is ``(0.0, 0.0)`` without resampling.

An interval need not contain the point estimate (the bias-corrected one is
shifted away from it on purpose, and any percentile interval of a skewed or
biased replicate distribution can miss it). :class:`Estimate` says whether
it does (``contains_value``) and, when it does not, why
(``interval_note``).
"""

from __future__ import annotations

import math
import numbers
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..per_thread import PerThread, state_without_records
from ..caller_warnings import (CeilingWarning, DiscreteBiasWarning, OutOfRangeWarning,
                               RepeatedRowsWarning, SmallSampleWarning, TiedDataWarning,
                               is_silenced, silenced, warn)

__all__ = [
    "BootstrapError",
    "Estimate",
    "Estimator",
    "as_pair",
    "check_exact_float64",
    "check_xy",
    "check_flag",
    "check_seed",
    "check_xyz",
    "constant_columns",
    "refuse_durations",
    "refuse_masked",
    "scale_to_unit",
    "standardize_columns",
    "tied_columns",
    "tied_flags",
]

BOOTSTRAP_SCHEMES = ("replacement", "replacement-bc", "replacement-centred", "subsample")


EXACT_INTEGERS = 2 ** 53    # float64 holds every integer up to this one exactly


def check_exact_float64(arr: np.ndarray, name: Callable[[int], str]) -> None:
    """Refuse an integer column of ``arr`` ``(n, d)`` that float64 cannot hold apart:
    beyond :data:`EXACT_INTEGERS` neighbouring integers round to the same double, so the
    conversion would merge values (a column of distinct IDs or nanosecond timestamps
    could become constant, and its MI 0).  ``name(j)`` names column ``j``."""
    if arr.dtype.kind not in "iu" or arr.dtype.itemsize < 8 or not arr.size:
        return
    for j in np.flatnonzero((arr.max(axis=0) > EXACT_INTEGERS)
                            | (arr.min(axis=0) < -EXACT_INTEGERS)):
        before = np.unique(arr[:, j]).size
        after = np.unique(arr[:, j].astype(np.float64)).size
        if after < before:
            raise ValueError(
                f"{name(int(j))} holds integers beyond 2**53 (from {int(arr[:, j].min())} to "
                f"{int(arr[:, j].max())}), which float64 cannot tell apart: converting it "
                f"merges {before - after} of its {before} distinct values. Subtract an offset "
                "(such as its minimum) first, or pass it as float if its precision is not "
                "needed.")


def refuse_masked(a: Any, label: str) -> None:
    """Refuse a numpy masked array with masked entries (``np.asarray`` would read the
    values under the mask as data)."""
    if isinstance(a, np.ma.MaskedArray) and np.ma.getmaskarray(a).any():
        raise ValueError(f"{label} is a masked array with masked entries, which would be "
                         "read as their underlying values: drop the rows that hold them "
                         "(np.ma.compress_rows) or fill them first")


def refuse_durations(dtype: np.dtype, what: str) -> None:
    """Refuse durations (numpy counts ``timedelta64`` as a number, and reads a missing one,
    NaT, as the smallest int64)."""
    if dtype.kind == "m":
        raise ValueError(f"{what} holds durations ({dtype}); convert them to numbers first, "
                         "e.g. seconds: values / np.timedelta64(1, 's'), with missing ones "
                         "(NaT) dropped")


def _frame_columns(frame: Any, label: str) -> np.ndarray:
    """A pandas DataFrame read column by column, each checked as its own dtype: converting
    the whole frame first would turn int64 ids beyond 2**53 into float64 unchecked, and
    refuse a frame of floats and booleans as "object"."""
    columns = []
    for j in range(frame.shape[1]):
        column = np.asarray(frame.iloc[:, j].to_numpy())
        what = f"{label} column {j} ({str(frame.columns[j])!r})"
        refuse_durations(column.dtype, what)
        if column.dtype == object or not (np.issubdtype(column.dtype, np.number)
                                          or column.dtype == np.bool_):
            raise ValueError(f"{what} must be numeric; got dtype {column.dtype}")
        check_exact_float64(column.reshape(-1, 1), lambda _: what)
        columns.append(column.astype(np.float64))
    return np.stack(columns, axis=1) if columns else np.empty((len(frame), 0))


def _as_2d_float(a: ArrayLike, label: str) -> np.ndarray:
    """Convert one side to a float64 2-D array or raise a clear error."""
    refuse_masked(a, label)
    if type(a).__module__.split(".")[0] == "pandas" and hasattr(a, "columns") \
            and hasattr(a, "iloc"):
        a = _frame_columns(a, label)
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{label} could not be read as an array: {exc}") from exc
    refuse_durations(arr.dtype, label)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise ValueError(f"{label} must be numeric; got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{label} must be real-valued; got dtype {arr.dtype}")
    if arr.ndim == 1:
        raise ValueError(
            f"{label} must be 2-D with shape (n, d{label}); got a 1-D array of "
            f"shape {arr.shape}. For a single variable pass "
            f"{label}.reshape(-1, 1)."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{label} must be 2-D with shape (n, d{label}); got shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{label} has no columns (shape {arr.shape})")
    check_exact_float64(arr, lambda j: f"{label} column {j}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _check_finite(arr: np.ndarray, label: str) -> None:
    """Raise naming the first column that holds a NaN or an infinite value."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    col = int(np.flatnonzero(bad.any(axis=0))[0])
    row = int(np.flatnonzero(bad[:, col])[0])
    value = arr[row, col]
    kind = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    n_bad_cols = int(bad.any(axis=0).sum())
    more = f" ({n_bad_cols} columns affected)" if n_bad_cols > 1 else ""
    raise ValueError(f"{label} column {col} contains {kind} (first at row {row}){more}")


def as_pair(item: Any) -> tuple[Any, Any]:
    """A sample given as ``(x, y)`` or as an object with ``.x`` and ``.y``."""
    if hasattr(item, "x") and hasattr(item, "y"):
        return item.x, item.y
    try:
        x, y = item
    except (TypeError, ValueError):
        raise ValueError("each sample must be an (x, y) pair or have .x and .y attributes") from None
    return x, y


def _check_same_index(**sides: Any) -> None:
    """Refuse pandas sides whose row indexes differ: rows are paired by position, so
    ``y`` sorted differently from ``x`` would pair the wrong rows."""
    indexed = [(name, a.index) for name, a in sides.items()
               if type(a).__module__.split(".")[0] == "pandas" and hasattr(a, "index")]
    for name, index in indexed[1:]:
        first, first_index = indexed[0]
        if not first_index.equals(index):
            raise ValueError(
                f"{first} and {name} are pandas objects with different row indexes; rows are "
                f"paired by position, which would pair other rows than their labels say. "
                f"Align them first ({name} = {name}.loc[{first}.index]), or pass "
                f"{name}.to_numpy() to pair by position")


def check_xy(
    x: ArrayLike, y: ArrayLike, min_rows: int = 2, *, who: str = "this estimator"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one sample and return it as two C-contiguous float64 arrays.

    Parameters
    ----------
    x, y
        Arrays of shape ``(n, dx)`` and ``(n, dy)``; the rows are the
        observations. 1-D input is refused rather than guessed at: a 1-D
        array could be one variable or one observation, so the error says to
        pass ``a.reshape(-1, 1)`` for a single variable.
    min_rows
        Smallest ``n`` the caller can work with.
    who
        How the caller is named in the too-few-rows message.

    Raises
    ------
    ValueError
        Non-numeric or complex input; a 1-D or >2-D array; no columns; NaN or
        infinite values (the message names the side and the column, e.g.
        ``"x column 3 contains NaN (first at row 17)"``); different numbers of
        rows in ``x`` and ``y``; fewer than ``min_rows`` rows.
    """
    xa = _as_2d_float(x, "x")
    ya = _as_2d_float(y, "y")
    if xa.shape[0] != ya.shape[0]:
        raise ValueError(
            f"x and y must have the same number of rows (one per observation); "
            f"x has {xa.shape[0]} rows, y has {ya.shape[0]}"
        )
    _check_same_index(x=x, y=y)
    _check_finite(xa, "x")
    _check_finite(ya, "y")
    n = xa.shape[0]
    if n < min_rows:
        raise ValueError(f"{who} needs at least {min_rows} rows; got {n}")
    return xa, ya


def check_xyz(
    x: ArrayLike, y: ArrayLike, z: ArrayLike, min_rows: int = 2, *, who: str = "this estimator"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a conditional sample ``(x, y, z)`` as :func:`check_xy` does a pair.

    ``z`` is the conditioning side: a 2-D array ``(n, dz)`` with at least one
    column, finite, with as many rows as ``x`` and ``y``. Errors name the side
    (``"z column 2 contains NaN (first at row 5)"``).
    """
    xa, ya = check_xy(x, y, min_rows, who=who)
    za = _as_2d_float(z, "z")
    if za.shape[0] != xa.shape[0]:
        raise ValueError(
            f"z must have as many rows as x and y (one per observation); "
            f"x and y have {xa.shape[0]} rows, z has {za.shape[0]}"
        )
    _check_same_index(x=x, y=y, z=z)
    _check_finite(za, "z")
    return xa, ya, za


def constant_columns(a: np.ndarray) -> np.ndarray:
    """Indices of the columns of a 2-D array that hold a single value."""
    if a.shape[0] == 0:
        return np.arange(a.shape[1])
    return np.flatnonzero(np.all(a == a[:1], axis=0))


def scale_to_unit(a: np.ndarray, axis: int | None = 0) -> np.ndarray:
    """``a`` divided by a power of two per column (``axis=0``) or overall
    (``axis=None``), so that the largest absolute value lies in ``[0.5, 1)``.

    Multiplying by a power of two is exact in floating point (unless a value
    falls below 2**-1022 relative to the largest one), so this changes no
    ratio between values of the same column (or of the whole array), and
    sums of squares of the result can neither overflow nor underflow.
    All-zero columns are left as they are.
    """
    peak = np.max(np.abs(a), axis=axis, keepdims=axis is not None)
    _, exponent = np.frexp(peak)
    return np.ldexp(a, -exponent)


_KEPT: ContextVar[dict[str, Sequence[int]]] = ContextVar("mistmodel_kept_columns", default={})


@contextmanager
def numbered_as_given(**kept: Sequence[int]) -> Iterator[None]:
    """Inside the block (this thread or task only), a message about column ``j`` of a side
    whose constant columns were dropped names it by its number in the caller's array,
    ``kept[side][j]`` (``kept``: the numbers of the columns left, per side)."""
    token = _KEPT.set({**_KEPT.get(), **kept})
    try:
        yield
    finally:
        _KEPT.reset(token)


def column_number(side: str, j: int) -> int:
    """Column ``j`` of ``side`` as the caller numbers it (see :func:`numbered_as_given`)."""
    kept = _KEPT.get().get(side)
    return int(kept[j]) if kept is not None and 0 <= j < len(kept) else int(j)


def kept_columns(d: int, dropped: np.ndarray) -> np.ndarray:
    """The numbers of the columns of ``d`` left when ``dropped`` are dropped."""
    return np.delete(np.arange(d), dropped)


def standardize_columns(a: np.ndarray, side: str = "input") -> np.ndarray:
    """Each column of a 2-D array centred and divided by its standard deviation.

    Works at any magnitude (see "Scale" in the module docs): the result for
    ``c * a`` equals that for ``a`` to rounding, for any ``c`` from 1e-300 to
    1e300, also when ``c`` differs from column to column. Columns must not be
    constant (their standard deviation would be 0).

    A column whose values span more than float64 can resolve around its mean
    (one value of 1e300 among values near 1) loses its small differences when
    centred. When standardising merges more than a tenth of a column's
    distinct values, a ``ValueError`` names the column (``side`` column j)
    instead of returning an estimate of data that is no longer there.
    """
    raw = np.asarray(a, dtype=np.float64)
    a = scale_to_unit(raw, axis=0)
    a = a - a.mean(axis=0)
    a = a / a.std(axis=0)
    before, after = _distinct_per_column(raw), _distinct_per_column(a)
    merged = np.flatnonzero(after < 0.9 * before)
    if merged.size:
        j = int(merged[0])
        col = raw[:, j]
        raise ValueError(
            f"{side} column {column_number(side, j)} spans too wide a range for float64 "
            "arithmetic: "
            f"centring and scaling it merges {before[j] - after[j]} of its {before[j]} "
            f"distinct values (values from {col.min():.3g} to {col.max():.3g}, median "
            f"{np.median(col):.3g}); transform the column first (e.g. log or ranks)"
        )
    return a


TIED_FRACTION = 0.1   # a column with more than this fraction of repeated values is tied


def tied_columns(a: np.ndarray) -> list[tuple[int, float]]:
    """``(column, fraction of rows repeating an earlier value)`` for every column of ``a``
    whose fraction exceeds :data:`TIED_FRACTION`."""
    repeated = 1.0 - _distinct_per_column(a) / max(len(a), 1)
    return [(int(j), float(repeated[j])) for j in np.flatnonzero(repeated > TIED_FRACTION)]


#: Rows that repeat an earlier row as copies do are warned of from this share of the rows.
COPIED_ROWS_WARN = 0.01


def copied_rows(a: np.ndarray) -> int:
    """How many rows of ``a`` (n, d) repeat an earlier row in every column, where they are
    at least half of the repeated values of its least tied column: copied rows.  Values on
    a grid repeat far more often one column at a time than in all columns together (a
    bivariate Gaussian rounded to 0.1, n = 1,000: 31% of the rows, 94% of each column's
    values), and give 0; so does a single column, whose repeats are its ties.  Without a
    column whose values repeat in more than :data:`COPIED_ROWS_WARN` of the rows the rows
    are not even compared."""
    n = a.shape[0]
    if n < 2 or a.shape[1] < 2:      # one column's repeats are its ties, not copied rows
        return 0
    least_tied = n - int(_distinct_per_column(a).max())
    if least_tied <= COPIED_ROWS_WARN * n:
        return 0
    repeated = n - np.unique(a, axis=0).shape[0]
    return repeated if 2 * repeated >= least_tied else 0


def warn_copied_rows(who: str, effect: str, *sides: np.ndarray) -> None:
    """A :class:`~mistmodel.caller_warnings.RepeatedRowsWarning` where more than
    :data:`COPIED_ROWS_WARN` of the rows of ``sides`` (taken together) are
    :func:`copied_rows`; ``effect`` says what a copy does to the estimator."""
    if is_silenced(RepeatedRowsWarning):
        return
    joint = np.hstack(sides)
    n, copies = joint.shape[0], copied_rows(joint)
    if copies > COPIED_ROWS_WARN * n:
        warn(f"{who}: {copies} of {n} rows ({copies / n:.0%}) repeat an earlier row in every "
             f"column of the sample, as copies do; {effect}, which reads as dependence "
             "(KSG, independent 2 + 2 columns, n = 1,000: 0.007 nats, 0.034 with 5% of the "
             "rows repeated, 0.36 with every row twice). If they are copies, drop them "
             "(np.unique(np.hstack([x, y]), axis=0)); MIST, which reads ranks, is not moved "
             "by them (0.009 to 0.010 in the same samples).", RepeatedRowsWarning)


def tied_flags(a: np.ndarray) -> np.ndarray:
    """Which columns of ``a`` :func:`tied_columns` finds, as a boolean array."""
    flags = np.zeros(np.shape(a)[1], dtype=bool)
    flags[[j for j, _ in tied_columns(a)]] = True
    return flags


def _distinct_per_column(a: np.ndarray) -> np.ndarray:
    ordered = np.sort(a, axis=0)
    return 1 + np.count_nonzero(np.diff(ordered, axis=0), axis=0)


class BootstrapError(ValueError):
    """A bootstrap interval that the sample cannot support (too few rows, or
    replicates too alike to give an interval of positive width)."""


class TooFewRowsError(ValueError):
    """Too few rows are left to estimate from: for ``KSG(discrete="auto")``, once the rows
    alone in their group of equal discrete values are left out. A bootstrap replicate or a
    permuted copy that raises it is reported as such, not as the user's sample."""


def _json_ready(value: Any) -> Any:
    """Turn tuples and numpy scalars into plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@dataclass(frozen=True)
class Estimate:
    """One estimate with everything needed to record what ran.

    ``lower``/``upper`` are ``None`` when no interval was requested.
    ``settings`` are the estimator's constructor settings, ``info`` what
    happened in this run (effective batch size, steps, device, dropped
    constant columns...), ``seconds`` the wall time of the whole call.
    :attr:`dropped_x`, :attr:`dropped_y`, :attr:`contains_value` and
    :attr:`interval_note` read the parts of it a user should see.
    """

    estimator: str
    value: float
    lower: float | None = None
    upper: float | None = None
    level: float | None = None
    n_boot: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = float("nan")

    @property
    def dropped_x(self) -> list[int]:
        """Indices of the constant columns of x that were left out."""
        return list(self.info.get("dropped_x", []))

    @property
    def dropped_y(self) -> list[int]:
        """Indices of the constant columns of y that were left out."""
        return list(self.info.get("dropped_y", []))

    @property
    def contains_value(self) -> bool | None:
        """Whether ``lower <= value <= upper`` (``None`` without an interval
        or with a NaN bound)."""
        if self.lower is None or self.upper is None:
            return None
        if math.isnan(self.lower) or math.isnan(self.upper):
            return None
        return self.lower <= self.value <= self.upper

    @property
    def interval_note(self) -> str | None:
        """Why the interval is what it is, when that needs saying (e.g. why it
        does not contain the estimate); ``None`` otherwise."""
        return self.info.get("interval_note")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of all fields."""
        return _json_ready(asdict(self))


class Estimator(ABC):
    """Base class of the mutual-information estimators (see module docstring)."""

    #: Short name recorded with every result.
    name: ClassVar[str] = "estimator"
    #: Bootstrap scheme of :meth:`interval`: "replacement", "replacement-bc"
    #: or "subsample" (see module docs).
    bootstrap: ClassVar[str] = "replacement"
    #: Seed of every random choice of :meth:`estimate`; subclasses set it.
    seed: int = 0
    #: What the calling thread's latest call recorded (:attr:`last_info`).
    _last_info = PerThread(dict)

    # ------------------------------------------------------------------ API
    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The constructor settings as a JSON-serialisable dict."""

    @property
    def min_rows(self) -> int:
        """Smallest number of rows :meth:`estimate` accepts."""
        return 2

    @property
    def min_bootstrap_rows(self) -> int:
        """Smallest number of rows :meth:`interval` accepts: ``4 * min_rows``
        (see module docs)."""
        return 4 * self.min_rows

    def __getstate__(self) -> dict[str, Any]:
        """Pickled and copied without the calls' records (``last_info`` and the like are
        per thread: :mod:`mistmodel.per_thread`): a copy starts with none."""
        return state_without_records(self)

    @property
    def last_info(self) -> dict[str, Any]:
        """What happened in the most recent single-sample estimate (:meth:`estimate`,
        :meth:`estimate_conditional`, :meth:`estimate_with_interval`, ...): empty after
        one that raised, and after a batch call.  :meth:`interval` and
        :meth:`bootstrap_distribution` leave it as it was."""
        return dict(self._last_info)

    def estimate(self, x: ArrayLike, y: ArrayLike) -> float:
        """Estimate ``I(X; Y)`` in nats from ``x`` (n, dx) and ``y`` (n, dy)."""
        self._last_info = {}            # a call that fails leaves no earlier call's record
        xa, ya = check_xy(x, y, self.min_rows, who=self._who())
        value, info = self._estimate_checked(xa, ya, int(self.seed))
        self._last_info = info
        return value

    @property
    def estimates_conditional(self) -> bool:
        """Whether :meth:`estimate_conditional` is available."""
        return hasattr(self, "_estimate_conditional")

    def estimate_conditional(self, x: ArrayLike, y: ArrayLike, z: ArrayLike) -> float:
        """Estimate ``I(X; Y | Z)`` in nats from ``x`` (n, dx), ``y`` (n, dy), ``z`` (n, dz).

        Constant columns are dropped as in :meth:`estimate` (recorded as
        ``dropped_x``, ``dropped_y`` and ``dropped_z`` in :attr:`last_info`).
        A constant ``x`` or ``y`` gives exactly 0; a constant ``z`` gives
        ``I(X; Y)``, estimated by :meth:`estimate`'s path.

        Raises
        ------
        NotImplementedError
            The estimator has no conditional form.
        ValueError
            Bad input, as :func:`check_xyz` describes.
        """
        if not self.estimates_conditional:
            raise NotImplementedError(
                f"{self.name} does not estimate conditional mutual information I(X; Y | Z); "
                "KSG (Frenzel-Pompe), CCA (Gaussian partial form) and the conditional MIST "
                "(MIST.load(variant='mist_cmi')) do"
            )
        self._last_info = {}
        xa, ya, za = check_xyz(x, y, z, self.min_rows, who=self._who())
        const_z = constant_columns(za)
        if const_z.size == za.shape[1]:
            value, info = self._estimate_given_constant_z(xa, ya)
            info.update(dz=int(za.shape[1]), dropped_z=const_z.tolist(),
                        note_z="z is constant, so I(X; Y | Z) = I(X; Y)")
            self._last_info = info
            return value
        kept = {"z": kept_columns(za.shape[1], const_z)}
        za = np.delete(za, const_z, axis=1)
        const_x, const_y = constant_columns(xa), constant_columns(ya)
        kept.update(x=kept_columns(xa.shape[1], const_x), y=kept_columns(ya.shape[1], const_y))
        info: dict[str, Any] = {
            "n": int(xa.shape[0]),
            "dx": int(xa.shape[1]),
            "dy": int(ya.shape[1]),
            "dz": int(za.shape[1] + const_z.size),
            "dropped_x": const_x.tolist(),
            "dropped_y": const_y.tolist(),
            "dropped_z": const_z.tolist(),
        }
        xa = np.delete(xa, const_x, axis=1)
        ya = np.delete(ya, const_y, axis=1)
        if xa.shape[1] == 0 or ya.shape[1] == 0:
            info["note"] = "a side is constant, so the conditional mutual information is 0"
            self._last_info = info
            return 0.0
        with numbered_as_given(**kept):
            value = float(self._estimate_conditional(xa, ya, za, int(self.seed)))
        info.update(self._run_info())
        self._last_info = info
        return value

    def _estimate_given_constant_z(self, x: np.ndarray, y: np.ndarray
                                   ) -> tuple[float, dict[str, Any]]:
        """I(X; Y | Z) when every z column is constant: I(X; Y), by :meth:`estimate`'s
        path (an estimator that cannot answer I(X; Y) refuses here)."""
        return self._estimate_checked(x, y, int(self.seed))

    def interval(
        self,
        x: ArrayLike,
        y: ArrayLike,
        level: float = 0.9,
        n_boot: int = 100,
        seed: int = 0,
    ) -> tuple[float, float]:
        """Percentile-bootstrap interval for ``I(X; Y)`` at the given level.

        ``seed`` fixes the resampled rows and the seeds handed to the
        replicates, so the interval is reproducible. The cost is ``n_boot``
        estimates (plus one full-sample estimate, except for "replacement").
        Replicates that come out non-finite, or that leave the estimator too few
        usable rows (:class:`TooFewRowsError`), are left out, with a warning; if
        fewer than two are left the interval is ``(nan, nan)``. When a side
        is constant the interval is ``(0.0, 0.0)``: the mutual information is
        exactly 0.

        Raises
        ------
        BootstrapError
            ``n`` below :attr:`min_bootstrap_rows`, or replicates so alike
            that the interval would have zero width.
        """
        _check_level(level)
        seed = check_seed(seed)
        xa, ya = check_xy(x, y, self.min_rows, who=self._who())
        lo, hi, _ = self._bootstrap_interval(xa, ya, level, n_boot, seed, center=None)
        return lo, hi

    def bootstrap_distribution(
        self, x: ArrayLike, y: ArrayLike, n_boot: int = 100, seed: int = 0
    ) -> np.ndarray:
        """The finite bootstrap values whose percentiles :meth:`interval` takes.

        For the "replacement" scheme these are the replicate estimates; for
        "replacement-bc" the bias-corrected and for "subsample" the recentred,
        rescaled replicates (see module docs).
        One call gives intervals at any number of levels. All zeros when a
        side is constant.
        """
        seed = check_seed(seed)
        xa, ya = check_xy(x, y, self.min_rows, who=self._who())
        if _a_side_is_constant(xa, ya):
            return np.zeros(_check_n_boot(n_boot))
        return self._bootstrap_values(xa, ya, n_boot, seed, center=None)

    def estimate_with_interval(
        self,
        x: ArrayLike,
        y: ArrayLike,
        level: float = 0.9,
        n_boot: int = 100,
        seed: int = 0,
    ) -> Estimate:
        """Estimate, bootstrap interval, settings and timing in one record.

        Raises :class:`BootstrapError` where :meth:`interval` does.
        """
        _check_level(level)
        seed = check_seed(seed)
        start = time.perf_counter()
        xa, ya = check_xy(x, y, self.min_rows, who=self._who())
        value = self.estimate(xa, ya)
        info = self.last_info
        lo, hi, n_finite = self._bootstrap_interval(xa, ya, level, n_boot, seed, center=value)
        info["n_boot_finite"] = n_finite
        note = self._interval_note(value, lo, hi, self._sample_scheme(xa, ya))
        if note:
            info["interval_note"] = note
        return Estimate(
            estimator=self.name,
            value=value,
            lower=lo,
            upper=hi,
            level=level,
            n_boot=n_boot,
            settings=_json_ready(self.settings()),
            info=_json_ready(info),
            seconds=time.perf_counter() - start,
        )

    def test_independence(self, x: ArrayLike, y: ArrayLike, n_permutations: int = 199,
                          seed: int = 0) -> Any:
        """Permutation test of independence with this estimator as the statistic.

        Returns :class:`mistmodel.independence.IndependenceTest`; its ``p_value`` has an
        exact level whatever the estimator's bias (see :mod:`mistmodel.independence`).
        """
        from ..independence import independence_test

        return independence_test(self, x, y, n_permutations=n_permutations, seed=seed)

    def test_conditional_independence(self, x: ArrayLike, y: ArrayLike, z: ArrayLike,
                                      n_permutations: int = 199, seed: int = 0,
                                      neighbours: int = 5) -> Any:
        """Local permutation test of X independent of Y given Z with this estimator's
        I(X;Y|Z) as the statistic (:func:`mistmodel.independence.conditional_independence_test`;
        its level is approximate)."""
        from ..independence import conditional_independence_test

        return conditional_independence_test(self, x, y, z, n_permutations=n_permutations,
                                             seed=seed, neighbours=neighbours)

    def run(self, x: ArrayLike, y: ArrayLike) -> Estimate:
        """Estimate without an interval, returned as a record with timing."""
        start = time.perf_counter()
        value = self.estimate(x, y)
        return Estimate(
            estimator=self.name,
            value=value,
            settings=_json_ready(self.settings()),
            info=_json_ready(self.last_info),
            seconds=time.perf_counter() - start,
        )

    # ------------------------------------------------------ for subclasses
    @abstractmethod
    def _estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        """Estimate on validated input without constant columns."""

    def _run_info(self) -> dict[str, Any]:
        """Facts about the latest ``_estimate`` call; empty by default."""
        return {}

    # ------------------------------------------------------------ helpers
    def _describe(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{self.name}({shown})"

    def _who(self) -> str:
        """How the estimator is named in the too-few-rows error."""
        return self._describe()

    def __repr__(self) -> str:
        return self._describe()

    def _estimate_checked(
        self, x: np.ndarray, y: np.ndarray, seed: int
    ) -> tuple[float, dict[str, Any]]:
        """Drop constant columns, then call ``_estimate`` (see module docs)."""
        const_x, const_y = constant_columns(x), constant_columns(y)
        info: dict[str, Any] = {
            "n": int(x.shape[0]),
            "dx": int(x.shape[1]),
            "dy": int(y.shape[1]),
            "dropped_x": const_x.tolist(),
            "dropped_y": const_y.tolist(),
        }
        kept = {"x": kept_columns(x.shape[1], const_x), "y": kept_columns(y.shape[1], const_y)}
        if const_x.size or const_y.size:
            x = np.delete(x, const_x, axis=1)
            y = np.delete(y, const_y, axis=1)
            if x.shape[1] == 0 or y.shape[1] == 0:
                info["note"] = "a side is constant, so the mutual information is 0"
                return 0.0, info
        with numbered_as_given(**kept):
            value = float(self._estimate(x, y, seed))
        info.update(self._run_info())
        return value, info

    def _warn_sample_ties(self, x: np.ndarray, y: np.ndarray) -> None:
        """Raise the sample's own tie warnings, where an estimator has them, without
        estimating it: for the "replacement" bootstrap, whose replicates' warnings are
        held back (none by default)."""

    def bootstrap_scheme(self, x: np.ndarray, y: np.ndarray) -> str:
        """The bootstrap scheme of :meth:`interval` for this sample (by default the
        class attribute ``bootstrap``; an estimator whose form depends on the
        sample's shape may choose per sample)."""
        return self.bootstrap

    def _sample_scheme(self, x: np.ndarray, y: np.ndarray) -> str:
        """:meth:`bootstrap_scheme` of the sample the estimate reads: its constant columns
        dropped."""
        return self.bootstrap_scheme(*(np.delete(a, constant_columns(a), axis=1)
                                       for a in (x, y)))

    def _refuse_small_sample(self, n: int) -> None:
        if self.bootstrap == "subsample":
            why = (
                f"the subsample bootstrap draws subsamples of n // 2 rows, and a "
                f"subsample needs at least 2 * {self.min_rows} = {2 * self.min_rows} "
                f"rows (twice the {self.min_rows} rows the estimator needs) for its "
                "replicates to vary as the estimate does"
            )
        else:
            why = (
                f"a resample drawn with replacement holds about 0.63 n distinct rows, "
                f"and needs well over the {self.min_rows} rows the estimator needs for "
                "its replicates to vary as the estimate does"
            )
        raise BootstrapError(
            f"{self._describe()}: n = {n} rows is too small for a bootstrap "
            f"interval; it needs n >= {self.min_bootstrap_rows} ({why})"
        )

    def _bootstrap_interval(
        self,
        x: np.ndarray,
        y: np.ndarray,
        level: float,
        n_boot: int,
        seed: int,
        center: float | None,
    ) -> tuple[float, float, int]:
        """Lower and upper bound and the number of finite replicates, after the
        checks of the module docs."""
        if _a_side_is_constant(x, y):
            _check_n_boot(n_boot)
            return 0.0, 0.0, 0
        values = self._bootstrap_values(x, y, n_boot, seed, center)
        lo, hi = _percentile_interval(values, level)
        if values.size >= 2 and not hi - lo > 1e-12 * max(1.0, abs(lo), abs(hi)):
            distinct = np.unique(values).size
            raise BootstrapError(
                f"{self._describe()}: the {values.size} bootstrap replicates at "
                f"n = {x.shape[0]} give an interval of zero width at level {level} "
                f"({distinct} distinct value{'s' if distinct > 1 else ''}); the "
                "sample is too small or too coarse (e.g. few distinct values) for "
                "a bootstrap interval of this estimator"
            )
        return lo, hi, int(values.size)

    def _interval_note(self, value: float, lo: float, hi: float, scheme: str) -> str | None:
        """Why an interval from the bootstrap ``scheme`` excludes its estimate (``None``
        when it does not)."""
        if math.isnan(lo) or math.isnan(hi) or lo <= value <= hi:
            return None
        side = "above" if lo > value else "below"
        if scheme == "replacement-bc":
            return (
                f"the bias-corrected bootstrap interval lies {side} the estimate: the "
                "replicates put the estimate's bias at more than the interval's "
                "half-width, and the interval is centred on the bias-corrected value "
                "2 * estimate - mean(replicates)"
            )
        return (
            f"the bootstrap interval lies {side} the estimate: the replicates are "
            "skewed or biased relative to the full-sample estimate"
        )

    def _bootstrap_values(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_boot: int,
        seed: int,
        center: float | None,
    ) -> np.ndarray:
        n_boot = _check_n_boot(n_boot)
        scheme = self._sample_scheme(x, y)
        if scheme not in BOOTSTRAP_SCHEMES:
            raise ValueError(f"unknown bootstrap scheme {scheme!r}")
        n = x.shape[0]
        if n < self.min_bootstrap_rows:
            self._refuse_small_sample(n)
        rng = np.random.default_rng(seed)
        subsample = scheme == "subsample"
        m = n // 2 if subsample else n
        reps = np.empty(n_boot)
        unusable = 0
        # a replicate's warnings of small, sparse or tied samples are about the replicate
        # (resampled rows repeat), not the user's sample, whose own estimate gives them;
        # under "replacement", which does not estimate the sample, its tie check does
        # (unless the caller estimated it: ``center``)
        if scheme == "replacement" and center is None:
            self._warn_sample_ties(x, y)
        with silenced(SmallSampleWarning, DiscreteBiasWarning, CeilingWarning,
                      OutOfRangeWarning, TiedDataWarning):
            for b in range(n_boot):
                rows = (rng.choice(n, size=m, replace=False) if subsample
                        else rng.integers(0, n, size=n))
                rep_seed = int(rng.integers(0, 2**31 - 1))
                try:
                    reps[b], _ = self._estimate_checked(x[rows], y[rows], rep_seed)
                except TooFewRowsError:
                    reps[b], unusable = np.nan, unusable + 1   # left out below
        finite = reps[np.isfinite(reps)]
        if unusable:
            warn(f"{self.name}: {unusable} of {reps.size} bootstrap replicates ({m} rows "
                 "each) left too few usable rows to estimate from and were left out; the "
                 "interval comes from the others", RuntimeWarning)
        if finite.size < reps.size - unusable:
            warn(f"{self.name}: {reps.size - unusable - finite.size} of {reps.size} bootstrap "
                 "replicates were not finite and were left out", RuntimeWarning)
        if scheme != "replacement" and center is None:   # also for the sample's warnings
            center, _ = self._estimate_checked(x, y, int(self.seed))
        if scheme != "replacement" and finite.size:
            if subsample:
                scale = math.sqrt(m * (n - 1) / (n * (n - m)))
                finite = center + scale * (finite - finite.mean())
            elif scheme == "replacement-centred":
                finite = finite + (center - finite.mean())
            else:  # replacement-bc: shift by twice the bootstrap bias estimate
                finite = finite + 2.0 * (center - finite.mean())
        return finite


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool, or a ValueError: ``bool("False")`` is True, so a string or a
    number other than 0 and 1 is refused rather than guessed at."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral)
                                               and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{name} must be True or False; got {value!r}")


def check_seed(value: Any, name: str = "seed") -> int:
    """``value`` as an int, or a ValueError: a seed must be an integer >= 0 (None would
    draw fresh entropy, and the result would not be reproducible)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    return int(value)


def _check_n_boot(n_boot: int) -> int:
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2; got {n_boot!r}")
    return int(n_boot)


def _a_side_is_constant(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether every column of x, or every column of y, holds a single value."""
    return constant_columns(x).size == x.shape[1] or constant_columns(y).size == y.shape[1]


def _check_level(level: float) -> None:
    if isinstance(level, (bool, str)) or not isinstance(level, (int, float, np.number)) or not (
        0.0 < float(level) < 1.0
    ):
        raise ValueError(f"level must be a number strictly between 0 and 1; got {level!r}")


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap values."""
    _check_level(level)
    if values.size < 2:
        return float("nan"), float("nan")
    alpha = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
