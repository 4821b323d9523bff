"""The neighbour correction's draws on large samples: read in 8 row groups, or in all.

    python benchmarks/bench_correction_draws.py [--n 60000] [--reps 2]

A sample of more than 8 x ``max_rows`` rows is read by MIST in row groups; the
correction's draws from its neighbour are read in ``DRAW_GROUPS`` (8) groups of the
sample's group size (``mistmodel.neighbour_correction.DRAW_GROUPS``).  This script
compares that with draws read in all the sample's groups (the draws as large as the
sample), side by side in one run on the same samples, each setting in a fresh process:
the wall time of ``MIST.estimate`` with the correction, its mean absolute error against
the exact MI and the share within max(5%, 0.01 nats), on Gaussian and Student-t samples
(dense and sparse, d 1, 2, 4, 8 per side) of ``--n`` rows, then the time of one estimate
at n = 100,000 with 32 + 32 columns of independent normal data. Beside each time, the
peak memory above what was in use before it began (a lower bound: ``peak_memory.
PeakMemory`` says what it sees).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mistgen  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel import neighbour_correction as nc  # noqa: E402
from peak_memory import PeakMemory  # noqa: E402

SPECS = ["normal-dense", "normal-sparse", "student-dense", "student-sparse"]
DIMS = [1, 2, 4, 8]
SETTINGS = {f"draws in {nc.DRAW_GROUPS} groups": nc.DRAW_GROUPS, "draws in all groups": 10**9}


def one_setting(n: int, reps: int, groups: int) -> dict:
    """Time, peak memory and error of MIST with the correction's draws in ``groups``."""
    est = MIST.load(neighbour_correction=True)
    samples = [mistgen.sample(spec, n, d, d, 1000 + 17 * r + d)
               for spec in SPECS for d in DIMS for r in range(reps)]
    truth = np.array([s.mi for s in samples])
    rng = np.random.default_rng(0)
    big = (rng.standard_normal((100_000, 32)), rng.standard_normal((100_000, 32)))
    nc.DRAW_GROUPS = groups
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        with PeakMemory() as peak:
            values = np.array([est.estimate(s.x, s.y) for s in samples])
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        with PeakMemory() as big_peak:
            est.estimate(*big)
        big_seconds = time.perf_counter() - start
    err = np.abs(values - truth)
    return {"count": len(samples), "seconds": seconds, "peak_mib": peak.mib,
            "mae": float(err.mean()),
            "within": int(np.sum(err <= np.maximum(0.05 * truth, 0.01))),
            "big_seconds": big_seconds, "big_peak_mib": big_peak.mib}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--reps", type=int, default=2, help="samples per family and d")
    ap.add_argument("--child-groups", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_groups is not None:
        print(json.dumps(one_setting(args.n, args.reps, args.child_groups)))
        return 0
    rows = []
    for label, groups in SETTINGS.items():
        argv = [sys.executable, __file__, "--n", str(args.n), "--reps", str(args.reps),
                "--child-groups", str(groups)]
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        rows.append((label, json.loads(done.stdout.strip().splitlines()[-1])))
    count = rows[0][1]["count"]
    print(f"`python benchmarks/bench_correction_draws.py --n {args.n} --reps {args.reps}`: "
          f"{count} samples of n = {args.n}, then one of n = 100,000 at 32 + 32; each "
          "setting in its own process\n")
    print(f"| draws | seconds ({count} samples) | peak MiB | MAE | "
          "within max(5%, 0.01) | seconds, n = 100,000, 32 + 32 | peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | {r['mae']:.4f} | "
              f"{r['within']} of {count} | {r['big_seconds']:.1f} | {r['big_peak_mib']:.0f} |")
    few, every = rows[0][1], rows[1][1]
    print(f"\nratios ({nc.DRAW_GROUPS} groups / all): time {few['seconds'] / every['seconds']:.2f} "
          f"and peak memory {few['peak_mib'] / max(every['peak_mib'], 1e-9):.2f} on the samples; "
          f"time {few['big_seconds'] / every['big_seconds']:.2f} and peak memory "
          f"{few['big_peak_mib'] / max(every['big_peak_mib'], 1e-9):.2f} at n = 100,000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
