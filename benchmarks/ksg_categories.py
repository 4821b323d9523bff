"""KSG on a discrete column beside a continuous one: its values as categories or as numbers.

    python benchmarks/ksg_categories.py [--samples 10] [--sparse-only]

Two families with exact MI by quadrature, each at a few sample sizes:

* a Gaussian X rounded to a step (0.5 or 0.1), Y = rho X + sqrt(1 - rho^2) N(0, 1):
  I(rounded X; Y) from the law of Y given each rounded value;
* K labels equally likely, Y | label j ~ N(slope j, 1) (slope 0: independent).

For each it prints the number of distinct values, whether ``discrete_columns`` takes the
column as discrete, and the mean error, its standard deviation and the mean absolute error
over ``--samples`` samples (numpy seeds 0, 1, ...) of ``KSG(discrete="auto")`` (the
discrete column as categories), ``KSG(discrete=True)`` (as numbers: Gao et al.'s rule;
Y has no ties, so this is the rule on the discrete column alone) and ``KSG()`` (every
column continuous, ties broken by noise).

Then samples whose discrete columns split the rows into many groups of equal values
(neighbours are searched within a group): X on K labels against Y = (K more labels, a
column N(slope X, 1)), where Y's label is X's with probability ``keep`` and otherwise
uniform (exact MI by quadrature over the normal column), X = (K labels, a normal column)
against Y = (K labels kept or not the same way, or 2 independent labels, a normal column
correlated rho), I(X; Y | Z) for X, Y on K labels given a normal Z (no
dependence), and I(X; Y | Z) for Gaussian X, Y given Z on 19 labels (X = 3 Z / 19 + e,
Y = 3 Z / 19 + rho e + sqrt(1 - rho^2) e', rho 0 and 0.6). For each: the mean error of ``KSG(discrete="auto")`` and of ``KSG()``, the
rows per group and how many estimates raised a ``DiscreteBiasWarning``.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import integrate, stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mistmodel.caller_warnings import DiscreteBiasWarning  # noqa: E402
from mistmodel.estimators import KSG  # noqa: E402
from mistmodel.estimators.ksg import discrete_columns  # noqa: E402

ESTIMATORS = {"categories": dict(discrete="auto"), "numbers": dict(discrete=True),
              "noise": dict(discrete=False)}


def rounded_truth(rho: float, step: float) -> float:
    """I(round(X / step) step; Y): h(Y) - sum_b p_b h(Y | b), Y | b a mixture over the bin."""
    edges = np.arange(-9.0, 9.0 + step, step) - step / 2.0
    xs = np.linspace(edges[0], edges[-1], 36001)[1:-1]
    bins = np.digitize(xs, edges) - 1
    weights = stats.norm.pdf(xs) * (xs[1] - xs[0])
    ys = np.linspace(-10.0, 10.0, 4001)
    sd = np.sqrt(1.0 - rho**2)
    per_bin = np.zeros((len(edges) - 1, ys.size))
    for lo in range(0, ys.size, 400):
        dens = stats.norm.pdf(ys[None, lo:lo + 400], rho * xs[:, None], sd) * weights[:, None]
        np.add.at(per_bin[:, lo:lo + 400], bins, dens)
    p_bin = per_bin.sum(axis=1, keepdims=True) * (ys[1] - ys[0])
    p_y = per_bin.sum(axis=0)
    inside = per_bin > 1e-300
    ratio = np.where(inside, per_bin, 1.0) / (p_bin * p_y[None, :] + (~inside))
    return float(np.sum(np.where(inside, per_bin * np.log(ratio), 0.0)) * (ys[1] - ys[0]))


def labels_truth(means: np.ndarray) -> float:
    """I(label; Y) for equally likely labels and Y | j ~ N(means[j], 1): h(Y) - h(N(0, 1))."""
    def minus_p_log_p(t: float) -> float:
        p = float(np.mean(stats.norm.pdf(t, means)))
        return -p * np.log(p) if p > 0.0 else 0.0

    h, _ = integrate.quad(minus_p_log_p, means.min() - 40.0, means.max() + 40.0, limit=500)
    return h - 0.5 * np.log(2.0 * np.pi * np.e)


def rounded(rho: float, step: float, n: int, rng: np.random.Generator):
    z = rng.standard_normal((n, 2))
    x = z[:, :1]
    return np.round(x / step) * step, rho * x + np.sqrt(1.0 - rho**2) * z[:, 1:]


def labelled(classes: int, slope: float, n: int, rng: np.random.Generator):
    labels = rng.integers(0, classes, n)
    return labels[:, None] * 1.0, (slope * labels + rng.standard_normal(n))[:, None]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--sparse-only", action="store_true",
                    help="print only the table of samples with many groups of equal values")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")          # KSG() warns about every discrete sample
    if args.sparse_only:
        print(f"`python benchmarks/ksg_categories.py --samples {args.samples} --sparse-only`")
        sparse_groups(args.samples)
        return 0
    cases = []
    for step in (0.5, 0.1):
        for rho in (0.0, 0.5, 0.9):
            truth = rounded_truth(rho, step)
            for n in (500, 2000):
                cases.append((f"Gaussian rounded to {step}, rho {rho}", n, truth,
                              lambda rng, rho=rho, step=step, n=n: rounded(rho, step, n, rng)))
    for classes, slope in ((15, 0.0), (15, 0.3), (4, 0.0), (4, 1.0)):
        truth = labels_truth(slope * np.arange(classes)) if slope else 0.0
        for n in (100, 300, 2000):
            cases.append((f"{classes} labels, Y given label N({slope} label, 1)", n, truth,
                          lambda rng, c=classes, s=slope, n=n: labelled(c, s, n, rng)))
    print(f"`python benchmarks/ksg_categories.py --samples {args.samples}`\n")
    print("| case | n | values (discrete?) | MI | " +
          " | ".join(f"{name}: mean error (sd), MAE" for name in ESTIMATORS) + " |")
    print("|---|---|---|---|" + "---|" * len(ESTIMATORS))
    for label, n, truth, draw in cases:
        samples = [draw(np.random.default_rng(seed)) for seed in range(args.samples)]
        x0 = samples[0][0]
        cells = []
        for settings in ESTIMATORS.values():
            err = np.array([KSG(**settings).estimate(x, y) for x, y in samples]) - truth
            cells.append(f"{err.mean():+.3f} ({err.std():.3f}), {np.abs(err).mean():.3f}")
        flag = "yes" if discrete_columns(x0)[0] else "no"
        print(f"| {label} | {n} | {len(np.unique(x0))} ({flag}) | {truth:.3f} | "
              + " | ".join(cells) + " |", flush=True)
    sparse_groups(args.samples)
    return 0


def _two_sides(labels: int, slope: float, keep: float = 0.0):
    """X on ``labels`` labels; Y = (as many labels, N(slope X, 1)), Y's label X's with
    probability ``keep`` and otherwise uniform."""
    def draw(rng: np.random.Generator, n: int):
        code = rng.integers(0, labels, n)
        other, normal = rng.integers(0, labels, n), slope * code + rng.standard_normal(n)
        if keep:
            other = np.where(rng.random(n) < keep, code, other)
        return code[:, None] * 1.0, np.column_stack([other, normal])
    return draw


def two_sides_truth(labels: int, slope: float, keep: float) -> float:
    """I(X; Y) of :func:`_two_sides`: H(X) - H(X | Y's label, Y's normal column), the
    latter by quadrature over the normal column."""
    if not keep:
        return labels_truth(slope * np.arange(labels)) if slope else 0.0
    table = np.full((labels, labels), (1.0 - keep) / labels)
    table[np.diag_indices(labels)] += keep
    c = np.linspace(-10.0, slope * (labels - 1) + 10.0, 40001)
    joint = (table / labels)[:, :, None] * stats.norm.pdf(
        c[None, None, :] - slope * np.arange(labels)[:, None, None])   # p(x, label, c)
    posterior = joint / joint.sum(axis=0, keepdims=True)
    return float(np.log(labels) + np.sum(joint * np.log(posterior)) * (c[1] - c[0]))


def _both_mixed(labels: int, keep: float, rho: float, labels_y: int | None = None):
    """X = (a label, a normal column), Y = (a label, a normal column): Y's label X's with
    probability ``keep``, else uniform on ``labels_y`` (default ``labels``) values; the
    normal columns correlated ``rho``."""
    def draw(rng: np.random.Generator, n: int):
        code, e = rng.integers(0, labels, n), rng.standard_normal((n, 2))
        other = np.where(rng.random(n) < keep, code, rng.integers(0, labels_y or labels, n))
        return (np.column_stack([code, e[:, 0]]),
                np.column_stack([other, rho * e[:, 0] + np.sqrt(1.0 - rho**2) * e[:, 1]]))
    return draw


def both_mixed_truth(labels: int, keep: float, rho: float) -> float:
    """I(X; Y) of :func:`_both_mixed`: the labels' channel plus the normal columns'."""
    row = np.full(labels, (1.0 - keep) / labels)
    row[0] += keep
    return float(np.log(labels) + np.sum(row * np.log(row)) - 0.5 * np.log(1.0 - rho**2))


def _labels_given_normal(labels: int):
    """X, Y on ``labels`` labels each, Z normal, all independent."""
    def draw(rng: np.random.Generator, n: int):
        return (rng.integers(0, labels, (n, 1)) * 1.0, rng.integers(0, labels, (n, 1)) * 1.0,
                rng.standard_normal((n, 1)))
    return draw


def _normals_given_labels(labels: int, rho: float):
    """Z on ``labels`` labels; X = 3 Z / labels + e, Y = 3 Z / labels + rho e + sqrt(1 -
    rho^2) e' (I(X; Y | Z) = -log(1 - rho^2) / 2)."""
    def draw(rng: np.random.Generator, n: int):
        z = rng.integers(0, labels, (n, 1)) * 1.0
        e = rng.standard_normal((n, 2))
        shift = 3.0 * z / labels
        return (shift + e[:, :1], shift + rho * e[:, :1] + np.sqrt(1 - rho**2) * e[:, 1:], z)
    return draw


def sparse_groups(samples: int) -> None:
    print("\n| sample | n | MI | rows per group | discrete='auto': mean error (sd) | "
          "KSG(): mean error (sd) | warnings |")
    print("|---|---|---|---|---|---|---|")
    wide = (100, 300, 1000)
    cases = [(f"X on {k} labels, Y = ({k} labels, N(0 X, 1))", _two_sides(k, 0.0), 0.0, wide)
             for k in (3, 6, 9, 12)]
    cases += [(f"I(X;Y given Z), X, Y on {k} labels, Z normal", _labels_given_normal(k), 0.0,
               wide) for k in (3, 6, 9, 12)]
    cases += [(f"X on {k} labels, Y = ({k} labels, N({b} X, 1))", _two_sides(k, b),
               labels_truth(b * np.arange(k)), wide) for k, b in ((6, 0.5), (9, 0.3), (12, 1.0))]
    cases += [(f"X on {k} labels, Y = ({k} labels, X's kept {q}, N({b} X, 1))",
               _two_sides(k, b, q), two_sides_truth(k, b, q), wide)
              for k, q, b in ((6, 0.9, 0.0), (9, 0.6, 0.0), (12, 0.9, 0.0), (9, 0.6, 1.0),
                              (12, 0.9, 0.3))]
    cases += [(f"X = ({k} labels, a normal column), Y = ({k} labels, X's kept {q}, a normal "
               f"column, rho {r})", _both_mixed(k, q, r), both_mixed_truth(k, q, r), wide)
              for k, q, r in ((9, 0.0, 0.0), (9, 0.0, 0.8), (12, 0.6, 0.8), (6, 0.9, 0.5))]
    cases += [(f"X = ({k} labels, a normal column), Y = (2 labels, a normal column, rho 0.8)",
               _both_mixed(k, 0.0, 0.8, 2), both_mixed_truth(k, 0.0, 0.8), wide) for k in (9, 15)]
    cases += [(f"I(X;Y given Z), X, Y normal, Z on 19 labels, rho {r}",
               _normals_given_labels(19, r), -0.5 * np.log(1 - r**2), (60, 300, 1000))
              for r in (0.0, 0.6)]
    for label, draw, truth, sizes in cases:
        for n in sizes:
            errors, plain, per_group, warned = [], [], [], 0
            for seed in range(samples):
                args = draw(np.random.default_rng([seed, n]), n)
                conditional = len(args) == 3
                est, other = KSG(discrete="auto"), KSG()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", DiscreteBiasWarning)
                    errors.append((est.estimate_conditional(*args) if conditional
                                   else est.estimate(*args)) - truth)
                warned += any(w.category is DiscreteBiasWarning for w in caught)
                per_group.append(n / est.last_info["discrete_strata"])
                plain.append((other.estimate_conditional(*args) if conditional
                              else other.estimate(*args)) - truth)
            print(f"| {label} | {n} | {truth:.3f} | {np.mean(per_group):.1f} | "
                  f"{np.mean(errors):+.3f} ({np.std(errors):.3f}) | {np.mean(plain):+.3f} "
                  f"({np.std(plain):.3f}) | {warned} |", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
