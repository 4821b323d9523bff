"""Other ways to calibrate MIST-QR's intervals, measured against the shipped one.

    python benchmarks/interval_variants.py [--qr-checkpoint PATH] [--reps 40]
                                          [--root /tmp/mist_calibration]

Fits four split-conformal calibrations at level 0.9 on the calibration stores recorded in
the checkpoint's card (built with ``mistgen`` unless they exist), all with the cells of
``mistmodel.calibration`` (n-bin x raw-median cell, a cell never narrower than its n-bin):

* ``symmetric``: the shipped method, one width-scaled factor for both ends;
* ``per-end``: a factor for each end, each a one-sided conformal quantile at 0.95
  (lower end: ``(lo - truth) / width``, upper end: ``(truth - hi) / width``), so the two
  misses add up to at most 10%;
* ``per-end from 0.05``: per-end in the cells of raw medians from 0.05 nats, symmetric
  below (where independence lives);
* ``symmetric + dims``: symmetric, each cell split again at ``dx + dy >= 16``.

Then applies each to MIST-QR's raw quantiles on suites built with ``mistgen`` under the
user checks' seed and split names (``benchmarks/user_checks.py``): X independent of Y
(mixed marginals and i.i.d. uniform columns, its dims and n, ``--reps`` per cell); a
bivariate Gaussian at rho 0.1-0.5 (20 samples per n); Gaussian and Student-t families at
d 1-32 and n 500-10,000 (10 per cell). Prints, per variant, the coverage of 0 at
independence (n >= 100: all samples and the worst (dims, n) cell), and the coverage,
share of intervals excluding 0 and median width on the dependent suites.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import user_checks as uc  # noqa: E402
from calibration_cells import build, one_sided  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.calibration import MI_CUTS, MIN_WIDTH, N_CUTS, cell_bins, n_bins  # noqa: E402

LEVEL = 0.9
SEED = 17                 # the user checks' default master seed
DIMS_CUT = 16
RHOS = (0.1, 0.2, 0.3, 0.5)
WEAK_N = (100, 500, 2000, 10000)
VARIANTS = ("symmetric", "per-end", "per-end from 0.05", "symmetric + dims")


class Suite:
    """Raw quantiles at the level's two tails and 0.5, with truth, n and dims."""

    def __init__(self, qr: MIST, samples: list, truth=None):
        tail = (1 - LEVEL) / 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = qr.quantiles_batch([(s.x, s.y) for s in samples], [tail, 0.5, 1 - tail])
        self.lo, self.med, self.hi = q[:, 0], q[:, 1], q[:, 2]
        self.width = np.maximum(self.hi - self.lo, MIN_WIDTH)
        self.truth = np.array([s.mi for s in samples] if truth is None else truth, dtype=float)
        self.n = np.array([s.n for s in samples])
        self.dims = np.array([(s.x.shape[1], s.y.shape[1]) for s in samples])

    def keys(self, variant: str) -> np.ndarray:
        """Each sample's calibration cell under ``variant``: (n-bin, median cell, dims part)."""
        split = variant == "symmetric + dims"
        part = (self.dims.sum(axis=1) >= DIMS_CUT) if split else np.zeros(self.n.size, bool)
        return np.stack([n_bins(self.n, N_CUTS), cell_bins(self.med, MI_CUTS),
                         part.astype(int)], axis=1)


def quantile_or_none(scores: np.ndarray, level: float) -> float | None:
    value = one_sided(scores, level)
    return None if np.isnan(value) else value


def fit(cal: Suite, variant: str) -> dict[tuple, tuple[float, float]]:
    """(lower, upper) factors of every cell key under ``variant``."""
    keys = cal.keys(variant)
    sym = np.maximum(cal.lo - cal.truth, cal.truth - cal.hi) / cal.width
    ends = ((cal.lo - cal.truth) / cal.width, (cal.truth - cal.hi) / cal.width)
    table = {}
    parts = 2 if variant == "symmetric + dims" else 1
    for key in itertools.product(range(len(N_CUTS) + 1), range(len(MI_CUTS) + 1), range(parts)):
        b, c, _ = key
        per_end = variant == "per-end" or (variant == "per-end from 0.05" and c >= 1)
        factors = []
        for scores in (ends if per_end else (sym, sym)):
            level = (1 + LEVEL) / 2 if per_end else LEVEL
            nested = [keys[:, 0] == b, (keys[:, 0] == b) & (keys[:, 1] == c),
                      np.all(keys == key, axis=1)]
            value = quantile_or_none(scores, level)          # pooled, then narrower
            for sel in nested:
                inner = quantile_or_none(scores[sel], level)
                if inner is not None:
                    value = inner if sel is nested[0] else max(inner, value)
            factors.append(value)
        table[key] = tuple(factors)
    return table


def apply(suite: Suite, variant: str, table: dict) -> tuple[np.ndarray, np.ndarray]:
    f = np.array([table[tuple(k)] for k in suite.keys(variant)])
    lo = np.maximum(suite.lo - f[:, 0] * suite.width, 0.0)
    return lo, np.maximum(suite.hi + f[:, 1] * suite.width, lo)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qr-checkpoint", default=None, help="MIST-QR checkpoint (default: shipped)")
    ap.add_argument("--reps", type=int, default=40, help="independent samples per (dims, n)")
    ap.add_argument("--root", default="/tmp/mist_calibration")
    args = ap.parse_args(argv)
    qr = MIST.load(args.qr_checkpoint, variant="mist_qr", out_of_range="warn")
    card = qr.meta.get("interval_calibration") or {}
    if not card.get("store_recipes"):
        raise SystemExit("this checkpoint records no calibration stores")
    Path(args.root).mkdir(parents=True, exist_ok=True)
    stores = build(card["store_recipes"], Path(args.root))
    cal = Suite(qr, [s for ds in stores.values() for s in ds])
    print(f"`python benchmarks/interval_variants.py --reps {args.reps}` on {qr.checkpoint}: "
          f"{cal.n.size} calibration samples\n", flush=True)

    independence = {}
    for label, marginals in (("mixed marginals", uc.INDEPENDENT_SPECS),
                             ("i.i.d. uniform columns", ["independent-uniform"])):
        samples = [uc.draw(SEED, "independence", marginals[r % len(marginals)], n, dx, dy, r)
                   for dx, dy in uc.INDEPENDENCE_DIMS for n in uc.INDEPENDENCE_N
                   if n >= 100 for r in range(args.reps)]
        independence[label] = Suite(qr, samples, truth=np.zeros(len(samples)))
    weak = Suite(qr, [uc.draw(SEED, "weak", "normal-dense", n, 1, 1, r, params={"off_diag": rho})
                      for rho in RHOS for n in WEAK_N for r in range(20)])
    weak_rho = np.repeat(RHOS, 20 * len(WEAK_N))
    consistency = Suite(qr, [uc.draw(SEED, "consistency", spec, n, d, d, r)
                             for n in uc.CONSISTENCY_N for spec in uc.CONSISTENCY_SPECS
                             for d in (1, 2, 4, 8, 16, 32) for r in range(10)])

    print("| variant | 0 covered, mixed (worst cell) | 0 covered, i.i.d. (worst cell) | "
          + " | ".join(f"rho {rho}: covered / excl. 0 / width" for rho in RHOS)
          + " | d 1-8: covered, width | d 16-32: covered, width |")
    print("|---|" + "---|" * (4 + len(RHOS)))
    for variant in VARIANTS:
        table = fit(cal, variant)
        row = [variant]
        for suite in independence.values():
            lo, _ = apply(suite, variant, table)
            covered = lo <= 0
            cells = {}
            for (dx, dy), n, c in zip(suite.dims, suite.n, covered):
                cells.setdefault((dx, dy, n), []).append(c)
            worst = min(cells, key=lambda k: np.mean(cells[k]))
            row.append(f"{covered.sum()}/{covered.size} ({np.sum(cells[worst])}/"
                       f"{len(cells[worst])} at {worst[0]}+{worst[1]}, n={worst[2]})")
        lo, hi = apply(weak, variant, table)
        for rho in RHOS:
            sel = weak_rho == rho
            covered = (weak.truth[sel] >= lo[sel]) & (weak.truth[sel] <= hi[sel])
            row.append(f"{covered.mean():.2f} / {np.mean(lo[sel] > 0):.2f} / "
                       f"{np.median(hi[sel] - lo[sel]):.2f}")
        lo, hi = apply(consistency, variant, table)
        covered = (consistency.truth >= lo) & (consistency.truth <= hi)
        for sel in (consistency.dims[:, 0] <= 8, consistency.dims[:, 0] >= 16):
            row.append(f"{covered[sel].mean():.3f}, {np.median((hi - lo)[sel]):.2f}")
        print("| " + " | ".join(row) + " |", flush=True)
    print(f"\nWeak dependence: {20 * len(WEAK_N)} samples per rho (n = "
          f"{', '.join(map(str, WEAK_N))}); MI at rho {', '.join(map(str, RHOS))}: "
          + ", ".join(f"{-0.5 * np.log(1 - r * r):.3f}" for r in RHOS) + " nats.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
