"""The local permutation test of conditional independence (``mistmodel.independence``):
its false-positive rate where X and Y are independent given Z, and its power where not,
with KSG, CCA and MIST's conditional checkpoint as the statistic.

    python benchmarks/conditional_test.py                      # about 6 min on 2 cores
    python benchmarks/conditional_test.py --nulls 50 --power 10 --estimators cca,ksg

Samples come from ``mistgen.conditional`` (``draw_conditional``) with seeds
``[--seed, 3, spec index, d, n, r]``, disjoint from training and from
``conditional_accuracy.py``. Null specs: Gaussian chains X <- Z -> Y, plain and with every
group passed through ``halfcube`` (invertible maps of each group keep X independent of Y
given Z); alternatives: Gaussian colliders and confounded structures, and Student-t chains
(dependent given Z through the shared scale). Each test uses ``--permutations`` local
permutations with ``--neighbours`` Z-neighbours. Tables (markdown, stdout): the rejection
rate at alpha = 0.05 by (d, n) for each estimator, with a 95% Wilson interval for the null
rows; ``--out`` writes every p-value as JSON.
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

from mistgen.conditional import draw_conditional  # noqa: E402
from mistmodel import MIST  # noqa: E402
from mistmodel.estimators import CCA, KSG  # noqa: E402
from mistmodel.independence import conditional_independence_test  # noqa: E402

NULL_SPECS = ("normal-chain", "normal-chain-halfcube")
ALTERNATIVES = ("normal-collider", "normal-confounded", "student-chain")
ALPHA = 0.05


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--estimators", default="cca,ksg,mist_cmi")
    p.add_argument("--dims", default="1,4", help="columns per group, comma-separated")
    p.add_argument("--ns", default="100,300", help="sample sizes, comma-separated")
    p.add_argument("--nulls", type=int, default=100, help="null samples per (spec, d, n)")
    p.add_argument("--power", type=int, default=25,
                   help="samples per (alternative spec, d, n)")
    p.add_argument("--permutations", type=int, default=99)
    p.add_argument("--neighbours", type=int, default=5)
    p.add_argument("--seed", type=int, default=2029)
    p.add_argument("--out", default=None, help="write every p-value as JSON")
    a = p.parse_args(argv)
    if (1 + a.permutations) * ALPHA < 1:
        p.error(f"--permutations {a.permutations}: the smallest p-value, 1 / (1 + "
                f"permutations), would stay above alpha = {ALPHA}; use at least "
                f"{round(1 / ALPHA) - 1}")
    a.dims = [int(v) for v in a.dims.split(",")]
    a.ns = [int(v) for v in a.ns.split(",")]
    return a


def make_estimators(names: list[str]) -> dict:
    known = {"cca": CCA, "ksg": KSG,
             "mist_cmi": lambda: MIST.load(variant="mist_cmi", backend="torch")}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown estimators {unknown}; known: {sorted(known)}")
    return {n: known[n]() for n in names}


def run(a: argparse.Namespace) -> list[dict]:
    estimators = make_estimators(a.estimators.split(","))
    specs = [(s, True, a.nulls) for s in NULL_SPECS] + [(s, False, a.power)
                                                          for s in ALTERNATIVES]
    cells = [(k, spec, null, reps, d, n) for k, (spec, null, reps) in enumerate(specs)
             for d in a.dims for n in a.ns]
    rows = []
    for k, spec, null, reps, d, n in tqdm(cells, desc="cells", file=sys.stderr):
        for r in range(reps):
            s = draw_conditional(spec, n, d, d, d, [a.seed, 3, k, d, n, r])
            for name, est in estimators.items():
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    test = conditional_independence_test(
                        est, s.x, s.y, s.z, a.permutations, seed=r, neighbours=a.neighbours)
                rows.append({"estimator": name, "spec": spec, "null": null, "d": d, "n": n,
                             "rep": r, "cmi": s.cmi, "p_value": test.p_value,
                             "seconds": time.perf_counter() - t0})
    return rows


def wilson(k: int, m: int, z: float = 1.96) -> tuple[float, float]:
    p = k / m
    centre = (p + z * z / (2 * m)) / (1 + z * z / m)
    half = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / (1 + z * z / m)
    return centre - half, centre + half


def report(rows: list[dict], a: argparse.Namespace) -> str:
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    out = []
    for title, null in (("False-positive rate at alpha = 0.05 (X independent of Y given Z)",
                         True), ("Power at alpha = 0.05 (X dependent on Y given Z)", False)):
        lines = [f"### {title}", "", "| estimator | " + " | ".join(
            f"d = {d}, n = {n}" for d in a.dims for n in a.ns) + " | all |",
                 "|---|" + "---|" * (len(a.dims) * len(a.ns) + 1)]
        for name in names:
            cells = []
            for d in a.dims:
                for n in a.ns:
                    sel = [r for r in rows if r["estimator"] == name and r["null"] == null
                           and r["d"] == d and r["n"] == n]
                    cells.append(f"{np.mean([r['p_value'] <= ALPHA for r in sel]):.3f}")
            sel = [r for r in rows if r["estimator"] == name and r["null"] == null]
            k = sum(r["p_value"] <= ALPHA for r in sel)
            total = f"{k / len(sel):.3f}"
            if null:
                lo, hi = wilson(k, len(sel))
                total += f" [{lo:.3f}, {hi:.3f}]"
            cells.append(f"{total} ({len(sel)})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    lines = ["### Power by alternative (all cells)", ""]
    for name in names:
        parts = [f"{spec} {np.mean([r['p_value'] <= ALPHA for r in rows if r['estimator'] == name and r['spec'] == spec]):.2f}"
                 for spec in ALTERNATIVES]
        seconds = np.mean([r["seconds"] for r in rows if r["estimator"] == name])
        lines.append(f"- {name}: " + ", ".join(parts) + f"; {seconds:.2f} s per test")
    out.append("\n".join(lines))
    return "\n\n".join(out)


def main(argv=None) -> int:
    a = parse_args(argv)
    rows = run(a)
    print(report(rows, a))
    if a.out:
        Path(a.out).write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
