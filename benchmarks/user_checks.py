"""The first checks a user runs on an MI estimator, as tables (issue 17, points 1-7).

    python benchmarks/user_checks.py --quick                  # a few minutes on 2 cores
    python benchmarks/user_checks.py --out user_checks.json   # the full suite (about an hour)
    python benchmarks/user_checks.py --estimators mist,ksg --sections 1,5
    python benchmarks/user_checks.py --sections 1 --marginals independent-uniform  # i.i.d.

Every sample comes from ``mistgen`` under master seed ``--seed`` (default 17) and split
names ``user_checks/...``, which no training or test store uses. Sample ``r`` of a cell
is ``mistgen.sample(spec, n, dx, dy, seed)`` with a data seed that depends on the section,
spec, dims and ``r`` but not on ``n``, so a family's parameters are the same at every n.

Sections:
1. zero at independence: mean estimate by (dims, n) on X independent of Y (normal,
   Student-t, uniform, lognormal, exponential and mixed marginals, some transformed),
   and the 90% interval's coverage of 0 for estimators with intervals (MIST-QR);
   ``--marginals`` picks the families cycled over (``independent-uniform``: i.i.d.
   columns, which MIST's rank scores make i.i.d. normal);
2. the permutation test of independence (``mistmodel.independence``): false-positive
   rate at alpha = 0.05 over ``--null-samples`` null samples, and power on dependent
   families at equal n, beside distance correlation;
3. consistency in n: Gaussian and Student-t families (dense, sparse) at d 1-8, 16-32 and 64,
   n = 500, 2,000, 10,000: mean absolute error, the share within max(5%, 0.01 nats) of the
   truth at n = 10,000 (MI in [0.05, 5]), interval median width and coverage;
4. error by decile of the true MI (n >= 500, d <= 8): mean |log((max(est, 0) + 0.01) /
   (true + 0.01))| and mean relative error |est - true| / max(true, 0.01);
5. discrete and tied data, with the warnings each estimator raised;
6. time and peak memory (maxrss of a fresh process) of one estimate at n = 100,000,
   32 + 32 dims, for the MIST variants (MIST-QR: with its 90% interval; ``--quick``: the
   first one only);
7. the paper's grids: the figures recorded with the checkpoint and the command that
   recomputes them (``benchmarks/eval_mist.py``).

Progress goes to stderr; the tables (markdown) to stdout; ``--out`` writes every
per-sample result as JSON. ``--quick`` cuts the repetitions and drops d = 64: about 5
minutes on 2 idle cores (13 on 2 heavily shared ones); the full run takes one to two
hours, most of it KSG at n = 10,000 and MIST at n = 100,000.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402
from tqdm import tqdm  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mistgen  # noqa: E402
import mistgen.families.checks  # noqa: E402,F401  (registers the check families)
from mistgen.design import address_rng  # noqa: E402
from mistmodel.estimators import KSG  # noqa: E402
from mistmodel.independence import distance_correlation_test, independence_test  # noqa: E402

LEVEL = 0.9
ALPHA = 0.05
INDEPENDENT_SPECS = ["independent-normal", "independent-student", "independent-uniform",
                     "independent-lognormal", "independent-exponential", "independent-mixed",
                     "independent-normal-wiggly", "independent-mixed-asinh"]
INDEPENDENCE_DIMS = [(1, 1), (2, 2), (4, 4), (8, 8), (16, 16), (32, 32),
                     (1, 4), (2, 16), (8, 32), (32, 1)]
INDEPENDENCE_N = [10, 100, 500, 2000, 10000]
CONSISTENCY_SPECS = ["normal-dense", "normal-sparse", "student-dense", "student-sparse"]
CONSISTENCY_N = [500, 2000, 10000]
TOLERANCE = (0.05, 0.01)  # relative, absolute: within max(5% of the truth, 0.01 nats)
REL_FLOOR = 0.01          # relative error by decile: |est - true| / max(true, REL_FLOOR)
# (label, spec, fixed parameters, dims) of the dependent samples of the power table
POWER_CASES = [
    ("normal 1+1, rho 0.2 (MI 0.020)", "normal-dense", {"off_diag": 0.2}, (1, 1)),
    ("normal-sparse 4+4, one pair rho 0.26 (MI 0.036)", "normal-sparse",
     {"k": 1, "strength": 0.6}, (4, 4)),
    ("student 2+2, identity, nu 3 (uncorrelated, MI 0.111)", "student-identity",
     {"nu": 3.0}, (2, 2)),
    ("additive noise 1+1, eps 1.5 (MI 0.167)", "additive_noise", {"epsilon": [1.5]}, (1, 1)),
]
# (label, spec, prior overrides) of the decile suite; tiny correlations are the Gaussian
# families under narrow priors.
DECILE_CASES = [
    ("normal-dense", "normal-dense", None),
    ("normal-dense tiny", "normal-dense", {"normal-dense": {"off_diag": [0.0, 0.1]}}),
    ("normal-sparse", "normal-sparse", None),
    ("normal-sparse weak", "normal-sparse", {"normal-sparse": {"strength": [0.1, 0.7]}}),
    ("normal-lvm-wiggly", "normal-lvm-wiggly", None),
    ("normal-dense-halfcube", "normal-dense-halfcube", None),
    ("student-dense", "student-dense", None),
    ("student-sparse-asinh", "student-sparse-asinh", None),
    ("student-identity", "student-identity", None),
    ("additive_noise", "additive_noise", None),
    ("normal-sparse-asinh", "normal-sparse-asinh", None),
    ("student-dense-halfcube", "student-dense-halfcube", None),
]
DECILE_N = [500, 1000, 2000]
DISCRETE_ROWS = [
    ("X uniform on 4 values, Y = X, n = 1,000", "discrete-copy", {"k": 4}),
    ("binary symmetric channel, flip 0.1, n = 1,000", "discrete-bsc", {"flip": 0.1}),
    ("random 2-6 x 2-6 table, n = 1,000", "discrete-table", None),
]
FULL = {"reps_independence": 40, "null_samples": 1000, "permutations": 199,
        "power_samples": 100, "reps_consistency": 10, "high_dims": [16, 32, 64],
        "decile_samples": 2000, "reps_discrete": 20, "time_one_variant": False}
QUICK = {"reps_independence": 3, "null_samples": 100, "permutations": 99,
         "power_samples": 20, "reps_consistency": 1, "high_dims": [16, 32],
         "decile_samples": 240, "reps_discrete": 5, "time_one_variant": True}


# -- estimators ----------------------------------------------------------------------------

@dataclass
class Runner:
    """One estimator under test, with batched calls where it has them, counting the
    warnings it raises (``last_warnings``: those of the latest call)."""

    name: str
    estimator: Any
    warnings: dict = field(default_factory=dict)
    last_warnings: list = field(default_factory=list)
    seconds: float = 0.0

    def estimates(self, samples: list) -> np.ndarray:
        with self.recording():
            if hasattr(self.estimator, "estimate_batch"):
                return np.asarray(self.estimator.estimate_batch(
                    [(s.x, s.y) for s in samples]), dtype=np.float64)
            return np.array([self.estimator.estimate(s.x, s.y) for s in samples])

    @property
    def has_interval(self) -> bool:
        return bool(getattr(self.estimator, "is_quantile", False))

    def median_and_interval(self, samples: list) -> tuple[np.ndarray, np.ndarray]:
        """The median and the (calibrated) central LEVEL interval, as the library gives
        them (``quantiles_batch`` and ``interval_batch``)."""
        pairs = [(s.x, s.y) for s in samples]
        with self.recording():
            median = self.estimator.quantiles_batch(pairs, [0.5])[:, 0]
            interval = self.estimator.interval_batch(pairs, level=LEVEL)
        return median, np.asarray(interval)

    @contextmanager
    def recording(self):
        self.last_warnings = []
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        self.seconds += time.perf_counter() - start
        for w in caught:
            kind = w.category.__name__
            self.warnings[kind] = self.warnings.get(kind, 0) + 1
            self.last_warnings.append(f"{kind}: {w.message}")


def make_runners(names: list[str], checkpoint: str | None,
                 qr_checkpoint: str | None) -> list[Runner]:
    runners = []
    for name in names:
        if name == "ksg":
            est: Any = KSG(k=5)
        elif name in ("mist", "mist_nc", "mist_qr"):
            from mistmodel import MIST
            variant = "mist_qr" if name == "mist_qr" else "mist"
            path = qr_checkpoint if name == "mist_qr" else checkpoint
            # measure beyond the trained dims too (d = 64 in the full run), with the warning
            est = MIST.load(path, variant=variant, device="cpu", out_of_range="warn",
                            neighbour_correction=name == "mist_nc")
        else:
            raise SystemExit(f"unknown estimator {name!r}; choose from mist, mist_nc "
                             "(MIST with its neighbour correction), mist_qr, ksg")
        runners.append(Runner(name, est))
    return runners


# -- samples -------------------------------------------------------------------------------

def data_seed(seed: int, key: str, rep: int) -> int:
    """The data seed of repetition ``rep`` of a cell (``key`` names section, spec, dims)."""
    return int(address_rng(seed, f"user_checks/{key}", rep, 1).integers(2**63))


def draw(seed: int, section: str, spec: str, n: int, dx: int, dy: int, rep: int,
         params: dict | None = None, priors: dict | None = None) -> mistgen.Sample:
    key = f"{section}/{spec}/{json.dumps(priors, sort_keys=True)}/{dx}x{dy}"
    return mistgen.sample(spec, n, dx, dy, data_seed(seed, key, rep), params=params, priors=priors)


def progress(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, mininterval=2)


def run_all(runners: list[Runner], samples: list) -> dict[str, dict[str, list]]:
    """Estimates (and intervals where the estimator has them) of every runner on ``samples``."""
    out = {}
    for r in runners:
        if r.has_interval:
            median, interval = r.median_and_interval(samples)
            out[r.name] = {"estimate": median.tolist(), "interval": interval.tolist()}
        else:
            out[r.name] = {"estimate": r.estimates(samples).tolist()}
    return out


def cells_table(title: str, rows: list[str], cols: list[str],
                value: Callable[[str, str], str]) -> str:
    lines = [f"**{title}**", "", "| | " + " | ".join(cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(value(row, c) for c in cols) + " |")
    return "\n".join(lines) + "\n"


# -- 1. zero at independence ---------------------------------------------------------------

def section_independence(runners, cfg, seed) -> tuple[dict, str]:
    reps = cfg["reps_independence"]
    results: dict[str, Any] = {"reps": reps, "cells": []}
    used: set[str] = set()
    bar = progress(len(INDEPENDENCE_DIMS) * len(INDEPENDENCE_N), "1 independence")
    for dx, dy in INDEPENDENCE_DIMS:
        for n in INDEPENDENCE_N:
            specs = cfg["marginals"]
            samples = [draw(seed, "independence", specs[r % len(specs)], n, dx, dy, r)
                       for r in range(reps)]
            used.update(s.spec for s in samples)
            results["cells"].append({"dims": [dx, dy], "n": n,
                                     "specs": [s.spec for s in samples],
                                     "results": run_all(runners, samples)})
            bar.update()
    bar.close()
    cell = {(tuple(c["dims"]), c["n"]): c["results"] for c in results["cells"]}
    rows = [f"{dx}+{dy}" for dx, dy in INDEPENDENCE_DIMS]
    cols = [f"n={n}" for n in INDEPENDENCE_N]

    def at(row, col):
        dx, dy = (int(v) for v in row.split("+"))
        return cell[((dx, dy), int(col[2:]))]

    cycled = [m for m in cfg["marginals"] if m in used]
    text = [f"### 1. Zero at independence (truth 0; {reps} samples per cell, marginals cycled "
            f"over {', '.join(cycled)}"
            + (f"; {len(cfg['marginals']) - len(cycled)} more need more samples per cell"
               if len(cycled) < len(cfg["marginals"]) else "") + ")\n",
            "Target: |mean| <= 0.01 at n >= 500, <= 0.03 at n >= 100; interval covers 0 in "
            ">= 88% per cell.\n"]
    for r in runners:
        def mean(row, col, name=r.name):
            return f"{np.mean(at(row, col)[name]['estimate']):+.3f}"
        text.append(cells_table(f"{r.name}: mean estimate (nats)", rows, cols, mean))
        if r.has_interval:
            def cover(row, col, name=r.name):
                iv = np.asarray(at(row, col)[name]["interval"])
                return f"{np.sum((iv[:, 0] <= 0) & (iv[:, 1] >= 0))}/{len(iv)}"
            text.append(cells_table(f"{r.name}: {LEVEL:.0%} intervals containing 0",
                                    rows, cols, cover))
    summary = {}
    for r in runners:
        means = {(d, n): np.mean(v[r.name]["estimate"]) for (d, n), v in cell.items()}
        summary[r.name] = {
            "max_abs_mean_n>=500": max(abs(m) for (d, n), m in means.items() if n >= 500),
            "max_abs_mean_n>=100": max(abs(m) for (d, n), m in means.items() if n >= 100)}
        if r.has_interval:
            cov = [np.mean([(lo <= 0 <= hi) for lo, hi in v[r.name]["interval"]])
                   for (d, n), v in cell.items() if n >= 100]
            summary[r.name]["min_cell_coverage_n>=100"] = min(cov)
    results["summary"] = summary
    text.append("Summary: " + "; ".join(
        f"{k}: " + ", ".join(f"{m} {v:.3f}" for m, v in s.items()) for k, s in summary.items()))
    return results, "\n".join(text) + "\n"


# -- 2. independence test ------------------------------------------------------------------

def null_case(i: int) -> tuple[str, int, int, int]:
    """The i-th null: families, then n, then dims cycled in turn, so that every family
    meets every n and every dims (80 cases in all)."""
    dims = [(1, 1), (2, 2), (4, 4), (1, 4), (8, 8)]
    ns = [100, 300]
    families = len(INDEPENDENT_SPECS)
    return (INDEPENDENT_SPECS[i % families], ns[(i // families) % len(ns)],
            *dims[(i // (families * len(ns))) % len(dims)])


def test_pvalues(testers: list[Runner], s: mistgen.Sample, perms: int, perm_seed: int,
                 into: dict[str, list[float]]) -> None:
    """Append each tester's and distance correlation's p-value on ``s`` to ``into``."""
    for r in testers:
        with r.recording():
            into[r.name].append(independence_test(r.estimator, s.x, s.y, perms, perm_seed).p_value)
    into["dcor"].append(distance_correlation_test(s.x, s.y, perms, perm_seed).p_value)


def rate(p: list[float]) -> tuple[float, float, float]:
    """Share of p-values <= ALPHA and its 95% Clopper-Pearson interval."""
    k, m = int(np.sum(np.asarray(p) <= ALPHA)), len(p)
    ci = stats.binomtest(k, m).proportion_ci(0.95)
    return k / m, ci.low, ci.high


def section_test(runners, cfg, seed) -> tuple[dict, str]:
    count, perms, power_count = cfg["null_samples"], cfg["permutations"], cfg["power_samples"]
    # MIST-QR's median is tested like the point network; one MIST variant is enough.
    testers = [r for r in runners if not r.has_interval] or runners
    bar = progress(count + power_count * len(POWER_CASES), "2 independence test")
    null_p: dict[str, list[float]] = {r.name: [] for r in testers} | {"dcor": []}
    for i in range(count):
        spec, n, dx, dy = null_case(i)
        test_pvalues(testers, draw(seed, "test-null", spec, n, dx, dy, i), perms, i, null_p)
        bar.update()
    power: dict[str, dict[str, list[float]]] = {}
    for label, spec, params, (dx, dy) in POWER_CASES:
        power[label] = {r.name: [] for r in testers} | {"dcor": []}
        for i in range(power_count):
            s = draw(seed, "test-power", spec, 200, dx, dy, i, params=params)
            test_pvalues(testers, s, perms, i, power[label])
            bar.update()
    bar.close()
    results = {"null_samples": count, "permutations": perms, "alpha": ALPHA,
               "null_p_values": null_p, "power_samples": power_count, "power_n": 200,
               "power_p_values": power}
    names = list(null_p)
    text = [f"### 2. Permutation test of independence ({count} null samples, {perms} "
            f"permutations, alpha {ALPHA})\n",
            "Null samples cycle over the independence families, n in {100, 300}, dims "
            "1+1, 2+2, 4+4, 1+4, 8+8. Target: false-positive rate in [0.03, 0.07].\n",
            "| statistic | false-positive rate | 95% CI |", "|---|---|---|"]
    for k in names:
        r, lo, hi = rate(null_p[k])
        text.append(f"| {k} | {r:.3f} | [{lo:.3f}, {hi:.3f}] |")
    text += ["", f"Power at alpha {ALPHA}, n = 200, {power_count} samples per family:", "",
             "| family | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, by in power.items():
        text.append(f"| {label} | " + " | ".join(f"{rate(by[k])[0]:.2f}" for k in names) + " |")
    return results, "\n".join(text) + "\n"


# -- 3. consistency in n -------------------------------------------------------------------

def section_consistency(runners, cfg, seed) -> tuple[dict, str]:
    reps = cfg["reps_consistency"]
    high = cfg["high_dims"]
    groups = {"d 1-8": [1, 2, 4, 8]}
    for part in ([d for d in high if d <= 32], [d for d in high if d > 32]):
        if part:
            groups[f"d {part[0]}-{part[-1]}" if len(part) > 1 else f"d {part[0]}"] = part
    rows = []
    bar = progress(len(CONSISTENCY_N) * len(CONSISTENCY_SPECS) * sum(map(len, groups.values())),
                   "3 consistency")
    for n in CONSISTENCY_N:
        for group, dims in groups.items():
            for spec in CONSISTENCY_SPECS:
                for d in dims:
                    samples = [draw(seed, "consistency", spec, n, d, d, r) for r in range(reps)]
                    res = run_all(runners, samples)
                    for j, s in enumerate(samples):
                        rows.append({"group": group, "spec": spec, "d": d, "n": n, "mi": s.mi,
                                     **{k: {f: v[f][j] for f in v} for k, v in res.items()}})
                    bar.update()
    bar.close()
    text = [f"### 3. Consistency in n (Gaussian and Student-t, dense and sparse; {reps} "
            f"samples per (family, d, n), the same parameters at every n)\n",
            "Target: MAE falls with n; at n = 10,000 within max(5%, 0.01 nats) for MI in "
            "[0.05, 5]; interval width at 10,000 <= half that at 500, coverage held.\n"]
    header = "| estimator | group | " + " | ".join(f"MAE n={n}" for n in CONSISTENCY_N) \
        + " | within tol. at n=10000 (MI in [0.05, 5]) |"
    text += [header, "|---" * (header.count("|") - 1) + "|"]
    summary: dict[str, Any] = {}
    for r in runners:
        for group in groups:
            sel = [row for row in rows if row["group"] == group]
            mae = {n: float(np.mean([abs(row[r.name]["estimate"] - row["mi"])
                                     for row in sel if row["n"] == n])) for n in CONSISTENCY_N}
            last = [row for row in sel if row["n"] == CONSISTENCY_N[-1] and 0.05 <= row["mi"] <= 5]
            ok = [abs(row[r.name]["estimate"] - row["mi"])
                  <= max(TOLERANCE[0] * row["mi"], TOLERANCE[1]) for row in last]
            summary[f"{r.name} {group}"] = {"mae": mae, "within": [int(sum(ok)), len(ok)]}
            text.append(f"| {r.name} | {group} | "
                        + " | ".join(f"{mae[n]:.3f}" for n in CONSISTENCY_N)
                        + f" | {sum(ok)}/{len(ok)} |")
    for r in (r for r in runners if r.has_interval):
        text += ["", f"{r.name} {LEVEL:.0%} intervals: median width / coverage of the truth",
                 "", "| group | " + " | ".join(f"n={n}" for n in CONSISTENCY_N) + " |",
                 "|---" * (len(CONSISTENCY_N) + 1) + "|"]
        for group in groups:
            cells = []
            for n in CONSISTENCY_N:
                sel = [row for row in rows if row["group"] == group and row["n"] == n]
                iv = np.array([row[r.name]["interval"] for row in sel])
                mi = np.array([row["mi"] for row in sel])
                width = float(np.median(iv[:, 1] - iv[:, 0]))
                cov = float(np.mean((iv[:, 0] <= mi) & (mi <= iv[:, 1])))
                summary[f"{r.name} {group} n={n}"] = {"median_width": width, "coverage": cov}
                cells.append(f"{width:.3f} / {cov:.2f}")
            text.append(f"| {group} | " + " | ".join(cells) + " |")
    return {"reps": reps, "rows": rows, "summary": summary}, "\n".join(text) + "\n"


# -- 4. error by decile of the true MI -----------------------------------------------------

def decile_sample(seed: int, i: int) -> mistgen.Sample:
    label, spec, priors = DECILE_CASES[i % len(DECILE_CASES)]
    rng = address_rng(seed, "user_checks/deciles", i, 0)
    parsed = mistgen.parse_spec(spec)
    low = max(1, parsed.family.min_dim)
    dx = int(rng.integers(low, 9))
    dy = dx if parsed.family.equal_dims or rng.random() < 0.5 else int(rng.integers(low, 9))
    n = int(DECILE_N[int(rng.integers(len(DECILE_N)))])
    return mistgen.sample(spec, n, dx, dy, data_seed(seed, "deciles", i), priors=priors)


def log_error(est: np.ndarray, mi: np.ndarray) -> np.ndarray:
    return np.abs(np.log((np.maximum(est, 0.0) + 0.01) / (mi + 0.01)))


def section_deciles(runners, cfg, seed) -> tuple[dict, str]:
    count = cfg["decile_samples"]
    samples = [decile_sample(seed, i) for i in tqdm(range(count), desc="4 deciles (draw)",
                                                    file=sys.stderr, leave=False)]
    mi = np.array([s.mi for s in samples])
    res = {}
    for r in tqdm(runners, desc="4 deciles", file=sys.stderr, leave=False):
        res[r.name] = r.estimates(samples)
    edges = np.quantile(mi, np.linspace(0, 1, 11))
    decile = np.clip(np.searchsorted(edges, mi, side="right") - 1, 0, 9)
    text = [f"### 4. Error by decile of the true MI ({count} samples, n in {DECILE_N}, "
            f"d 1-8 per side, {len(DECILE_CASES)} families incl. tiny correlations)\n",
            "Cells: mean |log((max(est,0)+0.01)/(true+0.01))| / mean |est - true| / "
            "max(true, 0.01) (the floor keeps MI near 0 from dominating the mean). "
            "Target: no decile worse than KSG's.\n",
            "| decile | MI range | " + " | ".join(r.name for r in runners) + " |",
            "|---" * (len(runners) + 2) + "|"]
    table = []
    for k in range(10):
        sel = decile == k
        row = {"decile": k + 1, "mi_low": float(mi[sel].min()), "mi_high": float(mi[sel].max()),
               "count": int(sel.sum())}
        cells = []
        for r in runners:
            le = float(log_error(res[r.name][sel], mi[sel]).mean())
            rel = float(np.mean(np.abs(res[r.name][sel] - mi[sel])
                                / np.maximum(mi[sel], REL_FLOOR)))
            row[r.name] = {"log_error": le, "relative_error": rel}
            cells.append(f"{le:.3f} / {rel:.2f}")
        table.append(row)
        text.append(f"| {k + 1} | {row['mi_low']:.3f}-{row['mi_high']:.3f} | "
                    + " | ".join(cells) + " |")
    results = {"count": count, "table": table,
               "samples": [{"spec": s.spec, "n": s.n, "dims": [s.dim_x, s.dim_y], "mi": s.mi,
                            **{k: float(v[i]) for k, v in res.items()}}
                           for i, s in enumerate(samples)]}
    return results, "\n".join(text) + "\n"


# -- 5. discrete data ----------------------------------------------------------------------

def section_discrete(runners, cfg, seed) -> tuple[dict, str]:
    reps = cfg["reps_discrete"]
    text = [f"### 5. Discrete and tied data (n = 1,000, {reps} samples per row; in brackets "
            "the kinds of warning raised, and whether one mentions ties)\n",
            "| data | truth | " + " | ".join(f"{r.name} (warnings)" for r in runners) + " |",
            "|---" * (len(runners) + 2) + "|"]
    results = []
    for label, spec, params in tqdm(DISCRETE_ROWS, desc="5 discrete", file=sys.stderr, leave=False):
        samples = [draw(seed, "discrete", spec, 1000, 1, 1, r, params=params) for r in range(reps)]
        mi = np.array([s.mi for s in samples])
        row = {"data": label, "mi": mi.tolist()}
        cells = []
        for r in runners:
            est = r.estimates(samples)
            kinds = sorted({w.split(":")[0] for w in r.last_warnings})
            if any("tie" in w.lower() for w in r.last_warnings):
                kinds.append("names ties")
            row[r.name] = {"estimate": est.tolist(), "warnings": r.last_warnings[:3]}
            if params is None:
                cells.append(f"MAE {np.mean(np.abs(est - mi)):.3f} ({', '.join(kinds) or 'none'})")
            else:
                cells.append(f"{est.mean():.3f} ± {est.std():.3f} ({', '.join(kinds) or 'none'})")
        truth = f"{mi[0]:.3f}" if params is not None else f"mean {mi.mean():.3f}"
        text.append(f"| {label} | {truth} | " + " | ".join(cells) + " |")
        results.append(row)
    return {"reps": reps, "rows": results}, "\n".join(text) + "\n"


# -- 6. time and memory at n = 100,000 -----------------------------------------------------

TIMING_SCRIPT = """
import json, resource, sys, time, warnings
import numpy as np
from mistmodel import MIST
name, path = sys.argv[1], (sys.argv[2] or None)
est = MIST.load(path, variant="mist_qr" if name == "mist_qr" else "mist", device="cpu",
                neighbour_correction=name == "mist_nc")
rng = np.random.default_rng(0)
x, y = rng.standard_normal((100_000, 32)), rng.standard_normal((100_000, 32))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    # MIST-QR: the median with its 90% interval, the call its users make
    call = ((lambda a, b: est.estimate_with_interval(a, b, level=0.9).value)
            if name == "mist_qr" else est.estimate)
    # warm-up: one-time costs of the first call, on the path the timed call takes (the
    # neighbour correction's copula path needs 20 rows per column)
    call(x[:3000], y[:3000])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    value = call(x, y)
    seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import torch
print(json.dumps({"seconds": seconds, "estimate": value, "maxrss_before_mib": before / 1024,
                  "maxrss_peak_mib": peak / 1024, "torch_threads": torch.get_num_threads(),
                  "warnings": sorted({str(w.message)[:100] for w in caught})}))
"""


def section_timing(runners, cfg, seed, checkpoints) -> tuple[dict, str]:
    mist_runners = [r for r in runners if r.name in ("mist", "mist_nc", "mist_qr")]
    timed = mist_runners[:1] if cfg["time_one_variant"] else mist_runners
    results = {}
    text = ["### 6. One estimate at n = 100,000, 32 + 32 dims (fresh process, independent "
            "normal data, after a warm-up call at n = 3,000; mist_qr: the median with its 90% "
            "interval, `estimate_with_interval`)\n",
            "Target: <= 10 s and <= 2 GiB peak on 2 cores. KSG is not timed (brute-force kNN "
            "in 64 dims at this n takes many minutes).\n",
            "| estimator | seconds | peak maxrss (MiB) | maxrss before the call (MiB) | estimate "
            "| torch threads | warnings |", "|---|---|---|---|---|---|---|"]
    for r in timed:
        command = [sys.executable, "-c", TIMING_SCRIPT, r.name, checkpoints[r.name] or ""]
        # the checkout this script belongs to, as sections 1-5 import it
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
        if proc.returncode != 0:
            results[r.name] = {"error": proc.stderr[-2000:]}
            reason = proc.stderr.strip().splitlines()[-1][:200]
            text.append(f"| {r.name} | failed: {reason} | | | | | |")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results[r.name] = res
        text.append(f"| {r.name} | {res['seconds']:.1f} | {res['maxrss_peak_mib']:.0f} | "
                    f"{res['maxrss_before_mib']:.0f} | {res['estimate']:.3f} | "
                    f"{res['torch_threads']} | {'; '.join(res['warnings']) or 'none'} |")
    return results, "\n".join(text) + "\n"


# -- 7. the paper's grids ------------------------------------------------------------------

def section_paper(runners, cfg, seed) -> tuple[dict, str]:
    text = ["### 7. The paper's grids\n",
            "Recomputed by `python benchmarks/eval_mist.py --json mist_eval.json` "
            "(in- and out-of-distribution MSE by n-bin, MIST-QR coverage by n-bin). "
            "Figures recorded with the checkpoints (`test_evaluation` of their JSON record):\n"]
    results = {}
    shown: list[dict] = []
    for r in runners:
        checkpoint = getattr(r.estimator, "checkpoint", None)
        record_path = Path(checkpoint).with_suffix(".json") if checkpoint else None
        if record_path is None or not record_path.is_file():
            continue
        record = json.loads(record_path.read_text()).get("test_evaluation")
        if not record or record in shown:     # the shipped checkpoints share one record
            continue
        shown.append(record)
        results[r.name] = record
        for split in ("id", "ood"):
            if split not in record:
                continue
            mse = record[split].get("mse_by_n", {})
            parts = [f"{name} " + " / ".join(f"{v:.3f}" for v in row.values())
                     for name, row in mse.items()]
            cov = record[split].get("coverage_by_n", {})
            text.append(f"- {r.name} record, {split}: MSE by n-bin: " + "; ".join(parts)
                        + ("; QR coverage by n-bin " + " / ".join(f"{v:.2f}" for v in cov.values())
                           if cov else ""))
    return results, "\n".join(text) + "\n"


SECTIONS = {"1": section_independence, "2": section_test, "3": section_consistency,
            "4": section_deciles, "5": section_discrete, "6": section_timing, "7": section_paper}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--estimators", default="mist,mist_qr,ksg",
                    help="comma-separated: mist, mist_nc (MIST with its neighbour correction), "
                         "mist_qr, ksg (KSG with k = 5)")
    ap.add_argument("--checkpoint", default=None, help="MIST checkpoint (default: shipped)")
    ap.add_argument("--qr-checkpoint", default=None, help="MIST-QR checkpoint (default: shipped)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, no d = 64")
    ap.add_argument("--sections", default="1,2,3,4,5,6,7")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--null-samples", type=int, default=None,
                    help=f"null samples of section 2 (full {FULL['null_samples']}, "
                         f"quick {QUICK['null_samples']})")
    ap.add_argument("--permutations", type=int, default=None)
    ap.add_argument("--reps", type=int, default=None,
                    help="samples per cell in sections 1, 3 and 5 (overrides the preset)")
    ap.add_argument("--marginals", default=",".join(INDEPENDENT_SPECS),
                    help="section 1's independence families, cycled over the samples of a "
                         "cell (default: all of them)")
    ap.add_argument("--out", default=None, help="write every result as JSON here")
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    cfg["marginals"] = [s.strip() for s in args.marginals.split(",") if s.strip()]
    for spec in cfg["marginals"] or [args.marginals]:
        try:
            mistgen.parse_spec(spec)
        except mistgen.SpecError as exc:
            raise SystemExit(f"--marginals: {exc}") from None
        if not spec.startswith("independent-"):
            raise SystemExit(f"--marginals takes independence families (independent-...); "
                             f"got {spec!r}")
    if args.null_samples is not None:
        cfg["null_samples"] = args.null_samples
    if args.permutations is not None:
        if (1 + args.permutations) * ALPHA < 1:
            raise SystemExit(f"--permutations {args.permutations}: the smallest p-value, "
                             f"1 / (1 + permutations), would stay above alpha = {ALPHA}, so "
                             f"no test could reject; use at least {math.ceil(1 / ALPHA) - 1}")
        cfg["permutations"] = args.permutations
    if args.reps is not None:
        cfg["reps_independence"] = cfg["reps_consistency"] = cfg["reps_discrete"] = args.reps
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    runners = make_runners([s.strip() for s in args.estimators.split(",") if s.strip()],
                           args.checkpoint, args.qr_checkpoint)
    checkpoints = {"mist": args.checkpoint, "mist_nc": args.checkpoint,
                   "mist_qr": args.qr_checkpoint}
    import torch
    command_args = argv if argv is not None else sys.argv[1:]
    header = (f"# User checks: {', '.join(r.name for r in runners)}\n\n"
              f"`{' '.join(['python', 'benchmarks/user_checks.py', *command_args])}`"
              f" - seed {args.seed}, {'quick' if args.quick else 'full'} preset {cfg}, "
              f"torch threads {torch.get_num_threads()}\n")
    print(header, flush=True)
    out: dict[str, Any] = {"seed": args.seed, "config": cfg, "estimators": [
        {"name": r.name, "settings": r.estimator.settings()} for r in runners], "sections": {}}
    for key in sections:
        start = time.perf_counter()
        fn = SECTIONS[key]
        res, text = (fn(runners, cfg, args.seed, checkpoints) if key == "6"
                     else fn(runners, cfg, args.seed))
        seconds = time.perf_counter() - start
        print(text + f"\n_(section {key}: {seconds:.0f} s)_\n", flush=True)
        out["sections"][key] = {"seconds": seconds, "results": res}
    out["warnings"] = {r.name: r.warnings for r in runners}
    out["estimator_seconds"] = {r.name: r.seconds for r in runners}
    print("Warnings raised, by estimator and kind: " + "; ".join(
        f"{r.name}: {r.warnings or 'none'}" for r in runners))
    print("Seconds spent in each estimator (sections 1-5): " + ", ".join(
        f"{r.name} {r.seconds:.0f}" for r in runners))
    if args.out:
        Path(args.out).write_text(json.dumps(out, default=float))
        print(f"\nwritten: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
