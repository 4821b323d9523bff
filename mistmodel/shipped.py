"""Where the package's shipped checkpoints are (no torch needed to find them)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["CHECKPOINT_DIR", "DEFAULT_CHECKPOINTS", "default_checkpoint"]

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_CHECKPOINTS = {"mist": CHECKPOINT_DIR / "mist.safetensors",
                       "mist_qr": CHECKPOINT_DIR / "mist_qr.safetensors",
                       "mist_cmi": CHECKPOINT_DIR / "mist_cmi.safetensors"}


def default_checkpoint(variant: str = "mist") -> Path:
    """Path of the checkpoint shipped inside the package for ``variant``."""
    if variant not in DEFAULT_CHECKPOINTS:
        raise ValueError(f"variant must be one of {', '.join(map(repr, DEFAULT_CHECKPOINTS))}, "
                         f"got {variant!r}")
    return DEFAULT_CHECKPOINTS[variant]
