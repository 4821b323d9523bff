"""What the neighbour correction does to dependent samples with few rows per column.

    python benchmarks/correction_few_rows.py [--seed 1200] [--root /tmp/mist_few_rows]

Builds (unless they exist) the paper's test grids with ``mistgen`` as
``benchmarks/eval_mist.py`` does (n 10 to 500, dims 2 to 32 per side; in-distribution
families at ``--seed``, held-out ones at ``--seed + 1``), keeps the samples with fewer
than 20 rows per column - where the correction reads shuffles of the sample
(``mistmodel.neighbour_correction.ShuffledNeighbour``) - and prints, by n (below 100,
from 100) and band of the true MI, the mean absolute error, the mean error and the mean
log-ratio error |log((max(est, 0) + 0.01) / (true + 0.01))| of MIST without and with
``neighbour_correction=True``, side by side.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mistgen  # noqa: E402
from eval_mist import ID_SPECS, OOD_SPECS, build  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.neighbour_correction import ROWS_PER_COLUMN  # noqa: E402

BANDS = [(0.0, 0.25), (0.25, 0.5), (0.5, 1.0), (1.0, 2.0)]
SIZES = [("n < 100", 10, 100), ("n >= 100", 100, 501)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1200)
    ap.add_argument("--root", default="/tmp/mist_few_rows")
    args = ap.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    plain, corrected = MIST.load(), MIST.load(neighbour_correction=True)
    print(f"`python benchmarks/correction_few_rows.py --seed {args.seed}`: MIST / MIST with "
          "the correction, samples below "
          f"{ROWS_PER_COLUMN} rows per column\n")
    print("| grid | n | true MI | samples | abs. error | mean error | log-ratio error |")
    print("|---|---|---|---|---|---|---|")
    for name, specs, seed in (("in distribution", ID_SPECS, args.seed),
                              ("out of distribution", OOD_SPECS, args.seed + 1)):
        path = root / f"{'id' if specs is ID_SPECS else 'ood'}_{seed}.zarr"
        build(path, specs, seed)
        samples = [s for s in mistgen.open_meta_dataset(path)
                   if s.x.shape[0] < ROWS_PER_COLUMN * (s.x.shape[1] + s.y.shape[1])]
        pairs = [(s.x, s.y) for s in samples]
        truth = np.array([s.mi for s in samples])
        n = np.array([s.x.shape[0] for s in samples])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, b = plain.estimate_batch(pairs), corrected.estimate_batch(pairs)

        def log_ratio(e):
            return np.abs(np.log((np.maximum(e, 0) + 0.01) / (truth + 0.01)))

        for label, lo_n, hi_n in SIZES:
            for lo, hi in BANDS:
                m = (n >= lo_n) & (n < hi_n) & (truth >= lo) & (truth < hi)
                if not m.any():
                    continue
                print(f"| {name} (seed {seed}) | {label} | {lo:g}-{hi:g} | {m.sum()} | "
                      f"{np.abs(a - truth)[m].mean():.3f} / {np.abs(b - truth)[m].mean():.3f} | "
                      f"{(a - truth)[m].mean():+.3f} / {(b - truth)[m].mean():+.3f} | "
                      f"{log_ratio(a)[m].mean():.2f} / {log_ratio(b)[m].mean():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
