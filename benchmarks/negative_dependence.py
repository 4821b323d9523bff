"""Negative dependence: MIST with and without its column orientation, where the truth is exact.

    python benchmarks/negative_dependence.py [--reps 5] [--n 100 500 2000 10000]
                                             [--checkpoint PATH] [--qr-checkpoint PATH]

MI is unchanged when a column changes sign. Each dependent sample is drawn with ``mistgen``
untouched and through its ``negate`` transform (Y's first, third, ... columns negated, so
the dependence turns negative on them; all of a 1 + 1 sample's): normal-dense 1 + 1 at
rho 0.3 / 0.6 / 0.9 and 4 + 4 at rho 0.3, student-dense 2 + 2 and normal-sparse 8 + 8 (one
fixed draw of their priors' parameters). Per (case, sign, n): the mean estimate of MIST
without orientation (``orient=False``), of MIST and of MIST-QR's median (both oriented, the
default), the share of MIST-QR's 90% intervals that contain the truth and KSG (k = 5),
over ``--reps`` samples (seeds 0, 1, ...).

Then what the orientation costs at independence: the user checks' independence families
(cycled), 1 + 1 to 32 + 32, ``4 * --reps`` samples per (dims, n): the mean estimate of
MIST and the share of MIST-QR's 90% intervals containing 0, without and with the
orientation, and the share of samples whose columns it flips
(:func:`mistmodel.orientation.orientation_signs`).

Last, without the network, how often the orientation turns independent samples:
``--flip-samples`` (300) per cell of ``independent-normal`` (sides correlated within, up
to 0.9, from its prior) and ``independent-student``, d 1, 4, 16, 32 per side, n 20, 100,
500, 3,000 (``--flip-samples 0`` skips it).
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
import mistgen.families.checks  # noqa: E402,F401  (registers the independence families)
import user_checks as uc  # noqa: E402
from limitation_rows import arguments, command, load_qr, row  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.copula import normal_scores  # noqa: E402
from mistmodel.estimators import KSG  # noqa: E402
from mistmodel.orientation import orientation_signs  # noqa: E402

# (label, spec, dims, fixed parameters)
CASES = [
    ("normal 1+1, rho 0.3", "normal-dense", (1, 1), {"off_diag": 0.3}),
    ("normal 1+1, rho 0.6", "normal-dense", (1, 1), {"off_diag": 0.6}),
    ("normal 1+1, rho 0.9", "normal-dense", (1, 1), {"off_diag": 0.9}),
    ("normal 4+4, rho 0.3", "normal-dense", (4, 4), {"off_diag": 0.3}),
    ("student-dense 2+2", "student-dense", (2, 2), None),
    ("normal-sparse 8+8", "normal-sparse", (8, 8), None),
]
INDEPENDENCE_DIMS = [(1, 1), (4, 4), (16, 16), (32, 32)]
INDEPENDENCE_N = [100, 500, 2000]


def main(argv=None) -> int:
    ap = arguments(__doc__)
    ap.set_defaults(n=[100, 500, 2000, 10000])
    ap.add_argument("--flip-samples", type=int, default=300,
                    help="independent samples per cell of the last table (0: skip it)")
    args = ap.parse_args(argv)
    mist, qr, ksg = MIST.load(args.checkpoint), load_qr(args), KSG(k=5)
    plain = MIST.load(args.checkpoint, orient=False)
    print(command("negative_dependence.py", args))
    print("| case | MI | sign | n | MIST, not oriented | MIST | MIST-QR median | "
          "QR 90% covers | KSG |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, spec, (dx, dy), params in CASES:
        base = mistgen.sample(spec, 100, dx, dy, 0, params=params).params
        for sign, suffix in (("+", ""), ("-", "-negate")):
            for n in args.n:
                samples = [mistgen.sample(spec + suffix, n, dx, dy, seed, params=base)
                           for seed in range(args.reps)]
                pairs = [(s.x, s.y) for s in samples]
                truth = np.array([s.mi for s in samples])
                r = row(pairs, truth, mist, qr, ksg)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    before = float(np.mean(plain.estimate_batch(pairs)))
                print(f"| {label} | {truth[0]:.3f} | {sign} | {n} | {before:.3f} | "
                      f"{r['mist']:.3f} | {r['median']:.3f} | {r['covered']:.0%} | "
                      f"{r['ksg']:.3f} |", flush=True)
    independence(args, mist, plain, 4 * args.reps)
    if args.flip_samples:
        flip_rates(args.flip_samples)
    return 0


def flip_rates(samples: int) -> None:
    """The share of independent samples the orientation turns, per (family, dims, n)."""
    print("\n| independent X, Y | d per side | n = 20 | n = 100 | n = 500 | n = 3,000 |")
    print("|---|---|---|---|---|---|")
    shares = []
    for spec in ("independent-normal", "independent-student"):
        for d in (1, 4, 16, 32):
            cells = []
            for n in (20, 100, 500, 3000):
                if n <= 2 * d + 2:
                    cells.append("-")
                    continue
                flipped = sum(orientation_signs(normal_scores(s.x), normal_scores(s.y))
                              is not None for s in (mistgen.sample(spec, n, d, d, seed)
                                                    for seed in range(samples)))
                shares.append(flipped / samples)
                cells.append(f"{flipped / samples:.1%}")
            print(f"| {spec} | {d} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nmean over the cells: {np.mean(shares):.2%}")


def independence(args, mist: MIST, plain: MIST, reps: int) -> None:
    """The orientation's cost at independence."""
    qr, qr_plain = load_qr(args), load_qr(args, orient=False)
    print("\n| independent X, Y | n | MIST not oriented / oriented | MIST-QR contains 0, "
          "not oriented / oriented | flipped |")
    print("|---|---|---|---|---|")
    for dx, dy in INDEPENDENCE_DIMS:
        for n in INDEPENDENCE_N:
            samples = [uc.draw(17, "independence", uc.INDEPENDENT_SPECS[r % len(
                uc.INDEPENDENT_SPECS)], n, dx, dy, r) for r in range(reps)]
            pairs = [(s.x, s.y) for s in samples]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                means = [float(np.mean(m.estimate_batch(pairs))) for m in (plain, mist)]
                zero = [float(np.mean(m.interval_batch(pairs, level=0.9)[:, 0] <= 0))
                        for m in (qr_plain, qr)]
            flipped = sum(orientation_signs(normal_scores(x), normal_scores(y)) is not None
                          for x, y in pairs)
            print(f"| {dx}+{dy} | {n} | {means[0]:.4f} / {means[1]:.4f} | "
                  f"{zero[0]:.0%} / {zero[1]:.0%} | {flipped} of {reps} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
