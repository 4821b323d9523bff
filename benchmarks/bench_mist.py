"""MIST inference speed, backend by backend, side by side in one run (a benchmark, not a test).

    python benchmarks/bench_mist.py [--threads 2] [--release-path PATH] [--json PATH]

Contenders, each measured in its own subprocess (so that its peak memory is its own):

* ``torch``: ``MIST.load(backend="torch")`` of this tree;
* ``onnx``: ``MIST.load(backend="onnx")`` of this tree (skipped, with the reason, where
  onnxruntime is not installed);
* ``release``: ``MIST.load()`` of another checkout given by ``--release-path`` (e.g. the
  release with its compiled SIMD kernels built in place; skipped when absent);
* ``MINE``: :class:`mistmodel.estimators.MINE` with its default settings.

Measured on the shipped point checkpoint at n = 500 (correlated Gaussian samples):

* batched: samples per second of ``estimate_batch`` on ``--batch`` samples at 8 + 8
  dims (input checks, copula and padding included; best of ``--repeats`` calls), and the
  process CPU time per sample (all threads; less sensitive than wall time to other load);
* single: median milliseconds of ``estimate`` over ``--calls`` calls at 8 + 8 and 32 + 32;
* x MINE: MINE's median seconds per estimate at 32 + 32 over the single-estimate time;
* peak RSS: ``ru_maxrss`` of the subprocess (everything it imported and allocated);
* max |diff|: the largest difference, in nats, of the contender's batched estimates
  from the ``torch`` backend's on the same samples.

Targets (2 CPU cores, n = 500): batched >= 200 samples/s at 8 + 8, a single estimate
under 50 ms, >= 100x MINE at 32 + 32.

The script sets, for its subprocesses only, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` to ``--threads`` and ``OMP_WAIT_POLICY=PASSIVE`` (no threads
spinning between calls on a shared machine), and glibc's ``MALLOC_MMAP_THRESHOLD_`` (32 MiB)
and ``MALLOC_TRIM_THRESHOLD_`` (512 MiB): freed tensor memory stays mapped between forward
passes instead of being page-faulted back in, zero-filled, on every pass.  The library
itself changes none of these.  The machine may be shared: the load average before and
after is printed with the table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
N = 500
CONTENDERS = ("torch", "onnx", "simd", "release", "MINE")
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(512 << 20)}


# ---------------------------------------------------------------------------- the worker

def dense_samples(seed: int, count: int, d: int, c: float = 0.5):
    """``count`` samples of n = 500 rows, X and Y of ``d`` columns each, all columns
    pairwise correlated ``c``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky((1 - c) * np.eye(2 * d) + c * np.ones((2 * d, 2 * d)))
    out = []
    for _ in range(count):
        z = rng.standard_normal((N, 2 * d)) @ chol.T
        out.append((z[:, :d], z[:, d:]))
    return out


def median_seconds(fn, samples) -> float:
    times = []
    for x, y in samples:
        start = time.perf_counter()
        fn(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_estimator(contender: str, threads: int):
    """The estimator under test, built as a user would build it."""
    import torch

    if contender == "release":
        torch.set_num_threads(threads)
        from mistmodel import MIST, kernels
        return MIST.load(device="cpu"), {"compiled_kernels": kernels.kernels_available()}
    from mistmodel import MIST
    return MIST.load(device="cpu", backend=contender, threads=threads), {}


def run_worker(args) -> dict:
    """Measure one contender in this process; returns the JSON-ready results."""
    if args.worker == "MINE":
        from mistmodel.estimators import MINE

        mine = MINE()
        seconds = median_seconds(mine.estimate, dense_samples(3, args.mine_samples, 32))
        return {"mine_s_32": seconds, "peak_rss_mb": peak_rss_mb()}
    import mistmodel

    start = time.perf_counter()
    mist, info = load_estimator(args.worker, args.threads)
    info.update(load_s=time.perf_counter() - start, module=mistmodel.__file__,
                runtime=mist.runtime)
    batch8 = dense_samples(0, args.batch, 8)
    singles = {d: dense_samples(1 + d, args.calls, d) for d in (8, 32)}
    mist.estimate_batch(batch8[:8])                                   # warm up
    for d in (8, 32):
        mist.estimate(*singles[d][0])
    best, best_cpu = float("inf"), float("inf")
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        estimates = mist.estimate_batch(batch8)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    info.update(batched_per_s_8=args.batch / best, estimates_8=estimates.tolist(),
                batched_cpu_ms_8=1000 * best_cpu / args.batch,
                single_ms_8=1000 * median_seconds(mist.estimate, singles[8]),
                single_ms_32=1000 * median_seconds(mist.estimate, singles[32]),
                peak_rss_mb=peak_rss_mb())
    return info


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


# ---------------------------------------------------------------------------- the driver

def worker_env(contender: str, args) -> dict[str, str] | None:
    """The subprocess environment, or None when the contender cannot run here."""
    env = dict(os.environ)
    threads = str(args.threads)
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               OMP_WAIT_POLICY="PASSIVE", **MALLOC_ENV)
    code = REPO
    if contender == "release":
        if not args.release_path or not (Path(args.release_path) / "mistmodel").is_dir():
            return None
        code = Path(args.release_path).resolve()
    env["PYTHONPATH"] = str(code)
    return env


def measure(contender: str, args) -> dict:
    env = worker_env(contender, args)
    if env is None:
        return {"skipped": f"no release checkout (--release-path {args.release_path!r})"}
    if contender == "onnx":
        from importlib.util import find_spec
        if find_spec("onnxruntime") is None:
            return {"skipped": "onnxruntime is not installed (pip install onnxruntime)"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", contender,
           "--threads", str(args.threads), "--batch", str(args.batch),
           "--calls", str(args.calls), "--repeats", str(args.repeats),
           "--mine-samples", str(args.mine_samples)]
    done = subprocess.run(cmd, env=env, cwd=str(Path(env["PYTHONPATH"])), text=True,
                          capture_output=True)
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1:] or ["(no output)"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def commit() -> str:
    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO, text=True, capture_output=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+local changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def table(results: dict, args) -> str:
    mine = results.get("MINE", {}).get("mine_s_32")
    base = results.get("torch", {})
    lines = [f"n = {N}, {args.threads} threads, shipped mist checkpoint; commit {commit()}",
             f"{'contender':18s} {'batched 8+8':>18s} {'cpu 8+8':>10s} {'single 8+8':>17s} "
             f"{'single 32+32':>17s} {'x MINE 32+32':>12s} {'peak RSS':>9s} {'max|diff|':>10s}",
             f"{'':18s} {'samples/s (xtorch)':>18s} {'ms/sample':>10s} {'ms (xtorch)':>17s} "
             f"{'ms (xtorch)':>17s} {'':>12s} {'MB':>9s} {'vs torch':>10s}"]
    for name in CONTENDERS:
        r = results[name]
        label = name
        if name == "release" and "compiled_kernels" in r:
            label = "release kernels" if r["compiled_kernels"] else "release (no kernels)"
        if "skipped" in r or "failed" in r:
            lines.append(f"{label:18s} {r.get('skipped') or 'FAILED: ' + ' '.join(r['failed'])}")
            continue
        if name not in ("release", "MINE") and r.get("runtime", name) != name:
            lines.append(f"{label:18s} not measured: it ran as {r['runtime']!r} here (its "
                         "kernels or package are unavailable)")
            continue
        if name == "MINE":
            lines.append(f"{label:18s} {'':>18s} {'':>10s} {'':>17s} "
                         f"{1000 * r['mine_s_32']:>14.0f} ms "
                         f"{'1':>12s} {r['peak_rss_mb']:>9.0f} {'':>10s}")
            continue

        def vs(value, key, faster_is_higher):
            if key not in base:
                return f"{value:.1f}"
            ratio = value / base[key] if faster_is_higher else base[key] / value
            return f"{value:.1f} (x{ratio:.2f})"

        diff = ""
        if "estimates_8" in base:
            diff = f"{max(abs(a - b) for a, b in zip(r['estimates_8'], base['estimates_8'])):.1e}"
        times_mine = f"{1000 * mine / r['single_ms_32']:.0f}" if mine else "-"
        lines.append(f"{label:18s} {vs(r['batched_per_s_8'], 'batched_per_s_8', True):>18s} "
                     f"{r['batched_cpu_ms_8']:>10.2f} "
                     f"{vs(r['single_ms_8'], 'single_ms_8', False):>17s} "
                     f"{vs(r['single_ms_32'], 'single_ms_32', False):>17s} {times_mine:>12s} "
                     f"{r['peak_rss_mb']:>9.0f} {diff:>10s}")
    lines.append(f"{'targets':18s} {'>= 200':>18s} {'':>10s} {'< 50':>17s} {'< 50':>17s} "
                 f"{'>= 100':>12s}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=200, help="samples per batched call")
    ap.add_argument("--repeats", type=int, default=3, help="batched calls (the best counts)")
    ap.add_argument("--calls", type=int, default=30, help="single-estimate calls per shape")
    ap.add_argument("--mine-samples", type=int, default=3, help="MINE estimates at 32 + 32")
    ap.add_argument("--release-path", default=None,
                    help="a checkout of the release to compare with (its kernels built)")
    ap.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    load_before = os.getloadavg()[0]
    results = {}
    for name in CONTENDERS:
        if name in args.only:
            results[name] = measure(name, args)
        else:
            results[name] = {"skipped": "not asked for (--only)"}
        print(f"measured {name}", file=sys.stderr, flush=True)
    print(table(results, args))
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
