"""Fit and warp time for a modality (default: the shipped ``breast_cancer`` example).

1. Fits the modality's X and Y flows with the default settings (or the config's) and
   reports seconds in all, per optimiser step and per modality row.
2. Builds a base store with the paper's 16 training families at the modality's dims
   (n ~ U{10..500}), warps it, and reports seconds per datapoint and per sample row for
   the base build and for the warp, plus regenerations and the largest round-trip error.

    python benchmarks/bench_warp.py                         # 2,000 datapoints, 1 worker
    python benchmarks/bench_warp.py --count 10000 --workers 1 2
    python benchmarks/bench_warp.py --data my.csv --x-columns 0 1 --y-columns 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # this checkout's packages

PAPER_TRAIN = [
    "normal-dense-base", "normal-dense-halfcube", "normal-dense-asinh", "normal-sparse-wiggly",
    "normal-sparse-base", "normal-lvm-wiggly", "normal-lvm-base", "normal-2pair-base",
    "student-dense-base", "student-dense-wiggly", "student-sparse-halfcube", "student-sparse-base",
    "student-sparse-asinh", "student-2pair-asinh", "student-2pair-halfcube", "additive_noise-wiggly",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="modality data (.npy/.csv)")
    ap.add_argument("--x-columns", type=int, nargs="+", default=None)
    ap.add_argument("--y-columns", type=int, nargs="+", default=None)
    ap.add_argument("--count", type=int, default=2000, help="datapoints in the base store")
    ap.add_argument("--workers", type=int, nargs="+", default=[1])
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--workdir", type=Path, default=None, help="where to write (default: temp)")
    ap.add_argument("--figure", type=Path, default=None, help="also draw warped samples here")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    import numpy as np

    import mistgen
    from mistgen.flows import fit_modality
    from mistgen.modality import build_modality_base, example_modality, load_modality
    from mistgen.warp import marginal_ks, plot_warped_samples, warp_store, warp_summary

    if args.data is not None:
        if not (args.x_columns and args.y_columns):
            sys.exit("--data needs --x-columns and --y-columns")
        modality = load_modality(args.data, args.x_columns, args.y_columns)
    else:
        modality = example_modality("breast_cancer")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mistgen-bench-warp-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict = {"modality": modality.describe(), "mistgen": mistgen.__version__}

    start, cpu = time.perf_counter(), time.process_time()
    flows = fit_modality(modality, path=workdir / f"{modality.name}.pt")
    fit_s, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
    sides = {}
    for side, flow in (("x", flows.x), ("y", flows.y)):
        h = flow.history
        sides[side] = {"dim": flow.dim, "steps": h["steps"], "best_step": h["best_step"],
                       "val_nll": h["val_nll"]}
    steps = sum(v["steps"] for v in sides.values())
    result["fit"] = {"seconds": fit_s, "cpu_seconds": fit_cpu, "ms_per_step": 1e3 * fit_s / steps,
                     "us_per_modality_row": 1e6 * fit_s / modality.rows,
                     "sides": sides, "settings": flows.x.settings.to_dict()}
    print(f"fit  {modality.name} ({modality.rows} rows, dim_x={modality.dim_x}, "
          f"dim_y={modality.dim_y}): {fit_s:.1f} s in all ({fit_cpu:.1f} s CPU); " + "; ".join(
              f"{k}: {v['steps']} steps" for k, v in sides.items())
          + f"; {1e3 * fit_s / steps:.1f} ms per step of both sides",
          flush=True)

    start = time.perf_counter()
    base = build_modality_base(workdir / "base.zarr", modality, PAPER_TRAIN, args.count,
                               n_range=(10, 500), seed=0, split="bench",
                               shard_size=args.shard_size, workers=1, progress=False)
    build_s = time.perf_counter() - start
    rows = int(base.index["n"].values.sum())
    result["base"] = {"datapoints": len(base), "rows": rows, "seconds": build_s,
                      "ms_per_datapoint": 1e3 * build_s / len(base)}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result["machine"] = {"cpus": os.cpu_count(), "load_1min": load}
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {load:.1f} (timings are wall "
          "clock unless marked CPU)")
    print(f"base {len(base)} datapoints ({rows} rows): {build_s:.1f} s, "
          f"{1e3 * build_s / len(base):.2f} ms/datapoint", flush=True)

    result["warp"] = []
    for workers in args.workers:
        out = workdir / f"warp-{workers}.zarr"
        start, cpu = time.perf_counter(), time.process_time()
        warped = warp_store(base, workdir / f"{modality.name}.pt", out, workers=workers,
                            progress=False)
        warp_s, warp_cpu = time.perf_counter() - start, time.process_time() - cpu
        summary = warp_summary(warped)
        r = {"workers": workers, "seconds": warp_s,
             "cpu_ms_per_datapoint": 1e3 * warp_cpu / len(base) if workers == 1 else None,
             "ms_per_datapoint": 1e3 * warp_s / len(base),
             "ms_per_datapoint_per_core": 1e3 * warp_s * workers / len(base),
             "us_per_row": 1e6 * warp_s / rows, **summary}
        result["warp"].append(r)
        cpu_note = (f", CPU {r['cpu_ms_per_datapoint']:.2f} ms/datapoint" if workers == 1 else "")
        print(f"warp workers={workers}: {warp_s:.1f} s, {r['ms_per_datapoint']:.2f} ms/datapoint "
              f"({r['ms_per_datapoint_per_core']:.2f} per core{cpu_note}), "
              f"{r['us_per_row']:.1f} us/row; "
              f"regenerated {summary['regenerated_datapoints']} datapoints "
              f"({summary['regenerations']} regenerations), round-trip error max "
              f"{summary['max_roundtrip_error']:.1e}, median {summary['median_roundtrip_error']:.1e}",
              flush=True)

    data = np.hstack([modality.x, modality.y])
    pick = range(0, len(base), max(1, len(base) // 40))
    pooled_b = np.vstack([np.hstack([base[i].x, base[i].y]) for i in pick])
    pooled_w = np.vstack([np.hstack([warped[i].x, warped[i].y]) for i in pick])
    ks_b, ks_w = marginal_ks(pooled_b, data), marginal_ks(pooled_w, data)
    result["marginal_ks"] = {"base": ks_b.tolist(), "warped": ks_w.tolist()}
    print(f"marginal KS vs the modality's data, per column: base {np.round(ks_b, 3).tolist()}, "
          f"warped {np.round(ks_w, 3).tolist()}")
    if args.figure:
        plot_warped_samples(warped, modality, args.figure, count=3, base=base)
        print(f"figure: {args.figure}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
