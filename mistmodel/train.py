"""Command-line entry for training: ``python -m mistmodel.train``.

    python -m mistmodel.train --train data/meta/train.zarr --val data/meta/val.zarr \\
        --out models/mist --variant mist --max-steps 600

Several stores may follow ``--train`` / ``--val``; they are read as one.  Options left
out take ``mistmodel.training.TrainConfig``'s defaults.  Model
hyperparameters are set with ``--model KEY=VALUE`` (repeatable), e.g. ``--model width=24``.
The best model is written to ``OUT/checkpoint.safetensors`` (weights and a JSON card);
re-running with the same ``--out`` resumes from ``OUT/training_state.pt`` (``--no-resume``
starts over).  ``--init PATH`` starts from another run's ``checkpoint.safetensors``.
Putting a checkpoint into the package is a separate step: ``python -m mistmodel.publish``.
"""
from __future__ import annotations

import argparse
import json
import sys

from .training import TrainConfig, train


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
    p.add_argument("--epochs", type=int)
    p.add_argument("--time-budget-min", type=float,
                   help="stop and checkpoint after this many minutes (the end point then "
                        "depends on the machine's speed)")
    p.add_argument("--max-steps", type=int,
                   help="stop and checkpoint after this many optimizer steps "
                        "(the learning-rate schedule ends there)")
    for name, kind in (("batch-size", int), ("max-cells", int), ("buffer-shards", int),
                       ("lr", float), ("weight-decay", float), ("grad-clip", float),
                       ("taus-per-sample", int), ("seed", int)):
        p.add_argument(f"--{name}", type=kind)
    p.add_argument("--log-weight", type=float,
                   help="weight of the loss term on the scale log(MI + log-eps) (default 0: none)")
    p.add_argument("--log-eps", type=float, help="eps of that scale (default 0.02)")
    p.add_argument("--subsample-rows", type=float,
                   help="probability of training a sample on a random subset of its rows")
    p.add_argument("--device")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads while training (default: torch's own choice)")
    p.add_argument("--init",
                   help="start from this checkpoint.safetensors (a further training stage)")
    p.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                   help="model hyperparameter override (repeatable)")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


PROG = "python -m mistmodel.train"


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 on success, 2 for a setting or input that cannot be trained on (the
    message names it), 130 when interrupted (the same command resumes)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    model = {}
    for item in args.model:
        if "=" not in item:
            parser.error(f"--model expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        model[k.strip()] = _parse_value(v.strip())
    options = {k: v for k, v in vars(args).items()
               if v is not None and k not in ("train", "val", "model", "no_resume", "no_progress")}
    from mistgen.errors import MistgenError

    from .checkpoint import CheckpointError
    try:
        cfg = TrainConfig(
            train=args.train if len(args.train) > 1 else args.train[0],
            val=None if args.val is None else (args.val if len(args.val) > 1 else args.val[0]),
            model=model, resume=not args.no_resume, progress=not args.no_progress, **options)
        path = train(cfg)
    except (ValueError, TypeError, MistgenError, CheckpointError, OSError,
            FloatingPointError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the same command resumes from the last epoch saved",
              file=sys.stderr)
        return 130
    print(f"checkpoint: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
