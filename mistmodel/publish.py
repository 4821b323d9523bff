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
import os
import sys
from pathlib import Path
from typing import Any, Callable

from .checkpoint import CheckpointError, card_json, partial_path, save_checkpoint
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
    so verified.  Both files are written whole under temporary names before either is
    renamed (:func:`_replace_together`), so a failure leaves the published pair as it was."""
    network, card = load_network(checkpoint)
    kind = "mist_cmi" if network.config.conditional else card["variant"]
    if kind != variant:
        raise CheckpointError(f"{checkpoint} holds a {kind!r} model, not {variant!r}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    weights, record = dest / f"{variant}.safetensors", dest / f"{variant}.json"
    _replace_together(
        (weights, lambda tmp: save_checkpoint(tmp, network.state_dict(), card)),
        (record, lambda tmp: tmp.write_text(card_json(card, Path(checkpoint), indent=1) + "\n")))
    return weights, record


def _replace_together(*files: tuple[Path, Callable[[Path], Any]]) -> None:
    """Write each ``(path, write)`` by ``write(temporary path)``, then rename them all in
    the order given.  :func:`publish` gives the weights first: an interruption between the
    renames leaves new weights, which carry their own card and are all that loading reads,
    beside at worst the previous readable copy of the card."""
    partial = [partial_path(path) for path, _ in files]
    try:
        for tmp, (_, write) in zip(partial, files):
            write(tmp)
        for tmp, (path, _) in zip(partial, files):
            os.replace(tmp, path)
    finally:
        for tmp in partial:
            tmp.unlink(missing_ok=True)


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
    except OSError as exc:          # --dest a file, not writable, ...
        print(f"error: --dest {args.dest}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print("\n".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
