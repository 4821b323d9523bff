"""Meta-dataset generation speed and memory on the paper's training mix.

Builds the paper's 16 training families (n ~ U{10..500}, d ~ U{2..32} for both X and Y)
into a temporary store, each configuration in a fresh subprocess so that peak memory
(max RSS of the building process; with several workers, also the largest worker
process's) is measured alone, and prints datapoints per second
per core and peak memory. Builds run with glibc's ``MALLOC_MMAP_THRESHOLD_=1048576`` in
their environment (shard buffers of 1 MiB and more are then mapped and returned to the OS
when freed, which keeps a long build's memory flat; mistgen itself leaves the allocator
alone); ``--default-malloc`` measures without it. ``--sample-loop N`` instead times
``mistgen.sample()`` called in a plain loop over the first N datapoints of the same mix
(what a user's own loop gets), in the caller's environment as it is. Usage:

    python benchmarks/bench_generate.py                      # 10,000 and 100,000 on 1 worker
    python benchmarks/bench_generate.py --counts 10000 --workers 1 2
    python benchmarks/bench_generate.py --sample-loop 3000
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # this checkout's mistgen

PAPER_TRAIN = [
    "normal-dense-base", "normal-dense-halfcube", "normal-dense-asinh", "normal-sparse-wiggly",
    "normal-sparse-base", "normal-lvm-wiggly", "normal-lvm-base", "normal-2pair-base",
    "student-dense-base", "student-dense-wiggly", "student-sparse-halfcube", "student-sparse-base",
    "student-sparse-asinh", "student-2pair-asinh", "student-2pair-halfcube", "additive_noise-wiggly",
]

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def run_one(count: int, workers: int, shard_size: int, workdir: Path) -> dict:
    import mistgen

    path = workdir / f"bench-{count}-{workers}.zarr"
    start = time.perf_counter()
    ds = mistgen.build_meta_dataset(path, PAPER_TRAIN, count, n_range=(10, 500), dim_range=(2, 32),
                                    seed=0, split="bench", shard_size=shard_size, workers=workers,
                                    progress=False)
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    raw = int((ds.index.n * (ds.index.dim_x + ds.index.dim_y)).sum()) * 4
    shutil.rmtree(path)
    return {
        "count": count, "workers": workers, "seconds": seconds,
        "datapoints_per_s": count / seconds, "datapoints_per_s_per_core": count / seconds / workers,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # dask's worker processes, ended with the build: the largest one's peak
        "worker_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "store_mib": size / 2**20, "raw_float32_mib": raw / 2**20,
    }


def sample_loop(count: int) -> dict:
    """Datapoints per second of ``mistgen.sample()`` in a loop over the training mix."""
    import mistgen
    from mistgen.design import make_design, make_plan

    plan = make_plan(make_design(PAPER_TRAIN, count, n_range=(10, 500), dim_range=(2, 32)),
                     0, "bench", None, 1000)
    cells = [plan.address(i) for i in range(count)]
    start = time.perf_counter()
    for spec, n, dx, dy, seed in cells:
        mistgen.sample(spec, n, dx, dy, seed)
    seconds = time.perf_counter() - start
    return {"count": count, "seconds": seconds, "datapoints_per_s": count / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1])
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--sample-loop", type=int, default=None, metavar="N",
                    help="time mistgen.sample() in a loop over N datapoints instead")
    ap.add_argument("--default-malloc", action="store_true",
                    help="build without MALLOC_MMAP_THRESHOLD_ in the environment")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sample_loop is not None:
        r = sample_loop(args.sample_loop)
        print(f"sample() loop: {r['count']} datapoints in {r['seconds']:.1f} s = "
              f"{r['datapoints_per_s']:.0f} datapoints/s")
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mistgen-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.single:
        print(json.dumps(run_one(args.counts[0], args.workers[0], args.shard_size, workdir)))
        return
    rows = []
    for workers in args.workers:
        for count in args.counts:
            cmd = [sys.executable, __file__, "--single", "--counts", str(count), "--workers",
                   str(workers), "--shard-size", str(args.shard_size), "--workdir", str(workdir)]
            env = dict(os.environ) if args.default_malloc else {**os.environ, **MALLOC_ENV}
            out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                                 env=env).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"count={r['count']:>7} workers={r['workers']}  {r['seconds']:8.1f} s  "
                  f"{r['datapoints_per_s']:8.0f} datapoints/s  "
                  f"{r['datapoints_per_s_per_core']:8.0f} /s/core  "
                  f"peak RSS {r['peak_rss_mib']:7.0f} MiB (driver)"
                  + (f" + {r['worker_peak_rss_mib']:.0f} MiB (largest worker)  "
                     if r["workers"] > 1 else "  ")
                  + 
                  f"store {r['store_mib']:8.0f} MiB (raw float32 {r['raw_float32_mib']:.0f} MiB)",
                  flush=True)
    one = [r for r in rows if r["workers"] == rows[0]["workers"]]
    if len(one) > 1:
        print(f"peak memory ratio {one[-1]['count']:,} / {one[0]['count']:,} datapoints: "
              f"{one[-1]['peak_rss_mib'] / one[0]['peak_rss_mib']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
