"""InfoNCE near its ceiling: how far below the MI it reads, and when it warns.

    python benchmarks/infonce_ceiling.py [--samples 3] [--intervals] [--n-boot 20]

InfoNCE's bound cannot exceed the log of its batch size (weighted over the held-out
blocks; ``last_info["ceiling"]``). On Gaussian samples with exact MI (d + d columns, each
pair correlated rho) at n = 50, 300 and 1,000, prints the mean estimate, the ceiling, their
ratio and how many of ``--samples`` estimates raised a ``CeilingWarning`` (from
``mistmodel.estimators.neural.CEILING_SHARE`` of the ceiling).

``--intervals`` prints instead, for a few of those samples, the 90% bootstrap interval
(``--n-boot`` subsamples of n / 2 rows, whose ceiling is lower; the replicates do not
warn), whether it contains the MI, and whether the estimate warned.
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mistmodel.caller_warnings import CeilingWarning  # noqa: E402
from mistmodel.estimators import InfoNCE  # noqa: E402

CASES = [(1, 0.5), (1, 0.9), (1, 0.99), (4, 0.9), (8, 0.95), (16, 0.95)]   # (d, rho)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--intervals", action="store_true")
    ap.add_argument("--n-boot", type=int, default=20)
    args = ap.parse_args(argv)
    if args.intervals:
        print(f"`python benchmarks/infonce_ceiling.py --samples {args.samples} --intervals "
              f"--n-boot {args.n_boot}`\n")
        intervals(args.samples, args.n_boot)
        return 0
    print(f"`python benchmarks/infonce_ceiling.py --samples {args.samples}`\n")
    print("| n | d + d | rho | MI | InfoNCE, mean | ceiling | ratio | warned |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (50, 300, 1000):
        for d, rho in CASES:
            truth = -0.5 * d * math.log(1.0 - rho**2)
            values, ceilings, warned = [], [], 0
            for seed in range(args.samples):
                x, y = gaussian(seed, n, d, rho)
                est = InfoNCE(seed=seed)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    values.append(est.estimate(x, y))
                warned += any(w.category is CeilingWarning for w in caught)
                ceilings.append(est.last_info["ceiling"])
            print(f"| {n:,} | {d} + {d} | {rho} | {truth:.2f} | {np.mean(values):.3f} | "
                  f"{np.mean(ceilings):.3f} | {np.mean(values) / np.mean(ceilings):.2f} | "
                  f"{warned} of {args.samples} |", flush=True)
    return 0


def gaussian(seed: int, n: int, d: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, n, d])
    x = rng.standard_normal((n, d))
    return x, rho * x + math.sqrt(1.0 - rho**2) * rng.standard_normal((n, d))


def intervals(samples: int, n_boot: int) -> None:
    print("| n | d + d | rho | MI | estimate | 90% interval | contains MI | estimate warned |")
    print("|---|---|---|---|---|---|---|---|")
    for n, d, rho in ((50, 1, 0.99), (300, 1, 0.99), (300, 4, 0.9), (300, 1, 0.9)):
        truth = -0.5 * d * math.log(1.0 - rho**2)
        for seed in range(samples):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got = InfoNCE(seed=seed).estimate_with_interval(*gaussian(seed, n, d, rho),
                                                                n_boot=n_boot)
            warned = any(w.category is CeilingWarning for w in caught)
            print(f"| {n:,} | {d} + {d} | {rho} | {truth:.2f} | {got.value:.3f} | "
                  f"({got.lower:.3f}, {got.upper:.3f}) | "
                  f"{'yes' if got.lower <= truth <= got.upper else 'no'} | "
                  f"{'yes' if warned else 'no'} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
