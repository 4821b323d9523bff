"""Train one MIST model entry of the study config (what rule ``train`` calls)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from mistmodel import training
from mistmodel.training import TRAINING_STATE, TrainConfig, read_training_state

BUDGET_KEYS = ("epochs", "max_steps", "time_budget_min")
#: TrainConfig fields that a models entry sets itself, or the rule does: not settings
ENTRY_KEYS = ("variant", "train", "val", "init", "seed", "threads", *BUDGET_KEYS, "out",
              "resume", "epochs_per_call")


def train_config(model: Mapping[str, Any], *, train: Sequence[str], val: Sequence[str],
                 out: str | Path, seed: int, init: str | None = None) -> TrainConfig:
    """A ``TrainConfig`` from a ``models`` entry of the (validated) study config.

    ``settings`` holds further ``TrainConfig`` fields, with model hyperparameters
    under ``settings.model`` (see ``mistmodel.model.ModelConfig``); the entry's own
    ``seed`` (if any) replaces the config's, and its ``threads`` (default 1) are torch's
    threads, whatever the machine."""
    settings = model.get("settings") or {}
    entry_level = [key for key in ENTRY_KEYS if key in settings]
    if entry_level:
        raise ValueError(f"settings may not set {', '.join(entry_level)}: the entry sets "
                         "variant, train, val, init, seed, threads and the budgets (epochs, "
                         "max_steps, time_budget_min) itself, out is its folder, and resume "
                         "and epochs_per_call are the rule's")
    args = dict(settings, train=list(train), val=list(val), out=str(out),
                variant=model["variant"], seed=model.get("seed", seed),
                threads=model.get("threads", 1))
    args.update({key: model[key] for key in BUDGET_KEYS if key in model})
    if init is not None:
        args["init"] = str(init)
    return TrainConfig.from_dict(args)


def train_model(model: Mapping[str, Any], *, train: Sequence[str], val: Sequence[str],
                checkpoint: str | Path, seed: int = 0, init: str | None = None) -> Path:
    """Train into the folder of ``checkpoint``; resume only a run with the same config."""
    out = Path(checkpoint).parent
    cfg = train_config(model, train=train, val=val, out=out, seed=seed, init=init)
    saved = read_training_state(out)
    if saved is not None and saved["train_config"] != cfg.to_dict():
        (out / TRAINING_STATE).unlink()   # the config changed: start afresh rather than resume
    return training.train(cfg)


def conditional_train_config(entry: Mapping[str, Any], *, init: str | Path,
                             checkpoint: str | Path, seed: int = 0,
                             train_store: str | None = None, val_store: str | None = None):
    """The ``ConditionalTrainConfig`` of a ``conditional_models`` entry (torch's threads:
    the entry's ``threads``, default 1, whatever the machine)."""
    from mistmodel.conditional_training import ConditionalTrainConfig

    settings = dict(entry.get("settings") or {})
    entry_level = sorted(set(settings) & {"out", "init", "steps", "seed", "threads",
                                          "train_store", "val_store"})
    if entry_level:
        raise ValueError(f"settings of a conditional_models entry may not set "
                         f"{', '.join(entry_level)}: the entry sets them itself (its init, "
                         "steps, seed, threads, train and val keys; out is its folder)")
    for key in ("n_range", "dim_range"):
        if key in settings:
            settings[key] = tuple(settings[key])
    try:
        return ConditionalTrainConfig(**settings, out=str(Path(checkpoint).parent),
                                      init=str(init), steps=entry["steps"],
                                      seed=entry.get("seed", seed),
                                      threads=entry.get("threads", 1),
                                      train_store=train_store, val_store=val_store)
    except TypeError as exc:   # an unknown settings key
        raise ValueError(f"{exc} (settings are ConditionalTrainConfig fields)") from None


def train_conditional_model(entry: Mapping[str, Any], *, init: str | Path,
                            checkpoint: str | Path, seed: int = 0,
                            train_store: str | None = None,
                            val_store: str | None = None) -> Path:
    """Train a ``conditional_models`` entry into the folder of ``checkpoint`` (on the
    conditional stores given, when its entry names ``train`` / ``val`` splits)."""
    from mistmodel.conditional_training import train_conditional

    return train_conditional(conditional_train_config(
        entry, init=init, checkpoint=checkpoint, seed=seed, train_store=train_store,
        val_store=val_store))
