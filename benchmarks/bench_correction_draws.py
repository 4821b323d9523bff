"""The neighbour correction's draws on large samples: read in 8 row groups, or in all.

    python benchmarks/bench_correction_draws.py [--n 60000] [--reps 2]

A sample of more than 8 x ``max_rows`` rows is read by MIST in row groups; the
correction's draws from its neighbour are read in ``DRAW_GROUPS`` (8) groups of the
sample's group size (``mistmodel.neighbour_correction.DRAW_GROUPS``).  This script
compares that with draws read in all the sample's groups (the draws as large as the
sample), side by side in one process on the same samples: the wall time of
``MIST.estimate`` with the correction, its mean absolute error against the exact MI and
the share within max(5%, 0.01 nats), on Gaussian and Student-t samples (dense and
sparse, d 1, 2, 4, 8 per side) of ``--n`` rows, then the time of one estimate at
n = 100,000 with 32 + 32 columns of independent normal data.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel import neighbour_correction as nc  # noqa: E402

SPECS = ["normal-dense", "normal-sparse", "student-dense", "student-sparse"]
DIMS = [1, 2, 4, 8]
SETTINGS = {f"draws in {nc.DRAW_GROUPS} groups": nc.DRAW_GROUPS, "draws in all groups": 10**9}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--reps", type=int, default=2, help="samples per family and d")
    args = ap.parse_args(argv)
    est = MIST.load(neighbour_correction=True)
    samples = [mistgen.sample(spec, args.n, d, d, 1000 + 17 * r + d)
               for spec in SPECS for d in DIMS for r in range(args.reps)]
    truth = np.array([s.mi for s in samples])
    rng = np.random.default_rng(0)
    big = (rng.standard_normal((100_000, 32)), rng.standard_normal((100_000, 32)))
    default = nc.DRAW_GROUPS
    rows = []
    try:
        for label, groups in SETTINGS.items():
            nc.DRAW_GROUPS = groups
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                values = np.array([est.estimate(s.x, s.y) for s in samples])
                seconds = time.perf_counter() - start
                start = time.perf_counter()
                est.estimate(*big)
                big_seconds = time.perf_counter() - start
            err = np.abs(values - truth)
            within = int(np.sum(err <= np.maximum(0.05 * truth, 0.01)))
            rows.append((label, seconds, err.mean(), within, big_seconds))
    finally:
        nc.DRAW_GROUPS = default
    print(f"`python benchmarks/bench_correction_draws.py --n {args.n} --reps {args.reps}`: "
          f"{len(samples)} samples of n = {args.n}, then one of n = 100,000 at 32 + 32\n")
    print(f"| draws | seconds ({len(samples)} samples) | MAE | within max(5%, 0.01) | "
          "seconds, n = 100,000, 32 + 32 |")
    print("|---|---|---|---|---|")
    for label, seconds, mae, within, big_seconds in rows:
        print(f"| {label} | {seconds:.1f} | {mae:.4f} | {within} of {len(samples)} | "
              f"{big_seconds:.1f} |")
    print(f"\ntime ratio (8 groups / all): {rows[0][1] / rows[1][1]:.2f} on the samples, "
          f"{rows[0][4] / rows[1][4]:.2f} at n = 100,000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
