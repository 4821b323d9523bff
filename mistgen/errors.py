"""Exceptions raised by mistgen. All derive from ``ValueError`` so callers can catch broadly."""


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
