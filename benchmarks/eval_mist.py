"""Accuracy of the shipped MIST / MIST-QR checkpoints on the paper's test grids.

    python benchmarks/eval_mist.py [--root /tmp/mist_eval] [--json results.json]

Builds (unless they exist) two test stores with ``mistgen`` on the paper's grid - 20
values of n evenly spaced over [10, 500], 9 datapoints per (n, family) cell, one
dimension d ~ U{2..32} shared by X and Y - from the in-distribution test families and
the out-of-distribution ones (reference/FAMILIES.md), under a seed and split unused in
training.  On each store it evaluates MIST (point), MIST-QR (median and central 90%
interval) and KSG (k = 5) on the same samples and reports

* MSE against the true MI by n-bin [10,100), [100,300), [300,500], for MIST, MIST-QR's
  median and KSG, next to the published reference MIST figures;
* MIST-QR's 90% interval coverage of the true MI (overall and by n-bin) and mean width,
  for the interval ``MIST.interval`` returns (conformally calibrated where the checkpoint
  has a factor for the level) and for the raw quantiles;
* MSE by family;

and writes everything to a JSON file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.calibration import widen  # noqa: E402
from mistmodel.estimators import KSG  # noqa: E402

ID_SPECS = ["normal-dense-base", "normal-lvm-wiggly", "normal-dense-halfcube",
            "student-dense-base", "student-sparse-base", "student-sparse-asinh"]
OOD_SPECS = ["normal-dense-wiggly", "normal-sparse-halfcube", "normal-sparse-asinh",
             "student-sparse-wiggly", "student-dense-halfcube", "additive_noise-base",
             "additive_noise-halfcube"]
N_GRID = [int(v) for v in np.round(np.linspace(10, 500, 20))]
BINS = {"[10,100)": (10, 100), "[100,300)": (100, 300), "[300,500]": (300, 501)}
REFERENCE = {"id": {"[10,100)": 3.1, "[100,300)": 0.34, "[300,500]": 0.28},
             "ood": {"[10,100)": 8.0, "[100,300)": 7.3, "[300,500]": 8.8}}


def build(path: Path, specs, seed: int) -> None:
    if path.exists():
        return
    mistgen.build_meta_dataset(path, specs=specs, n_grid=N_GRID, repeats=9, dim_range=(2, 32),
                               seed=seed, split="test", shard_size=500, progress=False,
                               workers=1)


def by_bin(values: np.ndarray, n: np.ndarray) -> dict:
    return {k: float(values[(n >= lo) & (n < hi)].mean()) for k, (lo, hi) in BINS.items()}


def evaluate_store(path: Path, mist: MIST, qr: MIST, ksg: KSG | None, level: float) -> dict:
    ds = mistgen.open_meta_dataset(path)
    truth, n, spec, point, med, low, high, ksg_est = [], [], [], [], [], [], [], []
    t_mist = t_qr = t_ksg = 0.0
    for shard in ds.iter_shards():
        pairs = [(s.x, s.y) for s in shard]
        truth += [s.mi for s in shard]
        n += [s.x.shape[0] for s in shard]
        spec += [s.spec for s in shard]
        t = time.perf_counter()
        point.append(mist.estimate_batch(pairs))
        t_mist += time.perf_counter() - t
        t = time.perf_counter()
        q = qr.quantiles_batch(pairs, [(1 - level) / 2, 0.5, (1 + level) / 2])
        t_qr += time.perf_counter() - t
        low.append(q[:, 0]), med.append(q[:, 1]), high.append(q[:, 2])
        if ksg is not None:
            t = time.perf_counter()
            ksg_est.append(np.array([ksg.estimate(x, y) for x, y in pairs]))
            t_ksg += time.perf_counter() - t
    truth, n, spec = np.array(truth), np.array(n), np.array(spec)
    point, med, low, high = (np.concatenate(a) for a in (point, med, low, high))
    raw_inside = (truth >= low) & (truth <= high)
    factor = qr.calibration_factors(level, n, med)
    if factor is not None:                     # the interval MIST-QR.interval returns
        low, high = widen(low, high, factor)
    inside = (truth >= low) & (truth <= high)
    out = {
        "store": str(path), "count": int(truth.size),
        "mse_by_n": {"MIST": by_bin((point - truth) ** 2, n),
                     "MIST-QR median": by_bin((med - truth) ** 2, n)},
        "mse": {"MIST": float(((point - truth) ** 2).mean()),
                "MIST-QR median": float(((med - truth) ** 2).mean())},
        "coverage": float(inside.mean()), "coverage_level": level,
        "conformal_factor": None if factor is None else by_bin(factor, n),
        "coverage_raw_quantiles": float(raw_inside.mean()),
        "coverage_raw_quantiles_by_n": by_bin(raw_inside.astype(float), n),
        "coverage_by_n": by_bin(inside.astype(float), n),
        "mean_interval_width": float((high - low).mean()),
        "mse_by_family": {}, "seconds": {"MIST": t_mist, "MIST-QR": t_qr},
    }
    if ksg is not None:
        k = np.concatenate(ksg_est)
        out["mse_by_n"]["KSG"] = by_bin((k - truth) ** 2, n)
        out["mse"]["KSG"] = float(((k - truth) ** 2).mean())
        out["seconds"]["KSG"] = t_ksg
    for s in sorted(set(spec)):
        m = spec == s
        row = {"MIST": float(((point[m] - truth[m]) ** 2).mean()),
               "coverage": float(inside[m].mean()), "mean_true_mi": float(truth[m].mean())}
        if ksg is not None:
            row["KSG"] = float(((k[m] - truth[m]) ** 2).mean())
        out["mse_by_family"][s] = row
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="/tmp/mist_eval", help="where the test stores live")
    ap.add_argument("--seed", type=int, default=20240)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--qr-checkpoint", default=None)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--no-ksg", action="store_true")
    ap.add_argument("--neighbour-correction", action="store_true",
                    help="MIST with its neighbour correction (mistmodel.neighbour_correction)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default="mist_eval.json")
    ap.add_argument("--record", action="store_true",
                    help="also store the results as test_evaluation in the shipped checkpoints' JSON")
    args = ap.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    # a store is named by its seed: one built under another seed is never read instead
    stores = {"id": (root / f"test_id_seed{args.seed}.zarr", ID_SPECS, args.seed),
              "ood": (root / f"test_ood_seed{args.seed + 1}.zarr", OOD_SPECS, args.seed + 1)}
    for path, specs, seed in stores.values():
        build(path, specs, seed)
    if args.neighbour_correction and args.record:
        ap.error("--record stores the shipped configuration's figures; drop --neighbour-correction")
    mist = MIST.load(args.checkpoint, device="cpu", neighbour_correction=args.neighbour_correction)
    qr = MIST.load(args.qr_checkpoint, variant="mist_qr", device="cpu")
    ksg = None if args.no_ksg else KSG(k=5)
    results = {"seed": args.seed, "n_grid": N_GRID, "repeats": 9, "dim_range": [2, 32],
               "checkpoints": {"mist": mist.checkpoint, "mist_qr": qr.checkpoint},
               "neighbour_correction": args.neighbour_correction,
               "reference_mist_mse_by_n": REFERENCE}
    for split, (path, _, _) in stores.items():
        res = evaluate_store(path, mist, qr, ksg, args.level)
        results[split] = res
        print(f"\n{split.upper()} ({res['count']} datapoints)  MSE by n-bin")
        cols = list(BINS)
        print(f"  {'estimator':16s}" + "".join(f"{c:>12s}" for c in cols) + f"{'all':>10s}")
        for name, row in res["mse_by_n"].items():
            print(f"  {name:16s}" + "".join(f"{row[c]:12.3f}" for c in cols)
                  + f"{res['mse'][name]:10.3f}")
        print(f"  {'reference MIST':16s}" + "".join(f"{REFERENCE[split][c]:12.2f}" for c in cols))
        factors = res["conformal_factor"] or {}
        print(f"  MIST-QR {100 * args.level:g}% coverage {res['coverage']:.3f} "
              f"(raw quantiles {res['coverage_raw_quantiles']:.3f}), mean width "
              f"{res['mean_interval_width']:.2f} nats; by n-bin: "
              + ", ".join(f"{c} {v:.2f} (raw {res['coverage_raw_quantiles_by_n'][c]:.2f}, "
                          f"factor {factors.get(c, float('nan')):+.3f})"
                          for c, v in res["coverage_by_n"].items()))
        for fam, row in res["mse_by_family"].items():
            extra = f"  KSG {row['KSG']:8.3f}" if "KSG" in row else ""
            print(f"    {fam:26s} MIST {row['MIST']:8.3f}{extra}  cover {row['coverage']:.2f}"
                  f"  mean MI {row['mean_true_mi']:.2f}")
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {args.json}")
    if args.record:
        summary = {"script": f"benchmarks/eval_mist.py (seed {args.seed}, split 'test')",
                   **{k: v for k, v in results.items() if k != "checkpoints"}}
        for est in (mist, qr):
            record = Path(est.checkpoint).with_suffix(".json")
            meta = json.loads(record.read_text())
            meta["test_evaluation"] = summary
            record.write_text(json.dumps(meta, indent=1))
            print(f"recorded in {record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
