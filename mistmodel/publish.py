"""Publish a trained checkpoint as the one the package ships for its variant.

    python -m mistmodel.publish models/mist_s12/checkpoint.safetensors --variant mist

writes the checkpoint's network to ``mistmodel/checkpoints/<variant>.safetensors`` (variant
``mist``, ``mist_qr``, or ``mist_cmi`` for a conditional network) and writes its
card, readable, to ``mistmodel/checkpoints/<variant>.json``.  This is the only step that
writes into the package; the release workflow (``workflow/configs/release.yaml``) only
writes under ``models/``.  ``--dest DIR`` publishes into another folder.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .checkpoint import CheckpointError, save_checkpoint
from .mist import load_network
from .shipped import CHECKPOINT_DIR

__all__ = ["publish"]


def publish(checkpoint: str | os.PathLike, variant: str,
            dest: str | os.PathLike = CHECKPOINT_DIR) -> tuple[Path, Path]:
    """Write the network of ``checkpoint`` to ``dest/<variant>.safetensors`` and its card
    to ``dest/<variant>.json``; returns both paths.

    The network is built from the checkpoint first, exactly as :meth:`MIST.load` builds it
    (a damaged file, tensors that do not fit the card's model config, or a card of another
    variant are refused before anything is written), and the weights written are the ones
    so verified."""
    network, card = load_network(checkpoint)
    kind = "mist_cmi" if network.config.conditional else card["variant"]
    if kind != variant:
        raise CheckpointError(f"{checkpoint} holds a {kind!r} model, not {variant!r}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    weights, record = dest / f"{variant}.safetensors", dest / f"{variant}.json"
    save_checkpoint(weights, network.state_dict(), card)
    tmp = record.with_name(f".{record.name}.partial-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(card, indent=1) + "\n")
        os.replace(tmp, record)
    finally:
        tmp.unlink(missing_ok=True)
    return weights, record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mistmodel.publish", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a checkpoint.safetensors written by training")
    ap.add_argument("--variant", required=True, choices=("mist", "mist_qr", "mist_cmi"))
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
