"""MIST-QR's estimate with its interval: one call against ``estimate`` then ``interval``,
side by side in one run (a benchmark, not a test).

    python benchmarks/bench_qr_interval.py [--n 100000] [--dims 32] [--repeats 3]

Each contender runs in its own subprocess (so that its peak memory is its own) on the same
independent normal sample of ``--n`` rows and ``--dims`` + ``--dims`` columns, after a
warm-up call of the same kind at 1,000 rows:

* ``one call``: ``MIST.estimate_with_interval(x, y, level=0.9)`` (the median and both
  ends of the 90% interval from one forward pass);
* ``two calls``: ``MIST.estimate(x, y)`` then ``MIST.interval(x, y, level=0.9)``.

Reported: the median wall time over ``--repeats`` calls, the peak RSS of the subprocess,
the ratios two calls / one call, and whether both gave the same numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = """
import json, resource, statistics, sys, time, warnings
import numpy as np
from mistmodel import MIST
kind, n, d, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
qr = MIST.load(variant="mist_qr", device="cpu")
rng = np.random.default_rng(0)
x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))

def call(a, b):
    if kind == "one":
        rec = qr.estimate_with_interval(a, b, level=0.9)
        return [rec.value, rec.lower, rec.upper]
    return [qr.estimate(a, b), *qr.interval(a, b, level=0.9)]

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    call(x[:1000], y[:1000])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = call(x, y)
        times.append(time.perf_counter() - start)
print(json.dumps({"seconds": statistics.median(times), "values": out,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(kind: str, args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", WORKER, kind, str(args.n), str(args.dims),
                           str(args.repeats)], capture_output=True, text=True, env=env,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dims", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    one, two = run("one", args), run("two", args)
    print(f"MIST-QR, n = {args.n:,}, {args.dims} + {args.dims} columns, median of "
          f"{args.repeats} calls, load average {os.getloadavg()[0]:.2f}\n")
    print("| contender | seconds | peak RSS (MiB) |\n|---|---|---|")
    print(f"| one call (estimate_with_interval) | {one['seconds']:.2f} | {one['maxrss_mib']:.0f} |")
    print(f"| two calls (estimate, interval) | {two['seconds']:.2f} | {two['maxrss_mib']:.0f} |")
    print(f"\ntwo calls / one call: time x{two['seconds'] / one['seconds']:.2f}, "
          f"peak memory x{two['maxrss_mib'] / one['maxrss_mib']:.2f}; same numbers: "
          f"{one['values'] == two['values']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
