"""MIST-QR's interval coverage at calibrated and uncalibrated levels.

    python benchmarks/qr_levels.py [--samples 800] [--qr-checkpoint PATH]

Draws ``--samples`` samples per family with ``mistgen`` (seeds 0, 1, ...; dims d + d with
d uniform in 1-4, n uniform in 20-300, parameters from the family's prior) from
``normal-dense`` and ``student-dense``, and prints the share of MIST-QR's intervals that
contain the MI at levels 0.6 to 0.95, each marked calibrated or not (the checkpoint's
conformal factors). At an uncalibrated level the interval is the raw quantiles'.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
from mistmodel import MIST  # noqa: E402

FAMILIES = ["normal-dense", "student-dense"]
LEVELS = [0.6, 0.7, 0.8, 0.85, 0.9, 0.95]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=800)
    ap.add_argument("--qr-checkpoint", default=None, help="default: the shipped MIST-QR")
    args = ap.parse_args(argv)
    qr = MIST.load(args.qr_checkpoint, variant="mist_qr")
    calibrated = {float(k) for k in
                  (qr.meta.get("interval_calibration") or {}).get("factors") or {}}
    print(f"`python benchmarks/qr_levels.py --samples {args.samples}"
          + (f" --qr-checkpoint {args.qr_checkpoint}" if args.qr_checkpoint else "") + "`\n")
    print("| family | " + " | ".join(
        f"{level:g}{'' if level in calibrated else ' (raw)'}" for level in LEVELS) + " |")
    print("|---" * (len(LEVELS) + 1) + "|")
    for family in FAMILIES:
        rng = np.random.default_rng(0)
        samples = []
        for i in range(args.samples):
            d, n = int(rng.integers(1, 5)), int(rng.integers(20, 301))
            samples.append(mistgen.sample(family, n, d, d, i))
        pairs, mi = [(s.x, s.y) for s in samples], np.array([s.mi for s in samples])
        cells = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for level in LEVELS:
                iv = qr.interval_batch(pairs, level=level)
                cells.append(f"{np.mean((iv[:, 0] <= mi) & (mi <= iv[:, 1])):.3f}")
        print(f"| {family} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
