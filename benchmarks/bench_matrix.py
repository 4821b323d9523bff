"""Wall time and peak memory of mi_matrix on a p-column table of n rows, estimators side
by side.

    python benchmarks/bench_matrix.py                 # 50 columns, n = 1000, all estimators
    python benchmarks/bench_matrix.py --columns 20 --permutations 19 --estimators mist ksg

``mist`` is MIST as loaded by default (with its cross-check against KSG),
``mist-unchecked`` MIST with ``cross_check=False``.  Each estimator runs in a fresh
process, so the peak resident memory it reports (``ru_maxrss``) is that run's own; the
time excludes loading the estimator and covers the whole mi_matrix call.  Ratios are
against the first estimator listed.  The table has correlated Gaussian columns (a random
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


ESTIMATORS = ["mist", "mist-unchecked", "ksg", "cca"]


def one_run(args: argparse.Namespace) -> dict:
    from mistmodel.matrix import mi_matrix
    name = args.estimators[0]
    if name.startswith("mist"):
        from mistmodel import MIST
        estimator = MIST.load(cross_check=name == "mist")
    else:
        from mistmodel.estimators import CCA, KSG
        estimator = {"ksg": KSG, "cca": CCA}[name]()
    data = table(args.columns, args.n, args.seed)
    start = time.perf_counter()
    result = mi_matrix(data, estimator=estimator, permutations=args.permutations,
                       progress=False)
    seconds = time.perf_counter() - start
    mi = result["mi"] if args.permutations else result
    return {"estimator": name, "columns": args.columns, "pairs":
            args.columns * (args.columns - 1) // 2, "n": args.n,
            "permutations": args.permutations, "seconds": round(seconds, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "mean_mi": round(float(np.nanmean(mi.values)), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--columns", type=int, default=50)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--estimators", nargs="+", choices=ESTIMATORS, default=ESTIMATORS)
    p.add_argument("--permutations", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(one_run(args)))
        return
    rows = []
    for name in args.estimators:
        argv = [sys.executable, __file__, "--child", "--columns", str(args.columns), "--n",
                str(args.n), "--permutations", str(args.permutations), "--seed",
                str(args.seed), "--estimators", name]
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = rows[0]
    print(f"`python benchmarks/bench_matrix.py --columns {args.columns} --n {args.n} "
          f"--permutations {args.permutations} --estimators {' '.join(args.estimators)}`: "
          f"{first['pairs']} pairs\n")
    print(f"| estimator | seconds | x {first['estimator']} | peak RSS (MiB) | "
          f"x {first['estimator']} | mean MI |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['estimator']} | {r['seconds']:.2f} | {r['seconds'] / first['seconds']:.2f} | "
              f"{r['peak_rss_mib']:.0f} | {r['peak_rss_mib'] / first['peak_rss_mib']:.2f} | "
              f"{r['mean_mi']:.4f} |")


if __name__ == "__main__":
    main()
