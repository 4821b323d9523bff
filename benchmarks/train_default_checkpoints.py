"""Rebuild or extend the checkpoints shipped in mistmodel/checkpoints/ with this project's code.

Each shipped checkpoint's JSON records its training as a list of stages
(``training_stages``): the recipes of the stores a stage trained on and its training
config.  Stage 1 starts from random weights; every later stage starts from the weights the
stage before it produced (``init``), on fresh stores built under new seeds.

Rebuild every stage from scratch (the stores are rebuilt with ``mistgen.build_meta_dataset``)::

    python benchmarks/train_default_checkpoints.py --workdir /tmp/mist-default [--variants mist mist_qr]

Train one more stage on top of the shipped checkpoint, with the stores and settings of a
stage file (a JSON object ``{"store_recipes": {...}, "config": {...}}``; ``config`` overrides
the last stage's training config)::

    python benchmarks/train_default_checkpoints.py --workdir /tmp/mist-stage2 --add-stage benchmarks/stage2.json

The time budget recorded in each stage makes the end point depend on the machine's speed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import mistgen
from mistmodel.training import TrainConfig, copy_to_package, train

CHECKPOINTS = Path(__file__).resolve().parents[1] / "mistmodel" / "checkpoints"


def recorded_stages(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The stages of a shipped checkpoint (a single-stage record has them at top level)."""
    if "training_stages" in record:
        return record["training_stages"]
    return [{"store_recipes": record["store_recipes"], "config": record["config"]}]


def run_stage(stage: dict[str, Any], variant: str, workdir: Path, index: int,
              init: Path | None) -> Path:
    """Build a stage's stores (unless present) and train it; returns the run directory."""
    stores = workdir / f"stores-stage{index}"
    for name, recipe in stage["store_recipes"]["recipes"].items():
        if not (stores / name).exists():
            mistgen.build_meta_dataset(stores / name, **recipe)
    config = dict(stage["config"])
    config["train"] = [str(stores / Path(p).name) for p in config["train"]]
    config["val"] = [str(stores / Path(p).name) for p in config["val"]]
    config["out"] = str(workdir / "runs" / f"{variant}-stage{index}")
    config["variant"] = variant
    config["init"] = None if init is None else str(init)
    run = train(TrainConfig.from_dict(config))
    return Path(run).parent


def stage_budget(run_dir: Path, index: int) -> dict[str, Any]:
    """What one stage cost: wall minutes, samples seen, its training set, the hardware."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = metrics["epochs"][-1]
    return {"stage": index, "wall_minutes": round(last["seconds"] / 60.0, 1),
            "samples_seen": last["samples_seen"], "train_datapoints": metrics["train_count"],
            "device": metrics["device"], "threads": metrics["threads"]}


def recorded_budget(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-stage budgets of a shipped checkpoint (an older record has one dict)."""
    budget = record.get("training_budget") or []
    return [{"stage": 1, **budget}] if isinstance(budget, dict) else list(budget)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--variants", nargs="+", default=["mist", "mist_qr"])
    ap.add_argument("--add-stage", type=Path, default=None,
                    help="train one more stage on top of the shipped checkpoint")
    args = ap.parse_args()
    extra = None if args.add_stage is None else json.loads(args.add_stage.read_text())
    for variant in args.variants:
        shipped = CHECKPOINTS / f"{variant}.json"
        record = json.loads(shipped.read_text())
        stages = recorded_stages(record)
        budget = recorded_budget(record)
        if extra is None:
            todo, init = list(enumerate(stages, start=1)), None
        else:
            stage = {"store_recipes": extra["store_recipes"],
                     "config": {**stages[-1]["config"], **extra.get("config", {})}}
            stages = stages + [stage]
            todo = [(len(stages), stage)]
            init = args.workdir / f"{variant}-stage{len(stages) - 1}-start.pt"
            args.workdir.mkdir(parents=True, exist_ok=True)
            init.write_bytes((CHECKPOINTS / f"{variant}.pt").read_bytes())
        if extra is None:
            budget = []
        for index, stage in todo:
            run_dir = run_stage(stage, variant, args.workdir, index, init)
            init = run_dir / "best.pt"
            budget.append(stage_budget(run_dir, index))
        dest = copy_to_package(run_dir, variant)
        metrics = json.loads(dest.with_suffix(".json").read_text())
        metrics["training_stages"] = stages   # so the next rebuild can replay every stage
        metrics["training_budget"] = budget
        dest.with_suffix(".json").write_text(json.dumps(metrics, indent=1))
        print(f"{variant}: trained {run_dir}; installed {dest}")


if __name__ == "__main__":
    main()
