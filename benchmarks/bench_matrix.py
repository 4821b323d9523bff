"""Wall time and peak memory of mi_matrix on a p-column table of n rows.

    python benchmarks/bench_matrix.py                        # 50 columns, n = 1000, MIST
    python benchmarks/bench_matrix.py --columns 20 --permutations 19 --estimator ksg
    python benchmarks/bench_matrix.py --estimator mist-unchecked  # MIST, cross_check=False

Each configuration runs in a fresh process, so the peak resident memory it reports
(``ru_maxrss``) is that run's own; the time excludes loading the estimator and covers
the whole mi_matrix call.  The table has correlated Gaussian columns (a random
covariance), half of them passed through a nonlinear map.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def table(columns: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((columns, columns)) / np.sqrt(columns)
    data = rng.standard_normal((n, columns)) @ (np.eye(columns) + mix)
    data[:, ::2] = np.sinh(data[:, ::2])
    return data


def one_run(args: argparse.Namespace) -> dict:
    from mistmodel.matrix import mi_matrix
    if args.estimator.startswith("mist"):
        from mistmodel import MIST
        estimator = MIST.load(cross_check=args.estimator == "mist")
    else:
        from mistmodel.estimators import CCA, KSG
        estimator = {"ksg": KSG, "cca": CCA}[args.estimator]()
    data = table(args.columns, args.n, args.seed)
    start = time.perf_counter()
    result = mi_matrix(data, estimator=estimator, permutations=args.permutations,
                       progress=False)
    seconds = time.perf_counter() - start
    mi = result["mi"] if args.permutations else result
    return {"estimator": args.estimator, "columns": args.columns, "pairs":
            args.columns * (args.columns - 1) // 2, "n": args.n,
            "permutations": args.permutations, "seconds": round(seconds, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "mean_mi": round(float(np.nanmean(mi.values)), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--columns", type=int, default=50)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--estimator", choices=["mist", "mist-unchecked", "ksg", "cca"], default="mist")
    p.add_argument("--permutations", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(one_run(args)))
        return
    argv = [sys.executable, __file__, "--child", *sys.argv[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
