"""What sets each conformal factor of a MIST-QR checkpoint: its calibration samples, by cell.

    python benchmarks/calibration_cells.py [--checkpoint PATH] [--level 0.9]
                                           [--root /tmp/mist_calibration]

Builds (unless they exist) the calibration stores recorded in the checkpoint's card
(``interval_calibration.store_recipes``) with ``mistgen``, takes MIST-QR's raw quantiles
at ``(1 - level) / 2``, 0.5 and ``(1 + level) / 2`` on every sample, and prints, per
(n-bin, raw-median cell) of ``mistmodel.calibration``: the samples from each store, the
share whose truth lies below the raw lower end and above the raw upper end, the cell's
symmetric factor (recomputed; the checkpoint stores it, or its n-bin's where larger), and
the two one-sided factors an asymmetric calibration would use, each at ``(1 + level) / 2``
(lower end: ``(lo - truth) / width``, upper end: ``(truth - hi) / width``).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.calibration import (MI_CUTS, MIN_WIDTH, N_CUTS, cell_bins, conformal_factor,  # noqa: E402
                                   n_bins)


def one_sided(scores: np.ndarray, level: float) -> float:
    """The ``level`` split-conformal quantile of one-sided scores (NaN if too few)."""
    rank = int(np.ceil((scores.size + 1) * level))
    return float(np.sort(scores)[rank - 1]) if rank <= scores.size else float("nan")


def build(recipes: list[dict], root: Path) -> dict[str, mistgen.MetaDataset]:
    stores = {}
    for r in recipes:
        d, name = r["design"], Path(r["path"]).parent.name
        path = root / f"{name}_seed{r['seed']}.zarr"    # another card's recipe: another store
        if not path.exists():
            mistgen.build_meta_dataset(path, r["specs"], d["count"], n_range=d["n_range"],
                                       dim_range=d["dim_range"], dim_y_range=d["dim_y_range"],
                                       seed=r["seed"], split=r["split"],
                                       shard_size=r["shard_size"], priors=r["priors"] or None,
                                       progress=False)
        stores[name] = mistgen.open_meta_dataset(path)
    return stores


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="MIST-QR checkpoint (default: shipped)")
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--root", default="/tmp/mist_calibration")
    args = ap.parse_args(argv)
    qr = (MIST.load(args.checkpoint, out_of_range="warn") if args.checkpoint
          else MIST.load(variant="mist_qr", out_of_range="warn"))
    card = qr.meta.get("interval_calibration") or {}
    if not card.get("store_recipes"):
        raise SystemExit("this checkpoint records no calibration stores")
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    stores = build(card["store_recipes"], root)
    samples, truth, store = [], [], []
    for name, ds in stores.items():
        for s in ds:
            samples.append(s)
            truth.append(s.mi)
            store.append(name)
    truth, store = np.array(truth), np.array(store)
    tail = (1 - args.level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = qr.quantiles_batch([(s.x, s.y) for s in samples], [tail, 0.5, 1 - tail])
    lo, med, hi = q[:, 0], q[:, 1], q[:, 2]
    width = np.maximum(hi - lo, MIN_WIDTH)   # as the library scores
    nb, cb = n_bins([s.n for s in samples]), cell_bins(med)
    n_labels = ([f"n < {N_CUTS[0]}"] + [f"{a}-{b}" for a, b in zip(N_CUTS, N_CUTS[1:])]
                + [f"n >= {N_CUTS[-1]}"])
    m_labels = ([f"< {MI_CUTS[0]}"] + [f"{a}-{b}" for a, b in zip(MI_CUTS, MI_CUTS[1:])]
                + [f">= {MI_CUTS[-1]}"])
    print(f"`python benchmarks/calibration_cells.py --level {args.level}` on "
          f"{qr.checkpoint}: {len(samples)} calibration samples\n")
    print("| n | raw median (nats) | samples (" + " / ".join(stores) + ") | truth below lower "
          "/ above upper | symmetric factor | one-sided: lower / upper |")
    print("|---|---|---|---|---|---|")
    for i, n_label in enumerate(n_labels):
        for j, m_label in enumerate(m_labels):
            sel = (nb == i) & (cb == j)
            if not sel.any():
                continue
            counts = " / ".join(str(int(np.sum(sel & (store == k)))) for k in stores)
            t, a, b, w = truth[sel], lo[sel], hi[sel], width[sel]
            try:
                sym = f"{conformal_factor(a, b, t, args.level):+.3f}"
            except ValueError:
                sym = "too few"
            print(f"| {n_label} | {m_label} | {counts} | {np.mean(t < a):.2f} / "
                  f"{np.mean(t > b):.2f} | {sym} | {one_sided((a - t) / w, 1 - tail):+.3f} / "
                  f"{one_sided((t - b) / w, 1 - tail):+.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
