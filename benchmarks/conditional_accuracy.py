"""Conditional MI I(X;Y|Z): MIST's conditional checkpoint against KSG (Frenzel-Pompe) and CCA
(Gaussian partial form) on held-out samples of ``mistgen.conditional`` with exact truth.

    python benchmarks/conditional_accuracy.py --reps 10 --out cmi.json --figure cmi.png
    python benchmarks/conditional_accuracy.py --quick          # a few minutes on 2 cores
    python benchmarks/conditional_accuracy.py --transform halfcube   # non-Gaussian marginals
    python benchmarks/conditional_accuracy.py --store data/conditional/cmi_test.zarr

Sample ``r`` of a cell (spec, d, n) is ``conditional_sample(spec, n, d, d, d, seed)`` with
``seed = [--seed, 2, spec index, d, r]`` (training draws from ``[seed, 0, step]`` and
``[seed, 1, k]`` under its own master seed, 0 by default; ``--seed`` defaults to 2027), so
a family's structure is the same at every n.  The ``*-factor`` specs (a dense mix of all
three groups) are not among the shipped checkpoint's training specs; the others are, with
other parameters.  ``--transform`` applies ``mistgen`` transforms (invertible, named as in
spec strings, e.g. ``halfcube`` or ``wiggly-spiral``) to each of X, Y and Z: the truth is
unchanged (I(X;Y|Z) is invariant to invertible maps of each group) but the data are no
longer Gaussian; ``spiral`` needs 2 columns per group, so d = 1 keeps the others only.
``--store`` reads the suite from a conditional store instead
(``mistgen.build_conditional_dataset``, e.g. the release config's ``cmi_test`` split, built
by ``snakemake --configfile workflow/configs/release.yaml data/conditional/cmi_test.zarr``):
its datapoints are grouped by (spec, d = dim_x, n), and a spec's transform chain counts
with its base spec.

Tables (markdown, stdout): mean absolute error by (d, n) and estimator over all specs;
the same split into trained and held-out specs; the mean estimate on Gaussian chains
(truth 0) and Student-t chains (truth > 0, which CCA cannot see).  ``--out`` writes every
estimate as JSON; ``--figure`` draws MAE against n, one panel per d.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mistgen.conditional import (CONDITIONAL_SPECS, conditional_sample,  # noqa: E402
                                 split_conditional_spec, transform_groups)
from mistmodel import MIST  # noqa: E402
from mistmodel.estimators import CCA, KSG  # noqa: E402

HELD_OUT = ("normal-factor", "student-factor")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None,
                   help="conditional checkpoint (default: the shipped mist_cmi)")
    p.add_argument("--dims", default="1,4,8,16", help="columns per group, comma-separated")
    p.add_argument("--ns", default="100,300,1000,10000", help="sample sizes, comma-separated")
    p.add_argument("--reps", type=int, default=10, help="samples per (spec, d, n)")
    p.add_argument("--seed", type=int, default=2027)
    p.add_argument("--estimators", default="mist_cmi,ksg,cca")
    p.add_argument("--transform", default="base",
                   help="mistgen transforms applied to X, Y and Z, joined by '-'")
    p.add_argument("--store", default=None,
                   help="read the suite from this conditional store (ignores --dims, --ns, "
                   "--reps, --seed, --transform)")
    p.add_argument("--quick", action="store_true",
                   help="3 samples per cell, n up to 1,000")
    p.add_argument("--out", default=None, help="write every estimate as JSON")
    p.add_argument("--figure", default=None, help="draw MAE against n (PNG)")
    a = p.parse_args(argv)
    a.dims = [int(v) for v in a.dims.split(",")]
    a.ns = [int(v) for v in a.ns.split(",")]
    if a.quick:
        a.reps = 3
        a.ns = [n for n in a.ns if n <= 1000]
    return a


def make_estimators(names: list[str], checkpoint: str | None) -> dict:
    made = {}
    for name in names:
        if name == "mist_cmi":
            made[name] = MIST.load(checkpoint, variant="mist_cmi", backend="torch")
        elif name == "ksg":
            made[name] = KSG()
        elif name == "cca":
            made[name] = CCA()
        else:
            raise SystemExit(f"unknown estimator {name!r}; choose from mist_cmi, ksg, cca")
    return made


def drawn_cells(a: argparse.Namespace):
    """(spec, d, n, samples) of every cell, drawn by address."""
    cells = [(k, spec, d, n) for k, spec in enumerate(CONDITIONAL_SPECS) for d in a.dims
             for n in a.ns]
    for k, spec, d, n in tqdm(cells, desc="cells", file=sys.stderr):
        yield spec, d, n, [transform_groups(conditional_sample(spec, n, d, d, d,
                                                               seed=[a.seed, 2, k, d, r]),
                                            a.transform) for r in range(a.reps)]


def store_cells(a: argparse.Namespace):
    """(base spec, d, n, samples) of every cell of a conditional store, shard by shard."""
    import mistgen

    ds = mistgen.open_meta_dataset(a.store)
    if not ds.conditional:
        raise SystemExit(f"{a.store} holds (X, Y) samples, not a conditional suite")
    index = ds.index
    a.dims = sorted(set(index.dim_x.values.tolist()))
    a.ns = sorted(set(index.n.values.tolist()))
    for shard in tqdm(ds.iter_shards(), total=ds.num_shards, desc="shards", file=sys.stderr):
        cells: dict[tuple, list] = {}
        for s in shard:
            key = (split_conditional_spec(s.spec)[0], s.dim_x, s.n)
            cells.setdefault(key, []).append(s)
        for (spec, d, n), samples in cells.items():
            yield spec, d, n, samples


def run(a: argparse.Namespace) -> list[dict]:
    estimators = make_estimators(a.estimators.split(","), a.checkpoint)
    rows = []
    for spec, d, n, samples in (store_cells(a) if a.store else drawn_cells(a)):
        for name, est in estimators.items():
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if name == "mist_cmi":
                    values = est.estimate_conditional_batch(samples)
                else:
                    values = [est.estimate_conditional(s.x, s.y, s.z) for s in samples]
            seconds = (time.perf_counter() - t0) / len(samples)
            for s, v in zip(samples, values):
                rows.append({"estimator": name, "spec": spec, "d": d, "n": n,
                             "truth": s.cmi, "mi": s.mi, "estimate": float(v),
                             "seconds": seconds})
    return rows


def table(rows: list[dict], names: list[str], dims: list[int], ns: list[int], title: str,
          value, truth: bool = False) -> str:
    """One row per d, one column per n; ``truth`` adds the cells' mean true I(X;Y|Z)."""
    head = "| d | " + ("truth | " if truth else "")
    lines = [f"### {title}", "", head + " | ".join(f"n = {n:,}" for n in ns) + " |",
             "|---|" + ("---|" if truth else "") + "---|" * len(ns)]
    for d in dims:
        cells = []
        if truth:
            cells.append(f"{np.mean([r['truth'] for r in rows if r['d'] == d]):.3f}")
        for n in ns:
            parts = []
            for name in names:
                sel = [r for r in rows if r["estimator"] == name and r["d"] == d and r["n"] == n]
                parts.append(f"{value(sel):.3f}" if sel else "-")
            cells.append(" / ".join(parts))
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    lines.append(f"\n(each cell: {' / '.join(names)})\n")
    return "\n".join(lines)


def mae(sel: list[dict]) -> float:
    return float(np.mean([abs(r["estimate"] - r["truth"]) for r in sel]))


def mean_estimate(sel: list[dict]) -> float:
    return float(np.mean([r["estimate"] for r in sel]))


def report(rows: list[dict], a: argparse.Namespace) -> str:
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    held = [r for r in rows if r["spec"] in HELD_OUT]
    trained = [r for r in rows if r["spec"] not in HELD_OUT]
    chains = [r for r in rows if r["spec"] == "normal-chain"]
    t_chains = [r for r in rows if r["spec"] == "student-chain"]
    out = [table(rows, names, a.dims, a.ns, "Mean absolute error, all specs (nats)", mae),
           table(trained, names, a.dims, a.ns, "MAE, specs of the training mix", mae),
           table(held, names, a.dims, a.ns, "MAE, held-out specs (*-factor)", mae),
           table(chains, names, a.dims, a.ns, "Mean estimate, Gaussian chains (truth 0)",
                 mean_estimate),
           table(t_chains, names, a.dims, a.ns,
                 "Mean estimate, Student-t chains (truth > 0: the shared scale)",
                 mean_estimate, truth=True)]
    small = [r for r in rows if r["n"] <= 1000]
    lines = ["### n <= 1,000, all dims: MAE, all specs (held-out specs only)", ""]
    for name in names:
        sel = [r for r in small if r["estimator"] == name]
        sel_h = [r for r in sel if r["spec"] in HELD_OUT]
        lines.append(f"- {name}: {mae(sel):.3f} ({mae(sel_h):.3f}); "
                     f"{np.mean([r['seconds'] for r in sel]) * 1e3:.1f} ms per estimate")
    out.append("\n".join(lines))
    return "\n\n".join(out)


def figure(rows: list[dict], a: argparse.Namespace, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    fig, axes = plt.subplots(1, len(a.dims), figsize=(3.2 * len(a.dims), 3.0), sharey=True)
    for ax, d in zip(np.atleast_1d(axes), a.dims):
        for name in names:
            ys = [mae([r for r in rows if r["estimator"] == name and r["d"] == d
                       and r["n"] == n]) for n in a.ns]
            ax.plot(a.ns, ys, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"d = {d} per group")
        ax.set_xlabel("n")
    np.atleast_1d(axes)[0].set_ylabel("MAE of I(X;Y|Z) (nats)")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    a = parse_args(argv)
    rows = run(a)
    print(report(rows, a))
    if a.out:
        Path(a.out).write_text(json.dumps({"args": {k: v for k, v in vars(a).items()},
                                           "rows": rows}, indent=1))
    if a.figure:
        figure(rows, a, a.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
