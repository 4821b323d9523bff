"""Rebuild the checkpoints shipped in mistmodel/checkpoints/ with this project's code.

Reads the store recipes and the training config recorded in each shipped checkpoint's
JSON, rebuilds the training and validation stores with ``mistgen.build_meta_dataset``,
trains with ``mistmodel.training.train`` and copies the best model into the package:

    python benchmarks/train_default_checkpoints.py --workdir /tmp/mist-default [--variants mist mist_qr]

The time budget recorded in the JSON makes the end point depend on the machine's speed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import mistgen
from mistmodel.training import TrainConfig, copy_to_package, train

CHECKPOINTS = Path(__file__).resolve().parents[1] / "mistmodel" / "checkpoints"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--variants", nargs="+", default=["mist", "mist_qr"])
    args = ap.parse_args()
    for variant in args.variants:
        record = json.loads((CHECKPOINTS / f"{variant}.json").read_text())
        stores = args.workdir / "stores"
        for name, recipe in record["store_recipes"]["recipes"].items():
            if not (stores / name).exists():
                mistgen.build_meta_dataset(stores / name, **recipe)
        config = dict(record["config"])
        config["train"] = [str(stores / Path(p).name) for p in config["train"]]
        config["val"] = [str(stores / Path(p).name) for p in config["val"]]
        config["out"] = str(args.workdir / "runs" / variant)
        run = train(TrainConfig.from_dict(config))
        dest = copy_to_package(Path(run).parent, variant)
        metrics = json.loads(dest.with_suffix(".json").read_text())
        metrics["store_recipes"] = record["store_recipes"]  # so the next rebuild can start here
        dest.with_suffix(".json").write_text(json.dumps(metrics, indent=1))
        print(f"{variant}: trained {run}; installed {dest}")


if __name__ == "__main__":
    main()
