"""Command-line entry for training: ``python -m mistmodel.train``.

    python -m mistmodel.train --train data/meta/train.zarr --val data/meta/val.zarr \\
        --out models/mist --variant mist --epochs 10 --time-budget-min 30

Several stores may follow ``--train`` / ``--val``; they are read as one.  Model
hyperparameters are set with ``--model KEY=VALUE`` (repeatable), e.g. ``--model width=24``.
Re-running with the same ``--out`` resumes from its ``checkpoint.pt`` (``--no-resume``
starts over).  ``--export-to PATH`` copies the best model (without optimizer state) and
``metrics.json`` to PATH and PATH with a ``.json`` suffix when training ends.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .training import TrainConfig, export_model, train


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mistmodel.train",
                                description="Train MIST or MIST-QR on mistgen meta-dataset stores.")
    p.add_argument("--train", nargs="+", required=True, help="training store(s)")
    p.add_argument("--val", nargs="+", default=None, help="validation store(s)")
    p.add_argument("--out", required=True, help="output directory (checkpoints, metrics, curves)")
    p.add_argument("--variant", choices=("mist", "mist_qr"), default="mist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--time-budget-min", type=float, default=None,
                   help="stop and checkpoint after this many minutes")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop and checkpoint after this many optimizer steps "
                        "(the learning-rate schedule ends there)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-cells", type=int, default=300_000)
    p.add_argument("--buffer-shards", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--taus-per-sample", type=int, default=8)
    p.add_argument("--subsample-rows", type=float, default=0.0,
                   help="probability of training a sample on a random subset of its rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                   help="model hyperparameter override (repeatable)")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--export-to", default=None,
                   help="copy the best model and its metrics here when done")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model = {}
    for item in args.model:
        if "=" not in item:
            raise SystemExit(f"--model expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        model[k.strip()] = _parse_value(v.strip())
    cfg = TrainConfig(
        train=args.train if len(args.train) > 1 else args.train[0],
        val=None if args.val is None else (args.val if len(args.val) > 1 else args.val[0]),
        out=args.out, variant=args.variant, model=model, epochs=args.epochs,
        time_budget_min=args.time_budget_min, max_steps=args.max_steps,
        batch_size=args.batch_size,
        max_cells=args.max_cells, buffer_shards=args.buffer_shards, lr=args.lr,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip,
        taus_per_sample=args.taus_per_sample, subsample_rows=args.subsample_rows, seed=args.seed, device=args.device,
        threads=args.threads, resume=not args.no_resume, progress=not args.no_progress)
    path = train(cfg)
    print(f"checkpoint: {path}")
    if args.export_to:
        dest = Path(args.export_to)
        export_model(Path(args.out) / "best.pt", dest)
        shutil.copyfile(Path(args.out) / "metrics.json", dest.with_suffix(".json"))
        print(f"exported: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
