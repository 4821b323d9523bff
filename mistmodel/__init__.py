"""mistmodel: mutual information estimators (KSG, MINE, InfoNCE, CCA, MIST) and MIST training."""

__version__ = "0.1.0"
__all__ = ["CCA", "InfoNCE", "KSG", "MINE", "MIST"]


def __getattr__(name: str):
    # ``from mistmodel import MIST`` imports torch only when asked for: the study's jobs that
    # never run a network (store generation, tables, figures) start seconds faster.
    if name == "MIST":
        from .mist import MIST
        return MIST
    if name in __all__:
        from . import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module 'mistmodel' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
