"""Exceptions raised by mistgen (all derive from ``ValueError``, so callers can catch
broadly), its warnings, and how a warning names the caller's line."""
import os
import sys
import warnings


class MistgenError(ValueError):
    """Base class for every error mistgen raises on bad input."""


class SpecError(MistgenError):
    """A spec string names an unknown family or transform, or is malformed."""


class ShapeError(MistgenError):
    """A family or transform cannot produce the requested (n, dim_x, dim_y)."""


class PriorError(MistgenError):
    """A prior override names an unknown parameter or gives an invalid range."""


class StoreError(MistgenError):
    """A meta-dataset store is missing, incomplete, corrupt, or would be overwritten."""


class StoreWarning(UserWarning):
    """Something beside a store needs attention (e.g. a partial build left by a killed run)."""


class MergedValuesWarning(UserWarning):
    """Storing samples in the store's dtype merged distinct values: the stored rows no longer
    have the MI (or conditional MI) of their labels."""


def warn_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first frame outside the mistgen package (the
    user's call), wherever inside the package it is raised."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
