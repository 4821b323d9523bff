"""Publish a trained checkpoint as the one the package ships for its variant.

    python -m mistmodel.publish models/mist_s6/checkpoint.safetensors --variant mist

copies the checkpoint to ``mistmodel/checkpoints/<variant>.safetensors`` and writes its
card, readable, to ``mistmodel/checkpoints/<variant>.json``.  This is the only step that
writes into the package; the release workflow (``workflow/configs/release.yaml``) only
writes under ``models/``.  ``--dest DIR`` publishes into another folder.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint
from .mist import CHECKPOINT_DIR

__all__ = ["publish"]


def publish(checkpoint: str | os.PathLike, variant: str,
            dest: str | os.PathLike = CHECKPOINT_DIR) -> tuple[Path, Path]:
    """Copy ``checkpoint`` to ``dest/<variant>.safetensors`` and its card to
    ``dest/<variant>.json``; returns both paths.

    The checkpoint is read in full first (a damaged file or a card of another variant is
    refused before anything is written)."""
    _, card = load_checkpoint(checkpoint)
    if card["variant"] != variant:
        raise CheckpointError(f"{checkpoint} holds a {card['variant']!r} model, "
                              f"not {variant!r}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    weights, record = dest / f"{variant}.safetensors", dest / f"{variant}.json"
    for target, write in ((weights, lambda tmp: shutil.copyfile(checkpoint, tmp)),
                          (record, lambda tmp: tmp.write_text(json.dumps(card, indent=1) + "\n"))):
        tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return weights, record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mistmodel.publish", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a checkpoint.safetensors written by training")
    ap.add_argument("--variant", required=True, choices=("mist", "mist_qr"))
    ap.add_argument("--dest", default=str(CHECKPOINT_DIR),
                    help="folder to publish into (default: the package's checkpoints)")
    args = ap.parse_args(argv)
    try:
        paths = publish(args.checkpoint, args.variant, args.dest)
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
