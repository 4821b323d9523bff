"""MI near and above the training range: where MIST saturates, and whether it says so.

    python benchmarks/high_mi.py [--reps 3] [--n 2000] [--checkpoint PATH]
                                 [--qr-checkpoint PATH]

d independent Gaussian pairs (X_j, Y_j) of one correlation (drawn as in
``strong_gaussian.py``), chosen so that the MI, -d log(1 - rho^2) / 2, is a multiple
(``SCALES``) of MIST's ceiling at width d: the largest MI of its training samples with at
most d columns on the narrower side (the card's ``mi_ceiling``); at most ``PER_PAIR``
nats a pair.  For each d, MI and n it prints, over ``--reps`` samples, the mean estimate
of MIST, MIST-QR's median and the share of its 90% intervals that contain the MI, KSG
(k = 5), and on how many samples MIST and MIST-QR raised an ``OutOfRangeWarning``.

``--deciles COUNT`` adds the false alarms' side: on the first COUNT samples of the user
checks' decile suite (``user_checks.py``, section 4, seed ``--seed``: d 1-8 a side, n
500-2,000, MI from 0 to about 10 nats), how many samples each network warned on, and the
mean absolute error (nats) of the warned samples and of the others.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from limitation_rows import arguments, command, load_qr, row  # noqa: E402
from strong_gaussian import pairs  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.mist import OutOfRangeWarning  # noqa: E402
from mistmodel.estimators import KSG  # noqa: E402

DIMS = (1, 2, 4, 8, 16, 32)
SCALES = (0.5, 0.8, 1.2, 2.0, 4.0)
PER_PAIR = 5.0   # nats a pair at most (rho^2 = 1 - e^-10): the draws stay well conditioned


def range_warned(estimate, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether ``estimate(x, y)`` raises an :class:`OutOfRangeWarning`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimate(x, y)
    return any(issubclass(w.category, OutOfRangeWarning) for w in caught)


def main(argv=None) -> int:
    ap = arguments(__doc__)
    ap.set_defaults(reps=3, n=[2000])
    ap.add_argument("--deciles", type=int, default=0,
                    help="also count warnings on this many samples of the user checks' "
                         "decile suite (0: not)")
    ap.add_argument("--seed", type=int, default=17, help="the decile suite's seed")
    args = ap.parse_args(argv)
    mist = MIST.load(args.checkpoint, cross_check=False)
    qr, ksg = load_qr(args, cross_check=False), KSG(k=5)
    ceiling = mist.mi_ceiling
    if not ceiling:
        raise SystemExit("this MIST checkpoint's card has no mi_ceiling")
    print(command("high_mi.py", args))
    print("| d + d | ceiling | MI | n | MIST | MIST-QR median | QR 90% covers | KSG | "
          "MIST warns | QR warns |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d in DIMS:
        top = ceiling[min(max(d, min(ceiling)), max(ceiling))]
        for scale in SCALES:
            target = scale * top
            if target / d > PER_PAIR:
                continue
            rho = float(np.sqrt(1.0 - np.exp(-2.0 * target / d)))
            for n in args.n:
                drawn = [pairs(rho, n, d, seed) for seed in range(args.reps)]
                truth = drawn[0][2]
                samples = [(x, y) for x, y, _ in drawn]
                r = row(samples, truth, mist, qr, ksg)
                warned = [sum(range_warned(f, x, y) for x, y in samples)
                          for f in (mist.estimate, lambda x, y: qr.quantiles(x, y, [0.5]))]
                print(f"| {d} + {d} | {top:.2f} | {truth:.2f} | {n:,} | {r['mist']:.2f} | "
                      f"{r['median']:.2f} | {r['covered']:.0%} | {r['ksg']:.2f} | "
                      f"{warned[0]}/{len(samples)} | {warned[1]}/{len(samples)} |", flush=True)
    if args.deciles:
        print(decile_alarms(mist, qr, args.deciles, args.seed))
    return 0


def decile_alarms(mist, qr, count: int, seed: int) -> str:
    """The table of ``--deciles``: warned samples and their errors, per network."""
    import user_checks as uc

    samples = [uc.decile_sample(seed, i) for i in range(count)]
    lines = [f"\nThe user checks' decile suite (seed {seed}, {count} samples, MI "
             f"{min(s.mi for s in samples):.2f}-{max(s.mi for s in samples):.2f} nats):\n",
             "| network | warned | MI of the warned | abs. error, warned | abs. error, others |",
             "|---|---|---|---|---|"]
    for name, estimate in (("MIST", mist.estimate),
                           ("MIST-QR", lambda x, y: float(qr.quantiles(x, y, [0.5])[0]))):
        warned, error = [], []
        for s in samples:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = estimate(s.x, s.y)
            warned.append(any(issubclass(w.category, OutOfRangeWarning)
                              and "largest MI" in str(w.message) for w in caught))
            error.append(abs(value - s.mi))
        warned, error = np.array(warned), np.array(error)
        mi = np.array([s.mi for s in samples])[warned]
        span = f"{mi.min():.2f}-{mi.max():.2f}" if warned.any() else "-"
        mean = (lambda a: f"{a.mean():.3f}" if a.size else "-")
        lines.append(f"| {name} | {warned.sum()}/{count} | {span} | {mean(error[warned])} | "
                     f"{mean(error[~warned])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
