"""Coverage of CCA's 90% bootstrap intervals, by form, on Gaussians with exact MI.

    python benchmarks/cca_intervals.py [--reps 30] [--dims 4 8 16] [--n-boot 100]

Samples are drawn with ``mistgen`` (seeds 0, 1, ...): ``normal-dense`` with every
correlation 0.5, and ``normal-sparse`` and ``normal-lvm`` with parameters from their
priors. For each family and ``d + d`` columns, at ``n = 1.5 (dx + dy)`` (where
``CCA()`` takes the Ledoit-Wolf shrunk form), ``n = 3 (dx + dy)`` and ``n = 300`` (the
unbiased form), prints the mean true MI, the mean estimate, the share of 90% intervals
that contain the MI and their median width; for the shrunk rows also what
``shrinkage="unbiased"`` gives on the same samples.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
from mistmodel.estimators import CCA  # noqa: E402

FAMILIES = [("normal-dense", {"off_diag": 0.5}), ("normal-sparse", None), ("normal-lvm", None)]


def cell(samples, estimator: CCA, n_boot: int) -> tuple[float, float, float]:
    """Mean estimate, share of intervals containing the MI, median width."""
    values, covered, widths = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, s in enumerate(samples):
            e = estimator.estimate_with_interval(s.x, s.y, level=0.9, n_boot=n_boot, seed=i)
            values.append(e.value)
            covered.append(e.lower <= s.mi <= e.upper)
            widths.append(e.upper - e.lower)
    return float(np.mean(values)), float(np.mean(covered)), float(np.median(widths))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--dims", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--n-boot", type=int, default=100)
    args = ap.parse_args(argv)
    print(f"`python benchmarks/cca_intervals.py --reps {args.reps} --dims "
          f"{' '.join(map(str, args.dims))} --n-boot {args.n_boot}`\n")
    print("| family | d + d | n | form | MI | CCA() | covers | width | unbiased covers | width |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for family, params in FAMILIES:
        for d in args.dims:
            for n in sorted({max(12, 3 * d), 6 * d, 300}):
                samples = [mistgen.sample(family, n, d, d, seed, params=params)
                           for seed in range(args.reps)]
                form = CCA().form(n, d, d)
                mean, covers, width = cell(samples, CCA(), args.n_boot)
                other = "| - | -"
                if form == "shrunk":
                    _, u_covers, u_width = cell(samples, CCA(shrinkage="unbiased"), args.n_boot)
                    other = f"| {u_covers:.0%} | {u_width:.2f}"
                truth = np.mean([s.mi for s in samples])
                print(f"| {family} | {d} + {d} | {n} | {form} | {truth:.3f} | {mean:.3f} | "
                      f"{covers:.0%} | {width:.2f} {other} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
