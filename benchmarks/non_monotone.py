"""Dependence that is not monotone: MIST against KSG where the truth is exact.

    python benchmarks/non_monotone.py [--reps 5] [--n 500 2000 10000] [--checkpoint PATH]
                                      [--qr-checkpoint PATH]

Mutual information is unchanged by any invertible map of Y, monotone or not. Each sample
is drawn with ``mistgen`` from ``normal-dense`` at fixed correlations (1 + 1 at rho 0.5,
0.8, 0.95; 4 + 4 at rho 0.5), so its MI is exact, untouched (``pieces = 1``) or through
``mistgen``'s ``fold`` (2 pieces) or ``saw`` (4) transform: every Y column has [-2, 2) cut
into that many equal intervals put in reverse order, so the relation between X and Y
folds into a saw-tooth and the MI stays. Prints, per (dims, rho, pieces, n), the mean
estimate of MIST, MIST-QR's median, KSG (k = 5), the share of MIST-QR's 90% intervals
that contain the truth and the share of samples on which MIST's cross-check against KSG
warns (``mistmodel.cross_check``), over ``--reps`` samples (seeds 0, 1, ...).

Then I(X;Y|Z): ``mistgen``'s conditional ``normal-collider`` and ``normal-confounded``
(1 + 1 + 1 columns, parameters from their priors, ``2 * --reps`` seeds per n), untouched
and with Y through ``fold``: the mean exact I(X;Y|Z), the mean estimates of the
conditional MIST (``mist_cmi``), KSG (Frenzel-Pompe) and CCA on the folded samples, and
the cross-check's warnings on the folded and on the untouched samples of I(X;Y|Z) at
least 0.1 nats.

Then how often the cross-check warns where MIST is not blind: X independent of Y (the
user checks' independence families, cycled) and dependent families of the user checks'
decile suite, at 1 + 1 to 4 + 4 columns (1 + 4 for independence) and n = 100 to 2,000
(100, 200, 500, 2,000):
``2 * --reps`` independent samples per cell, ``--reps // 2`` dependent ones per family
and cell (``--false-alarms 0`` skips it).
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
import user_checks as uc  # noqa: E402
from limitation_rows import arguments, command, load_qr, row  # noqa: E402
from mistgen.conditional import conditional_sample  # noqa: E402
from mistgen.transforms import TRANSFORMS  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.cross_check import first_miss  # noqa: E402
from mistmodel.estimators import CCA, KSG  # noqa: E402

CASES = [((1, 1), 0.5), ((1, 1), 0.8), ((1, 1), 0.95), ((4, 4), 0.5)]
PIECES = {1: "normal-dense", 2: "normal-dense-fold", 4: "normal-dense-saw"}


def main(argv=None) -> int:
    ap = arguments(__doc__)
    ap.add_argument("--false-alarms", type=int, default=1, help="0: skip the second table")
    args = ap.parse_args(argv)
    mist, qr, ksg = MIST.load(args.checkpoint), load_qr(args), KSG(k=5)
    print(command("non_monotone.py", args))
    print("| dims | rho | MI | pieces | n | MIST | MIST-QR median | QR 90% covers | KSG | "
          "cross-check warns |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (dx, dy), rho in CASES:
        for pieces, spec in PIECES.items():
            for n in args.n:
                samples = [mistgen.sample(spec, n, dx, dy, seed, params={"off_diag": rho})
                           for seed in range(args.reps)]
                truth = np.array([s.mi for s in samples])
                r = row([(s.x, s.y) for s in samples], truth, mist, qr, ksg)
                print(f"| {dx}+{dy} | {rho} | {truth[0]:.3f} | {pieces} | {n} | "
                      f"{r['mist']:.3f} | {r['median']:.3f} | {r['covered']:.0%} | "
                      f"{r['ksg']:.3f} | {r['warned']}/{len(samples)} |", flush=True)
    conditional(args.n, 2 * args.reps)
    if args.false_alarms:
        false_alarms(mist, 2 * args.reps)
    return 0


def conditional(sizes: list[int], reps: int) -> None:
    """I(X;Y|Z) of two conditional structures, untouched and with Y folded."""
    cmi = MIST.load(variant="mist_cmi", cross_check=False)
    fold = TRANSFORMS.get("fold")
    print("\n| I(X;Y\\|Z), 1+1+1 | n | mean truth | mist_cmi untouched / folded | KSG / CCA, "
          "folded | cross-check warns, truth >= 0.1: folded / untouched |")
    print("|---|---|---|---|---|---|")
    for spec in ("normal-collider", "normal-confounded"):
        for n in sizes:
            samples = [conditional_sample(spec, n=n, dim_x=1, dim_y=1, dim_z=1, seed=seed)
                       for seed in range(reps)]
            truth = np.array([c.cmi for c in samples])
            plain = [(c.x, c.y, c.z) for c in samples]
            folded = [(c.x, fold.forward(c.y, "y"), c.z) for c in samples]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est, est_fold = cmi.estimate_conditional_batch(plain), \
                    cmi.estimate_conditional_batch(folded)
                ksg = [KSG(k=5).estimate_conditional(*t) for t in folded]
                cca = [CCA().estimate_conditional(*t) for t in folded]
            strong = truth >= 0.1
            warned = [sum(first_miss([t], [v]) is not None
                          for t, v, keep in zip(triples, values, strong) if keep)
                      for triples, values in ((folded, est_fold), (plain, est))]
            print(f"| {spec} | {n} | {truth.mean():.3f} | {np.mean(est):.3f} / "
                  f"{np.mean(est_fold):.3f} | {np.mean(ksg):.3f} / {np.mean(cca):.3f} | "
                  f"{warned[0]} / {warned[1]} of {int(strong.sum())} |", flush=True)


def false_alarms(mist: MIST, reps: int) -> None:
    """Warnings of the cross-check on samples whose dependence MIST can see."""
    dims = [(1, 1), (2, 2), (4, 4), (1, 4)]
    suites = {"independent (mixed marginals)": [
        uc.draw(17, "independence", uc.INDEPENDENT_SPECS[r % len(uc.INDEPENDENT_SPECS)],
                n, dx, dy, r) for dx, dy in dims for n in (100, 200, 500, 2000) for r in range(reps)]}
    suites["dependent (decile suite families)"] = [
        uc.draw(17, "decile", spec, n, dx, dy, r, priors=priors)
        for _, spec, priors in uc.DECILE_CASES for dx, dy in dims[:3] for n in (100, 200, 500, 2000)
        for r in range(max(1, reps // 4))]   # reps // 4 = --reps // 2
    print("\n| samples MIST can see | samples | cross-check warns | largest KSG - MIST |")
    print("|---|---|---|---|")
    for label, samples in suites.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = mist.estimate_batch([(s.x, s.y) for s in samples])
        misses = [first_miss([(s.x, s.y)], [v]) for s, v in zip(samples, values)]
        gaps = [KSG(k=5).estimate(s.x, s.y) - v for s, v in zip(samples, values)]
        print(f"| {label} | {len(samples)} | {sum(m is not None for m in misses)} | "
              f"{max(gaps):+.3f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
