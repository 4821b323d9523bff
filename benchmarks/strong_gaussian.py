"""Strong dependence in few columns: MIST reads a near-deterministic Gaussian low.

    python benchmarks/strong_gaussian.py [--reps 5] [--n 500 2000 10000] [--checkpoint PATH]
                                         [--qr-checkpoint PATH]

d independent pairs (X_j, Y_j), each a bivariate Gaussian with correlation rho, drawn with
``mistgen``'s ``normal-dense`` at d = 1 and as d copies of it above (MI exact:
-d log(1 - rho^2) / 2). For each rho, d and n it prints the MI and, over ``--reps``
samples (pair j of sample r drawn with seed 100 r + j), the mean estimate of MIST, MIST-QR's median and the share of
its 90% intervals that contain the MI, KSG (k = 5), and on how many samples MIST's
cross-check against KSG warned.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
from limitation_rows import arguments, command, load_qr, row  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.estimators import KSG  # noqa: E402

RHOS = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
DIMS = (1, 2)


def pairs(rho: float, n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """d independent copies of a bivariate normal-dense sample at correlation rho."""
    parts = [mistgen.sample("normal-dense", n, 1, 1, seed * 100 + j, params={"off_diag": rho})
             for j in range(d)]
    return (np.hstack([s.x for s in parts]), np.hstack([s.y for s in parts]),
            sum(s.mi for s in parts))


def main(argv=None) -> int:
    args = arguments(__doc__).parse_args(argv)
    mist = MIST.load(args.checkpoint, cross_check=False)
    qr, ksg = load_qr(args, cross_check=False), KSG(k=5)
    print(command("strong_gaussian.py", args))
    print("| rho | d + d | MI | n | MIST | MIST-QR median | QR 90% covers | KSG | "
          "cross-check warns |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rho in RHOS:
        for d in DIMS:
            for n in args.n:
                drawn = [pairs(rho, n, d, seed) for seed in range(args.reps)]
                truth = drawn[0][2]
                r = row([(x, y) for x, y, _ in drawn], truth, mist, qr, ksg)
                print(f"| {rho} | {d} + {d} | {truth:.3f} | {n:,} | {r['mist']:.3f} | "
                      f"{r['median']:.3f} | {r['covered']:.0%} | {r['ksg']:.3f} | "
                      f"{r['warned']}/{len(drawn)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
