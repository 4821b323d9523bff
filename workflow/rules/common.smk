# Helpers shared by the rules: where things live, and which jobs the config asks for.
import importlib.util
from pathlib import Path


wildcard_constraints:
    split=r"[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?",
    family=r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*",
    estimator=r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*",
    model=r"[A-Za-z0-9_]+",
    run=r"[A-Za-z0-9_]+",
    modality=r"[A-Za-z0-9_]+",


def derived_study(config):
    """Models, estimators and runs: the config's own, plus for every modality M a MIST
    fine-tuned on the warped training split (model <base>_M, estimator MIST-M) and a run M
    on the warped test splits (settings in ``modality_study``)."""
    models = dict(config.get("models", {}))
    estimators = dict(config["estimators"])
    runs = dict(config["runs"])
    study = config.get("modality_study")
    for m in config.get("modalities", {}) if study else []:
        base = study["base_model"]
        models[f"{base}_{m}"] = {
            "variant": models[base]["variant"], "init": base,
            "train": [f"{study['train_split']}@{m}"], "val": [f"{study['val_split']}@{m}"],
            **{k: v for k, v in models[base].items() if k not in ("variant", "train", "val", "init")},
            **study.get("finetune", {}),
        }
        estimators[f"MIST-{m}"] = {"class": "MIST", "model": f"{base}_{m}"}
        runs[m] = {"splits": [f"{s}@{m}" for s in study["test_splits"]],
                   "estimators": list(study["estimators"]) + [f"MIST-{m}"]}
    return models, estimators, runs


MODELS, ESTIMATORS, RUNS = derived_study(config)


def families_of(split):
    """The family specs of a split (a warped split 'name@modality' has its base's)."""
    entry = config["splits"][split.split("@")[0]]["families"]
    return config["families"][entry] if isinstance(entry, str) else entry


def store(split, family):
    return f"data/meta/{split}/{family}.zarr"


def split_stores(split):
    return [store(split, f) for f in families_of(split)]


def model_checkpoint(name):
    return f"models/{name}/best.pt"


def shipped_checkpoint(variant):
    """Path of the checkpoint shipped inside the mistmodel package (found without importing it)."""
    package = importlib.util.find_spec("mistmodel").submodule_search_locations[0]
    return str(Path(package) / "checkpoints" / f"{variant}.pt")


def estimator_inputs(wildcards):
    spec = ESTIMATORS[wildcards.estimator]
    inputs = {"store": store(wildcards.split, wildcards.family)}
    if spec["class"] == "MIST":
        if spec.get("model", "default") != "default":
            inputs["checkpoint"] = model_checkpoint(spec["model"])
        else:   # the checkpoint shipped in the package: a new one reruns these jobs
            variant = spec.get("settings", {}).get("variant", "mist")
            inputs["checkpoint"] = shipped_checkpoint(variant)
    return inputs


def run_parts(run):
    entry = RUNS[run]
    return [
        f"results/{run}/parts/{est}/{split}/{family}.nc"
        for est in entry["estimators"]
        for split in entry["splits"]
        for family in families_of(split)
    ]


FIGURES = ["error_vs_n", "error_vs_dim", "predicted_vs_true", "coverage", "timing"]


def all_outputs():
    outputs = []
    for run in RUNS:
        outputs += [f"results/{run}/estimates.nc", f"results/{run}/summary.nc"]
        outputs += [f"results/{run}/figures/{name}.png" for name in FIGURES]
    outputs += [f"results/modalities/{m}.png" for m in config.get("modalities", {})]
    outputs.append("results/README.md")
    return outputs
