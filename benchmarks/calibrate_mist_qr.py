"""Fit the split-conformal interval factors of a MIST-QR checkpoint (mistmodel.calibration).

    python benchmarks/calibrate_mist_qr.py [--checkpoint PATH] [--root /tmp/mist_calib] [--count 3000]

Builds a calibration store from the training families of the shipped checkpoint's last
training stage (same families, n and dimension ranges as its validation stores) under the
split "calibration" and a seed used nowhere else, computes the factors for the levels
0.5, 0.8, 0.9 and 0.95 and writes them into the checkpoint (``interval_calibration`` in
the .pt, which ``MIST.interval`` reads) and into its JSON record.  Without
``--checkpoint`` it calibrates the shipped ``mist_qr`` checkpoint in place.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.calibration import fit_interval_calibration  # noqa: E402
from mistmodel.mist import default_checkpoint  # noqa: E402

SEED = 7_000_001


def calibration_recipes(record: dict) -> dict[str, dict]:
    """Recipes of the validation stores of the last stage, re-seeded for calibration."""
    stages = record.get("training_stages") or [{"store_recipes": record["store_recipes"]}]
    recipes = stages[-1]["store_recipes"]["recipes"]
    val = {name: dict(r) for name, r in recipes.items() if r.get("split") == "val"}
    if not val:
        raise SystemExit("the checkpoint's record holds no validation store recipes")
    return val


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--root", type=Path, default=Path("/tmp/mist_calib"))
    ap.add_argument("--count", type=int, default=3000, help="calibration datapoints in all")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = args.checkpoint or default_checkpoint("mist_qr")
    record_path = ckpt.with_suffix(".json")
    record = json.loads(record_path.read_text())
    recipes = calibration_recipes(record)
    total = sum(r["count"] for r in recipes.values())
    samples, truth = [], []
    for i, (name, recipe) in enumerate(sorted(recipes.items())):
        recipe.update(split="calibration", seed=SEED + i,
                      count=max(1, round(args.count * recipe["count"] / total)))
        path = args.root / name.replace("val", "calib")
        if not path.exists():
            mistgen.build_meta_dataset(path, **recipe, workers=1)
        for shard in mistgen.open_meta_dataset(path).iter_shards():
            samples += [(s.x, s.y) for s in shard]
            truth += [s.mi for s in shard]
        recipes[name] = recipe
    qr = MIST.load(ckpt, device="cpu")
    if not qr.is_quantile:
        raise SystemExit(f"{ckpt} is not a mist_qr checkpoint")
    calib = fit_interval_calibration(qr, samples, np.array(truth))
    calib["store_recipes"] = {name.replace("val", "calib"): r for name, r in recipes.items()}
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state["interval_calibration"] = calib
    partial = ckpt.with_name(ckpt.name + ".partial")
    torch.save(state, partial)
    partial.replace(ckpt)
    record["interval_calibration"] = calib
    record_path.write_text(json.dumps(record, indent=1))
    cuts = calib["n_cuts"]
    names = ([f"n < {cuts[0]}"] + [f"[{a}, {b})" for a, b in zip(cuts, cuts[1:])]
             + [f"n >= {cuts[-1]}"])
    print("datapoints by n-bin: " + ", ".join(f"{b} {c}" for b, c in zip(names, calib["count_by_n"])))
    for level, factor in calib["factors"].items():
        bins = ", ".join(f"{b} raw {r:.3f} factor {'pooled' if f is None else f'{f:+.3f}'}"
                         for b, r, f in zip(names, calib["raw_coverage_by_n"][level],
                                            calib["factors_by_n"][level]))
        print(f"level {level}: raw coverage {calib['raw_coverage'][level]:.3f}, "
              f"conformal factor {factor:+.3f} (x interval width); by n-bin: {bins}")
    print(f"written into {ckpt} and {record_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
