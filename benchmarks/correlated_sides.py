"""Strongly correlated columns within a side: where MIST reads far less than the MI.

    python benchmarks/correlated_sides.py [--reps 3] [--n 2000] [--checkpoint PATH]
                                          [--qr-checkpoint PATH] [--conditional]

First, ``mistgen``'s ``normal-dense`` at d + d columns with every pair of the 2d columns
correlated r (MI exact), beyond its training prior (r in [0, 0.5]) from r = 0.6: over
``--reps`` samples of ``--n`` rows, the mean absolute correlation of the more correlated
side (``mistmodel.correlated_sides.mean_correlation``), the MI, the mean estimate of
MIST, of MIST on each side's columns whitened (an invertible linear map: the MI is
unchanged), MIST-QR's median and the share of its 90% intervals that contain the MI, CCA,
and how many samples raised the ``OutOfRangeWarning`` about correlated sides.

Then how often that warning fires on the dependent families MIST was trained on (the
release config's, default priors, 4 to 32 columns a side, n = 500; ``--reps`` * 10 samples
per family) and on its independence families, with MIST's mean absolute error on the
samples that warned and on those that did not.

With ``--conditional``, the same for the conditional network (``mist_cmi``, 2 to 16
columns a side): each sample above with two more columns Z, independent of X and Y (so
I(X;Y|Z) is the MI), read by ``mist_cmi`` and by CCA's conditional form; then the largest
mean absolute correlation of a side over the conditional network's training draws (its
six families, 1 to 16 columns a group, n 50-1,000, batch by batch), how often its warning fires
there and its error on the samples that warned and on the others.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
from limitation_rows import arguments, checkpoint_options, load_qr  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.caller_warnings import OutOfRangeWarning  # noqa: E402
from mistmodel.correlated_sides import mean_correlation  # noqa: E402
from mistmodel.estimators import CCA  # noqa: E402
from mistmodel.conditional_training import ConditionalTrainConfig, draw_step  # noqa: E402

DIMS = (2, 4, 8, 16, 32)
CORRELATIONS = (0.3, 0.5, 0.55, 0.6, 0.7, 0.9)
DEPENDENT = ["normal-dense-base", "normal-dense-halfcube", "normal-sparse-base",
             "normal-lvm-base", "normal-lvm-wiggly", "normal-2pair-base", "student-dense-base",
             "student-sparse-base", "student-2pair-asinh", "additive_noise-wiggly"]
INDEPENDENT = ["independent-normal-base", "independent-student-base",
               "independent-mixed-base", "independent-normal-asinh"]


def whitened(a: np.ndarray) -> np.ndarray:
    """``a``'s columns standardised and rotated to uncorrelated unit-variance components."""
    a = (a - a.mean(axis=0)) / a.std(axis=0)
    values, vectors = np.linalg.eigh(np.cov(a, rowvar=False))
    return a @ vectors / np.sqrt(values)


def warned(mist: MIST, pairs: list) -> tuple[np.ndarray, list[bool]]:
    """Estimates of ``pairs`` (or of triples, by a conditional network), one call each, and
    whether each raised the warning."""
    values, flags = [], []
    for parts in pairs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values.append(mist.estimate_conditional(*parts) if mist.is_conditional
                          else mist.estimate(*parts))
        flags.append(any(w.category is OutOfRangeWarning and "strongly correlated"
                         in str(w.message) for w in caught))
    return np.array(values), flags


CONDITIONAL_DIMS = (2, 4, 8, 16)
CONDITIONAL_SPECS = ["normal-chain", "normal-collider", "normal-confounded", "student-chain",
                     "student-collider", "student-confounded"]


def side_correlation(parts) -> float:
    """The larger mean absolute correlation of X's and Y's columns (0 for one column)."""
    return max(mean_correlation(a) if a.shape[1] > 1 else 0.0 for a in parts[:2])


def conditional(args) -> int:
    """The conditional network's tables (``--conditional``)."""
    cmi = MIST.load(args.checkpoint, variant="mist_cmi", cross_check=False)
    n = args.n[0]
    print(f"`python benchmarks/correlated_sides.py --conditional --reps {args.reps} --n {n}"
          f"{checkpoint_options(args)}`\n")
    print("| d + d | r | side correlation | I(X;Y\\|Z) | mist_cmi | CCA | warned |")
    print("|---|---|---|---|---|---|---|")
    for d in CONDITIONAL_DIMS:
        for r in CORRELATIONS:
            triples = []
            for seed in range(args.reps):
                s = mistgen.sample("normal-dense", n, d, d, seed, params={"off_diag": r})
                z = np.random.default_rng([seed, 2]).standard_normal((n, 2))
                triples.append((s.x, s.y, z))
            truth = s.mi
            point, flags = warned(cmi, triples)
            cca = np.mean([CCA().estimate_conditional(*t) for t in triples])
            side = np.mean([side_correlation(t) for t in triples])
            print(f"| {d} + {d} | {r} | {side:.2f} | {truth:.3f} | {np.mean(point):.3f} | "
                  f"{cca:.3f} | {sum(flags)}/{len(flags)} |", flush=True)
    # the conditional network's own training draws (the release config's recipe: its six
    # specs, n 50-1,000, 1-16 columns per group), batch by batch as training drew them
    cfg = ConditionalTrainConfig(out="unused", init="unused", specs=CONDITIONAL_SPECS,
                                 n_range=(50, 1000), dim_range=(1, 16))
    samples = [s for step in range(args.reps * 10) for s in draw_step(cfg, [0, 0, step])]
    triples = [(s.x, s.y, s.z) for s in samples]
    point, flags = warned(cmi, triples)
    flags = np.array(flags)
    err = point - np.array([s.cmi for s in samples])
    sides = np.array([side_correlation(t) for t in triples])
    on = (f"{np.abs(err[flags]).mean():.3f} (mean error {err[flags].mean():+.3f})"
          if flags.any() else "-")
    print("\n| its training draws | samples | largest side correlation | side correlation "
          ">= 0.55 | warned | mist_cmi MAE, warned | MAE, not warned |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {', '.join(CONDITIONAL_SPECS)}; n 50-1,000, 1-16 columns | {len(samples)} | "
          f"{sides.max():.2f} | {int((sides >= 0.55).sum())} | {int(flags.sum())} | {on} | "
          f"{np.abs(err[~flags]).mean():.3f} |")
    return 0


def main(argv=None) -> int:
    ap = arguments(__doc__)
    ap.add_argument("--conditional", action="store_true",
                    help="the conditional network's tables instead")
    ap.set_defaults(reps=3, n=[2000])
    args = ap.parse_args(argv)
    if args.conditional:
        return conditional(args)
    mist = MIST.load(args.checkpoint, cross_check=False)
    qr = load_qr(args, cross_check=False)
    ckpt = checkpoint_options(args)
    n = args.n[0]
    print(f"`python benchmarks/correlated_sides.py --reps {args.reps} --n {n}{ckpt}`\n")
    print("| d + d | r | side correlation | MI | MIST | MIST, sides whitened | MIST-QR median | "
          "QR 90% covers | CCA | warned |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d in DIMS:
        for r in CORRELATIONS:
            samples = [mistgen.sample("normal-dense", n, d, d, seed, params={"off_diag": r})
                       for seed in range(args.reps)]
            pairs = [(s.x, s.y) for s in samples]
            truth = samples[0].mi
            point, flags = warned(mist, pairs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                white = mist.estimate_batch([(whitened(x), whitened(y)) for x, y in pairs])
                median = qr.quantiles_batch(pairs, [0.5])[:, 0]
                iv = qr.interval_batch(pairs, level=0.9)
            side = np.mean([max(mean_correlation(x) if x.shape[1] > 1 else 0.0,
                                 mean_correlation(y) if y.shape[1] > 1 else 0.0)
                             for x, y in pairs])
            covered = np.mean((iv[:, 0] <= truth) & (truth <= iv[:, 1]))
            cca = np.mean([CCA().estimate(x, y) for x, y in pairs])
            print(f"| {d} + {d} | {r} | {side:.2f} | {truth:.3f} | {np.mean(point):.3f} | "
                  f"{np.mean(white):.3f} | {np.mean(median):.3f} | {covered:.0%} | "
                  f"{cca:.3f} | {sum(flags)}/{len(flags)} |", flush=True)
    print("\n| training families | samples | warned | MIST MAE, warned | MIST MAE, not |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for label, specs in (("dependent", DEPENDENT), ("independent", INDEPENDENT)):
        samples = []
        for spec in specs:
            for i in range(10 * args.reps):
                d = int(rng.choice([4, 8, 16, 32]))
                samples.append(mistgen.sample(spec, 500, d, d, 10_000 + i))
        point, flags = warned(mist, [(s.x, s.y) for s in samples])
        err = np.abs(point - np.array([s.mi for s in samples]))
        flags = np.array(flags)
        on = f"{err[flags].mean():.3f}" if flags.any() else "-"
        print(f"| {label} | {len(samples)} | {flags.sum()} | {on} | {err[~flags].mean():.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
