"""Train one MIST variant named in the study config (what rule ``train`` calls)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..training import TrainConfig
from ..training import train as run_training

STUDY_KEYS = {"variant", "train", "val", "init", "epochs", "max_steps", "time_budget_min",
              "threads", "settings"}


def train_config(model: Mapping[str, Any], *, train: Sequence[str], val: Sequence[str],
                 out: str | Path, seed: int, threads: int | None,
                 init: str | None = None) -> TrainConfig:
    """A ``TrainConfig`` from a ``models`` entry of the study config.

    ``settings`` holds further ``TrainConfig`` fields, with model hyperparameters
    under ``settings.model`` (see ``mistmodel.model.ModelConfig``).
    """
    unknown = set(model) - STUDY_KEYS
    if unknown:
        raise ValueError(f"unknown model setting(s): {', '.join(sorted(unknown))}")
    settings = dict(model.get("settings") or {})
    args = dict(settings, train=list(train), val=list(val), out=str(out),
                variant=model["variant"], seed=seed, threads=threads)
    for key in ("epochs", "max_steps", "time_budget_min"):
        if model.get(key) is not None:
            args[key] = model[key]
    if init is not None:
        args["init"] = str(init)
    return TrainConfig.from_dict(args)


def train_model(model: Mapping[str, Any], *, train: Sequence[str], val: Sequence[str],
                checkpoint: str | Path, seed: int = 0, threads: int | None = None,
                init: str | None = None) -> Path:
    """Train into the folder of ``checkpoint``; resume only a run with the same config."""
    out = Path(checkpoint).parent
    cfg = train_config(model, train=train, val=val, out=out, seed=seed, threads=threads,
                       init=init)
    previous = out / "checkpoint.pt"
    if previous.is_file():
        saved = torch.load(previous, map_location="cpu", weights_only=False)
        if saved.get("train_config") != cfg.to_dict():
            previous.unlink()  # the config changed: start afresh rather than resume
    return run_training(cfg)
