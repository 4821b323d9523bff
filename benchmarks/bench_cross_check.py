"""What MIST's cross-check against KSG costs: MIST with and without it, side by side.

    python benchmarks/bench_cross_check.py [--batch 200] [--repeats 3]

Each contender runs in its own subprocess (so that its peak memory is its own):
``MIST.load(cross_check=True)`` (the default) and ``MIST.load(cross_check=False)``. Each
times ``estimate_batch`` on ``--batch`` correlated Gaussian samples per shape (best of
``--repeats`` calls after one warm-up call) and a single ``estimate`` (median of 20
calls), at 1 + 1 and 4 + 4 columns and n = 500 and 5,000 (the check reads 500 rows of
each sample of 100 rows or more and at most 8 columns). Prints milliseconds per sample,
the ratio to the run without the check and each subprocess's peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(1, 500), (4, 500), (1, 5000), (4, 5000)]   # (columns per side, rows)

CHILD = r"""
import json, resource, statistics, sys, time, warnings
import numpy as np
from mistmodel import MIST
flag, batch, repeats, shapes = json.loads(sys.argv[1])
warnings.simplefilter("ignore")
mist = MIST.load(cross_check=flag)


def _timed(f, *a):
    t = time.perf_counter()
    f(*a)
    return time.perf_counter() - t



out = {}
for d, n in shapes:
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(batch):
        x = rng.standard_normal((n, d))
        samples.append((x, 0.6 * x + 0.8 * rng.standard_normal((n, d))))
    mist.estimate_batch(samples[:4])
    best = min(_timed(mist.estimate_batch, samples) for _ in range(repeats))
    single = statistics.median(_timed(mist.estimate, *samples[i % batch]) for i in range(20))
    out[f"{d}+{d}, n={n}"] = {"batch_ms": 1e3 * best / batch, "single_ms": 1e3 * single}
out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""
def run(flag: bool, batch: int, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([flag, batch, repeats, SHAPES])],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    on, off = run(True, args.batch, args.repeats), run(False, args.batch, args.repeats)
    print(f"`python benchmarks/bench_cross_check.py --batch {args.batch} --repeats "
          f"{args.repeats}` (load average {os.getloadavg()[0]:.2f})\n")
    print("| shape | batched ms/sample: check / none (ratio) | single ms: check / none (ratio) |")
    print("|---|---|---|")
    for key in on:
        if key == "peak_mib":
            continue
        a, b = on[key], off[key]
        print(f"| {key} | {a['batch_ms']:.2f} / {b['batch_ms']:.2f} "
              f"({a['batch_ms'] / b['batch_ms']:.1f}x) | {a['single_ms']:.1f} / "
              f"{b['single_ms']:.1f} ({a['single_ms'] / b['single_ms']:.1f}x) |")
    print(f"\npeak RSS: {on['peak_mib']:.0f} MiB with the check, {off['peak_mib']:.0f} MiB "
          f"without ({on['peak_mib'] / off['peak_mib']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
