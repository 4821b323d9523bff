"""One row of the known-limitation benchmarks: MIST, MIST-QR and KSG on samples of one
distribution with exact MI (``additive_noise.py``, ``strong_gaussian.py``,
``non_monotone.py``), and the options they share with ``correlated_sides.py``."""
from __future__ import annotations

import argparse
import warnings
from typing import Any, Sequence

import numpy as np

from mistmodel.cross_check import first_miss


def arguments(doc: str) -> argparse.ArgumentParser:
    """The options these benchmarks share: ``--reps``, ``--n``, ``--checkpoint`` and
    ``--qr-checkpoint``."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n", type=int, nargs="+", default=[500, 2000, 10000])
    ap.add_argument("--checkpoint", default=None, help="MIST checkpoint (default: shipped)")
    ap.add_argument("--qr-checkpoint", default=None,
                    help="MIST-QR checkpoint (default: shipped)")
    return ap


def command(script: str, args: argparse.Namespace) -> str:
    """The first line these benchmarks print: the command that makes the table, with
    every option the script was given (its own ones too)."""
    shared = {"reps", "n", "checkpoint", "qr_checkpoint"}
    own = "".join(f" --{key.replace('_', '-')} "
                  + (" ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value))
                  for key, value in sorted(vars(args).items())
                  if key not in shared and value is not None)
    ckpt = checkpoint_options(args)
    return (f"`python benchmarks/{script} --reps {args.reps} --n "
            f"{' '.join(map(str, args.n))}{own}{ckpt}`: mean over {args.reps} samples\n")


def checkpoint_options(args: argparse.Namespace) -> str:
    """The checkpoint options of a command line, as given."""
    return "".join(f" --{flag} {path}" for flag, path in (
        ("checkpoint", args.checkpoint), ("qr-checkpoint", args.qr_checkpoint)) if path)


def load_qr(args: argparse.Namespace, **kwargs: Any):
    """MIST-QR from ``--qr-checkpoint`` (default: the shipped one)."""
    from mistmodel import MIST

    return MIST.load(args.qr_checkpoint, variant="mist_qr", **kwargs)


def row(pairs: Sequence[tuple[np.ndarray, np.ndarray]], truth, mist, qr, ksg,
        corrected=None) -> dict[str, float]:
    """Over ``pairs`` (samples whose MI is ``truth``, one number or one per sample): the
    mean estimate of ``mist`` (``"mist"``), of ``corrected`` if given, MIST-QR's median
    (``"median"``), the share of its 90% intervals that contain the truth
    (``"covered"``), KSG's mean (``"ksg"``), and on how many samples ``mist``'s estimate
    would raise the cross-check's warning (``"warned"``)."""
    truth = np.broadcast_to(np.asarray(truth, dtype=float), (len(pairs),))
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = mist.estimate_batch(pairs)
        out["mist"] = float(np.mean(point))
        if corrected is not None:
            out["corrected"] = float(np.mean(corrected.estimate_batch(pairs)))
        out["median"] = float(np.mean(qr.quantiles_batch(pairs, [0.5])[:, 0]))
        iv = qr.interval_batch(pairs, level=0.9)
        out["ksg"] = float(np.mean([ksg.estimate(x, y) for x, y in pairs]))
    out["covered"] = float(np.mean((iv[:, 0] <= truth) & (truth <= iv[:, 1])))
    out["warned"] = sum(first_miss([p], [v]) is not None for p, v in zip(pairs, point))
    return out
