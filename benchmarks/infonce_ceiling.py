"""InfoNCE near its ceiling: how far below the MI it reads, and when it warns.

    python benchmarks/infonce_ceiling.py [--samples 3]

InfoNCE's bound cannot exceed the log of its batch size (weighted over the held-out
blocks; ``last_info["ceiling"]``). On Gaussian samples with exact MI (d + d columns, each
pair correlated rho) at n = 50, 300 and 1,000, prints the mean estimate, the ceiling, their
ratio and how many of ``--samples`` estimates raised a ``CeilingWarning`` (from
``mistmodel.estimators.neural.CEILING_SHARE`` of the ceiling).
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
    args = ap.parse_args(argv)
    print(f"`python benchmarks/infonce_ceiling.py --samples {args.samples}`\n")
    print("| n | d + d | rho | MI | InfoNCE, mean | ceiling | ratio | warned |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (50, 300, 1000):
        for d, rho in CASES:
            truth = -0.5 * d * math.log(1.0 - rho**2)
            values, ceilings, warned = [], [], 0
            for seed in range(args.samples):
                rng = np.random.default_rng([seed, n, d])
                x = rng.standard_normal((n, d))
                y = rho * x + math.sqrt(1.0 - rho**2) * rng.standard_normal((n, d))
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


if __name__ == "__main__":
    sys.exit(main())
