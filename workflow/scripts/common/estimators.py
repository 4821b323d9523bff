"""Build estimators from the study config: ``{"class": "KSG", "settings": {...}}``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

BASELINES = ("KSG", "MINE", "InfoNCE", "CCA")


def make_estimator(spec: Mapping[str, Any], checkpoint: str | Path | None = None):
    """An estimator object from a config entry.

    ``spec["class"]`` is one of KSG, MINE, InfoNCE, CCA or MIST; ``spec["settings"]``
    are its constructor arguments. For MIST, ``checkpoint`` is the trained model to load
    (``None`` loads the checkpoint shipped with the package).
    """
    cls = spec.get("class")
    settings = dict(spec.get("settings") or {})
    if cls in BASELINES:
        from mistmodel import estimators

        return getattr(estimators, cls)(**settings)
    if cls == "MIST":
        from mistmodel.mist import MIST

        return MIST.load(None if checkpoint in (None, "default") else checkpoint, **settings)
    raise ValueError(f"unknown estimator class {cls!r}; known: {', '.join(BASELINES + ('MIST',))}")
