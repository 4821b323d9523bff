"""The models, estimators and runs a study config asks for, modality studies included."""
from __future__ import annotations

from typing import Any, Mapping

MODEL_OWN_KEYS = ("variant", "train", "val", "init", "calibrate")


def derived_study(config: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """Models, estimators and runs: the config's own, plus for every modality M a MIST
    fine-tuned on the warped training split (model ``<base>_M``, estimator ``MIST-M``) and
    a run M on the warped test splits (settings in ``modality_study``)."""
    models = dict(config["models"])
    estimators = dict(config["estimators"])
    runs = dict(config["runs"])
    study = config.get("modality_study")
    for m in config["modalities"] if study else []:
        base = study["base_model"]
        tuned = {k: v for k, v in models[base].items() if k not in MODEL_OWN_KEYS}
        models[f"{base}_{m}"] = {
            "variant": models[base]["variant"], "init": base,
            "train": [f"{study['train_split']}@{m}"], "val": [f"{study['val_split']}@{m}"],
            **_merged(tuned, study.get("finetune") or {}),
        }
        estimators[f"MIST-{m}"] = {"class": "MIST", "model": f"{base}_{m}", "n_boot": 0}
        runs[m] = {"splits": [f"{s}@{m}" for s in study["test_splits"]],
                   "estimators": list(study["estimators"]) + [f"MIST-{m}"]}
    return models, estimators, runs


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on ``base`` key by key, nested dicts (settings, settings.model) merged
    the same way."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (_merged(out[key], value) if isinstance(value, Mapping)
                    and isinstance(out.get(key), Mapping) else value)
    return out
