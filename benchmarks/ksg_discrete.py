"""KSG on discrete columns: algorithm 1 with tie-breaking noise against the mixed rule.

    python benchmarks/ksg_discrete.py [--samples 100] [--seed 0] [--conditional-only]
                                      [--channels-only]

Draws ``--samples`` samples of each discrete check family of ``mistgen`` (exact MI) at
n = 100, 300 and 2,000 and prints, for ``KSG()`` (ties broken by noise, every column taken
as continuous), ``KSG(discrete="auto")`` (the mixed-KSG estimator of Gao et al. 2017, the
values as categories) and ``KSG(discrete=True)`` (the same rule, the values as numbers),
the mean error, its standard deviation and the mean absolute error; then how many of the
mixed rule's estimates raised a ``DiscreteBiasWarning``, with the mean rows per observed
joint cell (categories) and the mean Miller-Madow bias estimate
(``last_info["plugin_bias"]``, numbers); then, on the first sample of each row, the range
of ``KSG()`` over 20 seeds of its noise (the mixed rule uses none on discrete columns).

Then I(X; Y | Z) of random tables (cells Dirichlet(1), or p(z) p(x|z) p(y|z) with each
factor Dirichlet(1), so that X and Y are independent given Z; exact CMI from the table; 20
tables per row, one sample each): the mean rows per observed joint cell, and for
``KSG(discrete="auto")`` and ``KSG(discrete=True)`` the mean error and how many estimates
warned (for the numbers, with the mean Miller-Madow bias estimate).

Then K-ary symmetric channels, whose tables are unequal: X uniform on K values, Y = X with
probability ``keep`` and otherwise uniform (exact MI from the table; 30 samples per row):
the mean rows per observed joint cell, the mean share of rows alone in their cell
(``last_info["rows_alone_in_cell"] / n``), and for ``KSG(discrete="auto")`` and
``KSG(discrete=True)`` the mean error and how many estimates warned (a
``DiscreteBiasWarning``, or for the columns "auto" takes as continuous, with too many
values for their rows, a ``TiedDataWarning``).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mistgen  # noqa: E402
from mistmodel.caller_warnings import DiscreteBiasWarning, TiedDataWarning  # noqa: E402
from mistmodel.estimators import KSG  # noqa: E402

# (label, family, fixed parameters, prior overrides)
CASES = [("binary symmetric channel, flip 0.35", "discrete-bsc", {"flip": 0.35}, None),
         ("binary symmetric channel, flip 0.1", "discrete-bsc", {"flip": 0.1}, None),
         ("Y = X uniform on 4 values", "discrete-copy", {"k": 4}, None),
         ("Y = X uniform on 15 values", "discrete-copy", {"k": 15}, None),
         ("random 2-6 x 2-6 table", "discrete-table", None, None),
         ("random 7-10 x 7-10 table", "discrete-table", None,
          {"discrete-table": {"k_x": [7, 10], "k_y": [7, 10]}}),
         ("random 12-16 x 12-16 table", "discrete-table", None,
          {"discrete-table": {"k_x": [12, 16], "k_y": [12, 16]}})]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--conditional-only", action="store_true",
                    help="print only the table of I(X; Y | Z)")
    ap.add_argument("--channels-only", action="store_true",
                    help="print only the table of K-ary symmetric channels")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")          # KSG() warns about every discrete sample
    warnings.simplefilter("always", DiscreteBiasWarning)
    only = " --conditional-only" if args.conditional_only else (
        " --channels-only" if args.channels_only else "")
    samples = "" if only else f" --samples {args.samples}"   # the other tables' are fixed
    print(f"`python benchmarks/ksg_discrete.py{samples} --seed {args.seed}{only}`\n")
    if args.conditional_only:
        conditional(args.seed)
        return 0
    if args.channels_only:
        channels(args.seed)
        return 0
    print("| case | n | KSG(): mean error (sd), MAE | discrete='auto' (categories) | "
          "discrete=True (numbers) | warnings, categories (rows per cell) | warnings, numbers "
          "(bias estimate) | KSG() over 20 noise seeds, first sample |")
    print("|---|---|---|---|---|---|---|---|")
    for label, family, params, priors in CASES:
        for n in (100, 300, 2000):
            samples = [mistgen.sample(f"{family}-base", n, 1, 1,
                                      args.seed * 1_000_000 + 1000 * n + r, params=params,
                                      priors=priors)
                       for r in range(args.samples)]
            cells, warnings_cells = [], []
            for est in (KSG(), KSG(discrete="auto"), KSG(discrete=True)):
                err, warned, detail = [], 0, []
                for s in samples:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", DiscreteBiasWarning)
                        err.append(est.estimate(s.x, s.y) - s.mi)
                    warned += any(w.category is DiscreteBiasWarning for w in caught)
                    table = est.last_info.get("discrete_cells")
                    if est.discrete == "auto" and table:
                        detail.append(table["n"] / table["xy"])
                    elif est.discrete and table:
                        detail.append(est.last_info["plugin_bias"])
                err = np.array(err)
                cells.append(f"{err.mean():+.3f} ({err.std(ddof=1):.3f}), "
                             f"{np.abs(err).mean():.3f}")
                if est.discrete:
                    form = "+.3f" if est.discrete is True else ".1f"
                    warnings_cells.append(f"{warned} ({np.mean(detail):{form}})"
                                          if detail else f"{warned}")
            cells += warnings_cells
            first = samples[0]
            noise = [KSG(seed=k).estimate(first.x, first.y) - first.mi for k in range(20)]
            print(f"| {label} | {n} | " + " | ".join(cells) +
                  f" | {min(noise):+.3f} to {max(noise):+.3f} |", flush=True)
    conditional(args.seed)
    channels(args.seed)
    return 0


def table_cmi(p: np.ndarray) -> float:
    """Exact I(X; Y | Z) of a joint table p[x, y, z]."""
    pz, pxz, pyz = p.sum((0, 1)), p.sum(1), p.sum(0)
    cells = p > 0
    ratio = p * pz[None, None, :] / (pxz[:, None, :] * pyz[None, :, :])
    return float(np.sum(p[cells] * np.log(ratio[cells])))


def random_table(rng: np.random.Generator, shape: tuple[int, int, int],
                 independent: bool) -> np.ndarray:
    """A joint table p[x, y, z]: cells Dirichlet(1), or, ``independent``, p(z) p(x|z) p(y|z)
    with each factor Dirichlet(1) (so that I(X;Y|Z) = 0)."""
    if not independent:
        return rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
    pz = rng.dirichlet(np.ones(shape[2]))
    px, py = (rng.dirichlet(np.ones(k), size=shape[2]).T for k in shape[:2])
    return px[:, None, :] * py[None, :, :] * pz[None, None, :]


def conditional(seed: int, tables: int = 20) -> None:
    print("\n| table (x, y, z values) | I(X;Y\\|Z) | n | rows per cell | discrete='auto' "
          "(categories): mean error (sd), warnings | discrete=True (numbers): mean error (sd), "
          "warnings (bias estimate) |")
    print("|---|---|---|---|---|---|")
    for independent in (False, True):
        for shape in ((3, 3, 2), (4, 4, 4), (6, 6, 4), (8, 8, 4), (8, 8, 8)):
            for n in (100, 300, 1000, 3000):
                rng = np.random.default_rng([seed, *shape, n, independent])
                err = {"auto": [], True: []}
                warned = dict.fromkeys(err, 0)
                per_cell, bias = [], []
                for _ in range(tables):
                    p = random_table(rng, shape, independent)
                    cells = rng.choice(p.size, size=n, p=p.ravel())
                    x, y, z = (a[:, None] * 1.0 for a in np.unravel_index(cells, shape))
                    for setting in err:
                        est = KSG(discrete=setting)
                        with warnings.catch_warnings(record=True) as caught:
                            warnings.simplefilter("always", DiscreteBiasWarning)
                            err[setting].append(est.estimate_conditional(x, y, z)
                                                - table_cmi(p))
                        warned[setting] += any(w.category is DiscreteBiasWarning
                                               for w in caught)
                    table = est.last_info["discrete_cells"]    # no "xyz" if z was constant
                    per_cell.append(n / (table["xyz"] if "xyz" in table else table["xy"]))
                    bias.append(est.last_info["plugin_bias"])
                cells = [f"{np.mean(e):+.3f} ({np.std(e, ddof=1):.3f}), {warned[s]}"
                         for s, e in err.items()]
                print(f"| {' x '.join(map(str, shape))} | {'0' if independent else 'random'} "
                      f"| {n} | {np.mean(per_cell):.1f} | {cells[0]} | {cells[1]} "
                      f"({np.mean(bias):+.3f}) |", flush=True)


def channels(seed: int, samples: int = 30) -> None:
    print("\n| channel | I(X;Y) | n | rows per cell | rows alone | discrete='auto' "
          "(categories): mean error (sd), warnings | discrete=True (numbers): mean error "
          "(sd), warnings |")
    print("|---|---|---|---|---|---|---|")
    for values in (6, 9, 12, 20):
        for keep in (0.6, 0.9):
            p = np.full((values, values, 1), (1.0 - keep) / values**2)
            p[np.arange(values), np.arange(values), 0] += keep / values
            truth = table_cmi(p)                  # I(X;Y|Z) with Z constant: I(X;Y)
            for n in (100, 300, 1000, 3000):
                rng = np.random.default_rng([seed, values, int(keep * 10), n])
                err = {"auto": [], True: []}
                warned = dict.fromkeys(err, 0)
                per_cell, alone, continuous = [], [], 0
                for _ in range(samples):
                    cells = rng.choice(p.size, size=n, p=p.ravel())
                    x, y = (a[:, None] * 1.0 for a in np.unravel_index(cells, p.shape)[:2])
                    for setting in err:
                        est = KSG(discrete=setting)
                        with warnings.catch_warnings(record=True) as caught:
                            warnings.simplefilter("always", DiscreteBiasWarning)
                            warnings.simplefilter("always", TiedDataWarning)
                            err[setting].append(est.estimate(x, y) - truth)
                        warned[setting] += any(w.category in (DiscreteBiasWarning,
                                                              TiedDataWarning)
                                               for w in caught)
                        continuous += "discrete_as" not in est.last_info   # too many values
                    per_cell.append(n / est.last_info["discrete_cells"]["xy"])
                    alone.append(est.last_info.get("rows_alone_in_cell", np.nan) / n)
                cells = [f"{np.mean(e):+.3f} ({np.std(e, ddof=1):.3f}), {warned[s]}"
                         for s, e in err.items()]
                if continuous:         # discrete_columns: too many values for this n
                    cells[0] += f" (taken as continuous in {continuous})"
                print(f"| {values} values, kept {keep} | {truth:.3f} | {n} | "
                      f"{np.mean(per_cell):.1f} | {np.mean(alone):.1%} | {cells[0]} | "
                      f"{cells[1]} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
