"""Warnings attributed to the caller's line, not to a line inside this package.

``warnings.warn`` takes a fixed ``stacklevel``, which is right for one call path only:
the same check runs under ``estimate``, ``interval``, ``estimate_batch`` and the
bootstrap, at different depths.  :func:`warn` walks up the stack past every frame of
``mistmodel`` and attributes the warning to the first frame outside it, so the default
filter shows it once per line of the user's code and ``-W error`` points there.

:func:`silenced` drops this package's warnings of some categories for the code inside
it, in the current thread (or task) only: unlike ``warnings.catch_warnings``, it leaves
the process's warning filters alone, so other threads keep theirs.  :func:`held` keeps
them back the same way but gathers their messages, for a caller that reports them once in
its own terms (a table's column names rather than a pair sample's sides).

:func:`recorded` is for the command line and the study, which print each kind of warning
once in their own words: it records the warnings of a block under the filters in force
(``-W``, ``PYTHONWARNINGS``), so that what those ignore stays unrecorded and what they turn
into errors is raised where it is issued.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Sequence

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
CONTEXTLIB_FILE = os.path.abspath(contextlib.__file__)
_SILENCED: ContextVar[tuple[type[Warning], ...]] = ContextVar("mistmodel_silenced", default=())
_HELD: ContextVar[tuple[tuple[tuple[type[Warning], ...], tuple[type[Warning], ...],
                             list[str]], ...]] = ContextVar(
    "mistmodel_held", default=())
_LABELS: ContextVar[tuple[str, ...] | None] = ContextVar("mistmodel_sample_labels",
                                                        default=None)


# MIST's warnings (re-exported by mistmodel.mist); in this torch-free module so that
# callers can silence them without importing the network.
class SmallSampleWarning(UserWarning):
    """Too few rows for what was asked: fewer than the network was trained on (n < 10), or,
    for ``KSG(discrete="auto")``, 5% of the rows or more alone in their combination of
    discrete values and left out (unless a :class:`DiscreteBiasWarning` is raised for the
    same sample)."""


class OutOfRangeWarning(UserWarning):
    """The sample's dims or n lie beyond what the network saw in training."""


class TiedDataWarning(UserWarning):
    """A column is discrete or heavily tied; MIST was trained on continuous data only."""


class RepeatedRowsWarning(TiedDataWarning):
    """Rows that repeat an earlier row in every column together, as copies do (not as
    values on a grid do): a nearest-neighbour estimator takes each copy for its own
    nearest neighbour, and a neural one sees it in its training and its held-out rows,
    which both read as dependence."""


class DiscreteBiasWarning(UserWarning):
    """KSG's mixed rule where the discrete columns' combinations (a fully discrete
    sample's cells) hold few rows each, or where many rows are alone in their cell of a
    table of X's and Y's values at a high estimate: the estimate reads high where they are
    the cells of such a table as categories (high or low as numbers, and for I(X;Y) beside
    continuous columns, estimated by the chain rule), and can read far low otherwise (one
    side's classes; a discrete Z, below 20 rows per group)."""


class CeilingWarning(UserWarning):
    """An estimate near the most its bound can report (InfoNCE: the mean log of its
    held-out blocks' sizes, each at most the batch size), where it reads far below the MI:
    the MI may be far higher."""


class ShrinkageBiasWarning(UserWarning):
    """A bootstrap interval of CCA's shrunk form: it does not account for the bias the
    shrinkage adds, and with strong dependence spread over many columns it can lie wholly
    below the MI."""


class AdjustedLevelWarning(UserWarning):
    """Too few permutations for p-values adjusted over many tests to come below alpha."""


class PermutationLevelWarning(UserWarning):
    """A local permutation test's copies lose much of X's dependence on Z: their
    neighbourhoods in Z are wide, and the test rejects more often than its alpha."""


class UncalibratedLevelWarning(UserWarning):
    """A MIST-QR interval at a level its checkpoint has no conformal factor for: the raw
    quantile interval, whose coverage is not calibrated."""


class CrossCheckWarning(UserWarning):
    """KSG on a subsample reads clearly more dependence than MIST: its shape may be one
    MIST does not see (not monotone) or reads low (sharp-edged, or strong in few
    columns)."""


def _inside_package(filename: str) -> bool:
    """Whether a frame's file is one of this package's (``<string>`` and the like are
    not files), or ``contextlib``'s, whose wrappers run the package's context managers."""
    if filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    return path.startswith(PACKAGE_DIR) or path == CONTEXTLIB_FILE


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` attributed to the first frame outside this
    package (see the module notes); nothing inside :func:`silenced` for its category, and
    only gathered inside :func:`held` for it."""
    if issubclass(category, _SILENCED.get()):
        return
    for categories, passing, messages in reversed(_HELD.get()):
        if issubclass(category, categories) and not issubclass(category, passing):
            messages.append(message)
            return
    frame, level = sys._getframe(1), 2
    while frame is not None and _inside_package(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def is_silenced(category: type[Warning]) -> bool:
    """Whether :func:`warn` drops ``category`` here (inside :func:`silenced`), so a check
    that only exists to warn can skip its work."""
    return issubclass(category, _SILENCED.get())


@contextmanager
def silenced(*categories: type[Warning]) -> Iterator[None]:
    """Drop :func:`warn`'s warnings of ``categories`` inside the block, in this thread or
    task only: threads started inside the block do not inherit it."""
    token = _SILENCED.set(_SILENCED.get() + categories)
    try:
        yield
    finally:
        _SILENCED.reset(token)


@contextmanager
def sample_labels(labels: Sequence[str]) -> Iterator[None]:
    """Inside the block (this thread or task only), warnings about sample ``i`` of a batch
    name it ``labels[i]``: for callers that split a table into pairs of variables and
    pass them as one batch (``"feature 'age'"`` rather than ``"sample 3"``)."""
    token = _LABELS.set(tuple(labels))
    try:
        yield
    finally:
        _LABELS.reset(token)


def sample_prefix(i: int, count: int) -> str:
    """How a warning names sample ``i`` of ``count``: its label inside
    :func:`sample_labels`, else ``"sample i: "``, or nothing for a lone sample."""
    labels = _LABELS.get()
    if labels is not None and 0 <= i < len(labels):
        return f"{labels[i]}: "
    return f"sample {i}: " if count > 1 else ""


# the filter actions that show a warning (once, or once per place); recorded every time
_SHOWN = ("default", "once", "module", "always")


@contextmanager
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    """Record the warnings issued inside the block under the warning filters in force
    when it starts: one that they ignore is not recorded, one that they make an error is
    raised where it is issued, and every other one is recorded each time (the caller
    groups them).  Like ``warnings.catch_warnings``, it changes the process's filters for
    the duration of the block."""
    outside = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        # the same filters, matched by Python as they are, with "always" for the actions
        # that show a warning; the public call after it makes Python re-read the list
        warnings.filters[:] = [("always" if entry[0] in _SHOWN else entry[0],) + entry[1:]
                               for entry in outside]
        warnings.simplefilter("always", append=True)        # Python's default action
        yield caught


@contextmanager
def held(*categories: type[Warning], passing: tuple[type[Warning], ...] = ()
         ) -> Iterator[list[str]]:
    """Keep :func:`warn`'s warnings of ``categories`` (but not of their subclasses in
    ``passing``) back inside the block, in this thread or task only, and gather their
    messages in the list it yields (in order)."""
    messages: list[str] = []
    token = _HELD.set(_HELD.get() + ((categories, passing, messages),))
    try:
        yield messages
    finally:
        _HELD.reset(token)
