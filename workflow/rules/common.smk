# Helpers shared by the rules: where things live, and which jobs the config asks for.
# The logic is in the study layer (workflow/scripts/common/); these are thin wrappers.
import importlib.util
from pathlib import Path

from common.families import (conditional_family_files, conditional_model_family_files,
                             store_family_files)
from common.stores import (COMBINED, conditional_store_path, conditional_store_recipe,
                           families_of, modality_base_recipe, split_stores, store_path,
                           store_recipe, store_split_config)
from common.study import derived_study


wildcard_constraints:
    split=r"[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?",
    family=r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*",
    estimator=r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*",
    model=r"[A-Za-z0-9_]+",
    run=r"[A-Za-z0-9_]+",
    modality=r"[A-Za-z0-9_]+",


MODELS, ESTIMATORS, RUNS = derived_study(config)
CONDITIONAL = config["conditional_models"]
ENV = "../envs/mist.yaml"
FIGURES = ["error_vs_n", "error_vs_dim", "predicted_vs_true", "coverage", "timing"]


def stores_of(splits):
    return [s for split in splits for s in split_stores(config, split)]


def trained_checkpoint(name):
    return f"models/{name}/checkpoint.safetensors"


def model_checkpoint(name):
    """What a model entry hands on: its trained checkpoint, calibrated when it asks."""
    if "calibrate" in MODELS[name]:
        return f"models/{name}/calibrated.safetensors"
    return trained_checkpoint(name)


def conditional_checkpoint(name):
    return f"models/conditional/{name}/checkpoint.safetensors"


def conditional_init(name):
    """A conditional entry's start: a further stage's predecessor, or a mist model."""
    return conditional_checkpoint(name) if name in CONDITIONAL else model_checkpoint(name)


def conditional_inputs(wildcards):
    """A conditional entry's start, the family files of its transforms and, when it names
    them, its train / val stores."""
    entry = CONDITIONAL[wildcards.model]
    inputs = {"init": conditional_init(entry["init"]),
              "family_files": conditional_model_family_files(entry)}
    inputs.update({key: conditional_store_path(entry[key]) for key in ("train", "val")
                   if key in entry})
    return inputs


def conditional_estimator_inputs(wildcards):
    """A conditional run's job reads its store and, for MIST, the conditional checkpoint:
    a conditional_models entry's, or the shipped one (a new one reruns these jobs)."""
    spec = ESTIMATORS[wildcards.estimator]
    inputs = {"store": conditional_store_path(wildcards.split)}
    if spec["class"] == "MIST":
        if spec["model"] != "default":
            inputs["checkpoint"] = conditional_checkpoint(spec["model"])
        else:
            inputs["checkpoint"] = shipped_checkpoint(
                spec.get("settings", {}).get("variant", "mist_cmi"))
    return inputs


def conditional_run_parts(run):
    entry = config["conditional_runs"][run]
    return [f"results/conditional/{run}/parts/{est}/{split}.nc"
            for est in entry["estimators"] for split in entry["splits"]]


def shipped_checkpoint(variant):
    """Path of the checkpoint shipped inside the mistmodel package (found without importing it)."""
    package = importlib.util.find_spec("mistmodel").submodule_search_locations[0]
    return str(Path(package) / "checkpoints" / f"{variant}.safetensors")


def mist_variant(spec):
    """The variant of a MIST estimator entry's network: its model's, or for the shipped
    one its settings' (default "mist")."""
    if spec["model"] == "default":
        return spec.get("settings", {}).get("variant", "mist")
    return MODELS[spec["model"]]["variant"]


def estimator_inputs(wildcards):
    spec = ESTIMATORS[wildcards.estimator]
    inputs = {"store": store_path(wildcards.split, wildcards.family)}
    if spec["class"] == "MIST":
        if spec["model"] != "default":
            inputs["checkpoint"] = model_checkpoint(spec["model"])
        else:   # the checkpoint shipped in the package: a new one reruns these jobs
            inputs["checkpoint"] = shipped_checkpoint(mist_variant(spec))
    return inputs


def interval_level(name):
    """The run's interval level for an estimator that gives intervals (a bootstrap, or a
    quantile MIST), else None: a new level reruns only the jobs it changes."""
    spec = ESTIMATORS[name]
    if spec.get("n_boot", 0) > 0 or (spec["class"] == "MIST" and mist_variant(spec) == "mist_qr"):
        return config["interval_level"]
    return None


def run_parts(run):
    entry = RUNS[run]
    return [
        f"results/{run}/parts/{est}/{split}/{Path(store).stem}.nc"
        for est in entry["estimators"]
        for split in entry["splits"]
        for store in split_stores(config, split)
    ]


def modality_entry(name):
    """The modality's settings for mistgen (without the study's own keys)."""
    return {k: v for k, v in config["modalities"][name].items() if k != "figure_split"}


def modality_file(name):
    path = Path(modality_entry(name)["path"])
    return str(path if path.is_absolute() else Path(workflow.basedir) / path)


def figure_store(modality, root):
    split = config["modalities"][modality]["figure_split"]
    return f"{root}/{Path(split_stores(config, split)[0]).stem}.zarr"


def all_outputs():
    outputs = [model_checkpoint(name) for name in MODELS]
    outputs += [conditional_checkpoint(name) for name in CONDITIONAL]
    outputs += [conditional_store_path(name) for name in config["conditional_splits"]]
    for run in config["conditional_runs"]:
        outputs += [f"results/conditional/{run}/{name}"
                    for name in ("estimates.nc", "summary.nc", "error_vs_n.png")]
    for run in RUNS:
        outputs += [f"results/{run}/estimates.nc", f"results/{run}/summary.nc"]
        outputs += [f"results/{run}/figures/{name}.png" for name in FIGURES]
    outputs += [f"results/modalities/{m}.png" for m in config["modalities"]]
    if RUNS or config["conditional_runs"]:
        outputs.append("results/headline.md")
    return outputs
