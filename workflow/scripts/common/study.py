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
        models[f"{base}_{m}"] = {
            "variant": models[base]["variant"], "init": base,
            "train": [f"{study['train_split']}@{m}"], "val": [f"{study['val_split']}@{m}"],
            **{k: v for k, v in models[base].items() if k not in MODEL_OWN_KEYS},
            **study["finetune"],
        }
        estimators[f"MIST-{m}"] = {"class": "MIST", "model": f"{base}_{m}", "n_boot": 0}
        runs[m] = {"splits": [f"{s}@{m}" for s in study["test_splits"]],
                   "estimators": list(study["estimators"]) + [f"MIST-{m}"]}
    return models, estimators, runs
