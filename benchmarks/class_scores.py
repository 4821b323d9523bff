"""I(X; class) by KSG: the mixed rule on class codes against KSG on dithered codes.

    python benchmarks/class_scores.py [--samples 10]

X ~ N(0, 1); the class is X + s N(0, 1) cut at the quantiles of its law into K equally
likely classes (s = 0: the class is a function of X). The exact I(X; class) comes from
quadrature over x. For K = 3, 6, 10, 15, s = 0 and 0.5 and n = 50, 200 and 1,000 it prints
the mean error and mean absolute error over ``--samples`` samples (numpy seeds 0, 1, ...)
of ``KSG(discrete="auto")`` on the codes (the mixed-KSG estimator) and of ``KSG()`` on
the codes plus uniform noise on [0, 1) (the dither ``mutual_info_scores`` gives
estimators without a mixed rule), with the rows per class and how many of the mixed rule's
estimates raised a ``DiscreteBiasWarning`` (fewer than 4 rows per class).
``mutual_info_scores(..., discrete_target=True)`` uses the first by default.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mistmodel.caller_warnings import DiscreteBiasWarning  # noqa: E402
from mistmodel.estimators import KSG  # noqa: E402


def exact(classes: int, noise: float) -> float:
    """I(X; class) in nats by quadrature over x."""
    sd = np.hypot(1.0, noise)
    cuts = stats.norm.ppf(np.linspace(0, 1, classes + 1), scale=sd)
    xs = np.linspace(-9, 9, 18001)
    if noise == 0:
        return float(np.log(classes))
    p = np.diff(stats.norm.cdf((cuts[None, :] - xs[:, None]) / noise), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return float(np.log(classes) - np.trapezoid(h * stats.norm.pdf(xs), xs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")              # KSG() on codes would warn of ties
    print(f"`python benchmarks/class_scores.py --samples {args.samples}`\n")
    print("| classes | s | n | rows per class | MI | mixed: mean error, MAE | dithered: mean "
          "error, MAE | mixed: warnings |")
    print("|---|---|---|---|---|---|---|---|")
    for noise in (0.0, 0.5):
        for classes in (3, 6, 10, 15):
            truth = exact(classes, noise)
            cuts = stats.norm.ppf(np.linspace(0, 1, classes + 1)[1:-1], scale=np.hypot(1, noise))
            for n in (50, 200, 1000):
                errors: dict[str, list[float]] = {"mixed": [], "dithered": []}
                warned = 0
                for seed in range(args.samples):
                    rng = np.random.default_rng(seed)
                    x = rng.standard_normal((n, 1))
                    codes = np.digitize(x[:, 0] + noise * rng.standard_normal(n), cuts)
                    codes = codes.astype(np.float64).reshape(-1, 1)
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", DiscreteBiasWarning)
                        errors["mixed"].append(KSG(discrete="auto").estimate(x, codes) - truth)
                    warned += any(w.category is DiscreteBiasWarning for w in caught)
                    errors["dithered"].append(
                        KSG().estimate(x, codes + rng.random((n, 1))) - truth)
                cells = [f"{np.mean(e):+.3f}, {np.mean(np.abs(e)):.3f}" for e in errors.values()]
                print(f"| {classes} | {noise:g} | {n} | {n / classes:.0f} | {truth:.3f} | "
                      f"{cells[0]} | {cells[1]} | {warned} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
