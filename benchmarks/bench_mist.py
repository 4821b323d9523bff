"""MIST inference speed (a benchmark, not a test).

    python benchmarks/bench_mist.py [--threads 2] [--batch 64] [--json PATH]

Measures, on CPU with ``--threads`` torch threads:

* batched throughput (samples per second) of ``MIST.estimate_batch`` at n = 500 with
  dims 8 + 8 and 32 + 32 (dense Gaussian samples; input checks, copula and padding are
  included in the time);
* single-sample latency of ``MIST.estimate`` (median of repeated calls) at the same shapes;
* the speed ratio to KSG, MINE and InfoNCE (default settings) on the same samples:
  seconds per estimate of the baseline / seconds per estimate of batched MIST (and of
  single-call MIST);
* where the compiled kernels (``mistmodel.kernels``) are in use, the batched speed ratio
  to the network's torch path, timed alternately with it (median of per-pair ratios).

Targets from the issue, on 2 CPU cores: >= 200 samples/s batched at n = 500, 8 + 8;
a single estimate under 50 ms; >= 100x faster than MINE.  The machine may be shared:
the script also reports the process CPU time per sample, which is less sensitive to other
load than wall time, and the load average before and after.

MIST's first CPU forward pass raises glibc's malloc thresholds for the whole process
(``mistmodel.heap``), so the baselines, timed after it in the same process, run with the
same allocator settings.  ``MIST_KEEP_MALLOC=1`` runs everything with glibc's defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # no spinning threads on a shared box

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mistmodel import MIST, kernels  # noqa: E402
from mistmodel.estimators import KSG, MINE, InfoNCE  # noqa: E402
from mistmodel.heap import retain_freed_memory  # noqa: E402

N = 500
DIMS = (8, 32)


def dense_samples(rng, count, d, c=0.5):
    cov = (1 - c) * np.eye(2 * d) + c * np.ones((2 * d, 2 * d))
    chol = np.linalg.cholesky(cov)
    out = []
    for _ in range(count):
        z = rng.standard_normal((N, 2 * d)) @ chol.T
        out.append((z[:, :d], z[:, d:]))
    return out


def timed(fn, repeats):
    """Median wall seconds and median process CPU seconds of ``fn()``."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def paired(fn_a, fn_b, repeats):
    """Median wall seconds of ``fn_a`` and ``fn_b`` timed alternately, and the median of
    the per-pair ratios b / a (less sensitive than either time to a machine whose speed
    drifts)."""
    a, b, ratios = [], [], []
    for i in range(repeats):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        t = {}
        for k in order:
            w = time.perf_counter()
            (fn_a, fn_b)[k]()
            t[k] = time.perf_counter() - w
        a.append(t[0])
        b.append(t[1])
        ratios.append(t[1] / t[0])
    return statistics.median(a), statistics.median(b), statistics.median(ratios)


def torch_path(fn):
    def run():
        with kernels.kernels_disabled():
            fn()
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64, help="samples per batched call")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline-samples", type=int, default=3,
                    help="samples per shape for KSG / MINE / InfoNCE")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    mist = MIST.load(args.checkpoint, device="cpu")
    rng = np.random.default_rng(0)
    results = {"threads": args.threads, "n": N, "batch": args.batch,
               "machine": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "torch": torch.__version__,
               "checkpoint": mist.checkpoint, "shapes": {}}
    mist.estimate(*dense_samples(np.random.default_rng(1), 1, 2)[0])
    results["malloc_thresholds_raised"] = retain_freed_memory()   # as MIST's first call left it
    results["compiled_kernels"] = kernels.kernels_available()
    for d in DIMS:
        samples = dense_samples(rng, args.batch, d)
        mist.estimate_batch(samples[:4])                                   # warm up
        wall, cpu = timed(lambda: mist.estimate_batch(samples), args.repeats)
        single_wall, single_cpu = timed(lambda: mist.estimate(*samples[0]), 4 * args.repeats)
        row = {"batched_samples_per_s": args.batch / wall,
               "batched_cpu_s_per_sample": cpu / args.batch,
               "single_ms": 1000 * single_wall, "single_cpu_ms": 1000 * single_cpu}
        if results["compiled_kernels"]:
            batched = (lambda: mist.estimate_batch(samples))
            _, torch_wall, ratio = paired(batched, torch_path(batched), args.repeats)
            row["torch_path_samples_per_s"] = args.batch / torch_wall
            row["speedup_vs_torch_path_batched"] = ratio
        base = samples[: args.baseline_samples]
        for name, est in (("KSG", KSG()), ("MINE", MINE()), ("InfoNCE", InfoNCE())):
            secs = []
            for x, y in base:
                t = time.perf_counter()
                est.estimate(x, y)
                secs.append(time.perf_counter() - t)
            s = statistics.median(secs)
            row[f"{name}_s_per_estimate"] = s
            row[f"speedup_vs_{name}_batched"] = s * args.batch / wall
            row[f"speedup_vs_{name}_single"] = s / single_wall
        results["shapes"][f"{d}+{d}"] = row
        print(f"n={N}, dims {d}+{d}: batched {row['batched_samples_per_s']:.1f} samples/s "
              f"(cpu {1000 * row['batched_cpu_s_per_sample']:.2f} ms/sample), single "
              f"{row['single_ms']:.1f} ms; KSG {row['KSG_s_per_estimate'] * 1000:.0f} ms "
              f"(x{row['speedup_vs_KSG_batched']:.2g} batched, x{row['speedup_vs_KSG_single']:.2g} single), "
              f"MINE {row['MINE_s_per_estimate']:.2f} s (x{row['speedup_vs_MINE_batched']:.0f} / "
              f"x{row['speedup_vs_MINE_single']:.0f}), InfoNCE {row['InfoNCE_s_per_estimate']:.2f} s "
              f"(x{row['speedup_vs_InfoNCE_batched']:.0f} / "
              f"x{row['speedup_vs_InfoNCE_single']:.0f})"
              + (f"; compiled kernels x{row['speedup_vs_torch_path_batched']:.2f} vs the torch "
                 f"path (batched)" if "speedup_vs_torch_path_batched" in row else
                 "; compiled kernels not in use"),
              flush=True)
    results["loadavg_before"] = load_before
    results["loadavg_after"] = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {results['loadavg_after'][0]:.2f} "
          f"({os.cpu_count()} cores); malloc thresholds raised: "
          f"{results['malloc_thresholds_raised']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
