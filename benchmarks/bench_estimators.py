"""Seconds per estimate of the baseline estimators (a benchmark, not a test).

    python benchmarks/bench_estimators.py [--repeats R] [--json PATH] [--bmi-python PY]

For each (n, dx = dy) in {(100, 2), (500, 8), (500, 32)} it draws one dense
Gaussian sample (all correlations 0.5, closed-form MI) and prints the median
wall time of one ``estimate`` call for KSG (both norms), CCA, MINE and
InfoNCE with their default settings, and the peak memory of one call above the
memory in use before it (a lower bound: ``peak_memory.PeakMemory`` says what it
sees), next to the estimate and the truth.

KSG is then compared with benchmark-mi's KSG (``bmi.estimators.
KSGEnsembleFirstEstimator`` with a single k and the same norm) on the same
samples: in this process when the ``bmi`` package can be imported, or in
another Python given by ``--bmi-python`` (benchmark-mi needs JAX and numpy < 2,
so it usually lives in a virtualenv of its own; the samples are handed over in
an .npz file and only benchmark-mi runs there); otherwise the comparison is
reported as skipped, with the reason. As a clearly separate extra,
scikit-learn's ``mutual_info_regression`` (a KSG for one target column) is
timed against KSG on the first coordinate of X and of Y. Every comparison gives
time and peak memory side by side, each as a ratio to ours.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mistmodel.estimators import CCA, KSG, MINE, Estimator, InfoNCE  # noqa: E402
from mistmodel.estimators import ksg as ksg_module  # noqa: E402
from peak_memory import PeakMemory, fmt, ratio  # noqa: E402

CONFIGS = [(100, 2), (500, 8), (500, 32)]
CORRELATION = 0.5
K = 5
# benchmark-mi's KSG at n = 500, 32 + 32 dims (Euclidean norm), as measured on
# the project's machine when the target was set.
BMI_QUOTED_SECONDS = 0.07
BMI_QUOTED_CONFIG = (500, 32)


def dense_gaussian(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample of the dense Gaussian family and its mutual information."""
    c = CORRELATION
    cov = (1 - c) * np.eye(2 * d) + c * np.ones((2 * d, 2 * d))
    z = np.random.default_rng(seed).multivariate_normal(np.zeros(2 * d), cov, size=n)
    truth = 0.5 * (
        -math.log(1 - c) + 2 * math.log(1 + (d - 1) * c) - math.log(1 + (2 * d - 1) * c)
    )
    return z[:, :d], z[:, d:], truth


def seconds_per_call(fn: Callable[[], object], repeats: int, budget: float = 2.0) -> float:
    """Median wall time of ``fn`` after one warm-up call."""
    fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < repeats and (spent < budget or len(times) < 3):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return statistics.median(times)


def peak_of_call(fn: Callable[[], object]) -> float | None:
    """Peak memory (MiB) of one call above the memory in use before it (a lower bound)."""
    with PeakMemory() as peak:
        fn()
    return peak.mib


def estimators() -> list[tuple[str, Estimator, int]]:
    """(label, estimator, repeats); the neural estimators are timed less often."""
    return [
        ("KSG chebyshev", KSG(k=K, metric="chebyshev"), 50),
        ("KSG euclidean", KSG(k=K, metric="euclidean"), 50),
        ("CCA", CCA(), 50),
        ("MINE", MINE(), 2),
        ("InfoNCE", InfoNCE(), 2),
    ]


def import_bmi():
    """The bmi module, or the reason it cannot be used."""
    try:
        import bmi  # type: ignore[import-not-found]

        bmi.estimators.KSGEnsembleFirstEstimator  # noqa: B018
    except Exception as exc:  # ImportError, or a broken JAX install
        return None, f"{type(exc).__name__}: {exc}"
    return bmi, ""


# Runs in the benchmark-mi interpreter: times its KSG on the samples of an .npz file.
BMI_CHILD = r"""
import json, statistics, sys, time
import numpy as np
import bmi
data = np.load(sys.argv[1])
k, repeats = int(sys.argv[2]), int(sys.argv[3])
out = []
for name in sorted({key[:-2] for key in data.files}):
    x, y = data[name + "_x"], data[name + "_y"]
    for metric in ("euclidean", "chebyshev"):
        est = bmi.estimators.KSGEnsembleFirstEstimator(neighborhoods=(k,), standardize=True,
                                                       metric_x=metric)
        value = float(est.estimate(x, y))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            est.estimate(x, y)
            times.append(time.perf_counter() - start)
        out.append({"sample": name, "metric": metric, "seconds": statistics.median(times),
                    "estimate": value})
print(json.dumps({"bmi_version": getattr(bmi, "__version__", "?"), "runs": out}))
"""


def bmi_in_other_python(python: str, samples: dict, repeats: int) -> dict:
    """Time benchmark-mi's KSG in another interpreter on the same samples."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = save_samples(samples, Path(tmp))
        done = subprocess.run([python, "-c", BMI_CHILD, str(path), str(K), str(repeats)],
                              capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {(r["sample"], r["metric"]): r for r in result["runs"]}


def save_samples(samples: dict, folder: Path) -> Path:
    """The samples in one .npz file, ``n{n}d{d}_x`` / ``_y``."""
    arrays = {}
    for (n, d), (x, y, _) in samples.items():
        arrays[f"n{n}d{d}_x"], arrays[f"n{n}d{d}_y"] = x, y
    np.savez(folder / "samples.npz", **arrays)
    return folder / "samples.npz"


def first_call_peaks(bmi_python: str, samples: dict) -> dict:
    """(sample, metric) -> (benchmark-mi's, ours) first-call peaks, each in a fresh process."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = save_samples(samples, Path(tmp))
        return {(name, metric): (first_call_peak(bmi_python, "bmi", path, name, metric),
                                 first_call_peak(sys.executable, "ours", path, name, metric))
                for name in (f"n{n}d{d}" for n, d in samples)
                for metric in ("euclidean", "chebyshev")}


# Runs in a fresh interpreter: the peak memory of one estimator's first call on one sample,
# above what the process held before it (imports and data loaded); see peak_memory.py.
FIRST_CALL_CHILD = r"""
import json, sys
import numpy as np
kind, path, name, metric, k, here, root = sys.argv[1:8]
sys.path[:0] = [here, root]
from peak_memory import PeakMemory
data = np.load(path)
x, y = data[name + "_x"], data[name + "_y"]
if kind == "bmi":
    import bmi
    est = bmi.estimators.KSGEnsembleFirstEstimator(neighborhoods=(int(k),), standardize=True,
                                                   metric_x=metric)
else:
    from mistmodel.estimators import KSG
    est = KSG(k=int(k), metric=metric)
with PeakMemory() as peak:
    est.estimate(x, y)
print(json.dumps({"mib": peak.mib}))
"""


def first_call_peak(python: str, kind: str, path: Path, name: str, metric: str) -> float | None:
    """Peak memory (MiB, a lower bound) of ``kind``'s first KSG call in a fresh ``python``."""
    import subprocess

    here = Path(__file__).resolve().parent
    done = subprocess.run([python, "-c", FIRST_CALL_CHILD, kind, str(path), name, metric,
                           str(K), str(here), str(here.parent)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["mib"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="cap on timed calls per cell")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--bmi-python", default=None,
                        help="a Python interpreter with benchmark-mi installed, to compare KSG against")
    args = parser.parse_args()

    import scipy
    import sklearn
    import torch

    print("Baseline estimators: seconds per estimate (median wall time, one call)")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"torch {torch.__version__}, sklearn {sklearn.__version__}; {os.cpu_count()} CPUs; "
        f"CUDA available: {torch.cuda.is_available()}"
    )
    print(f"data: dense Gaussian, all correlations {CORRELATION}, dx = dy = d\n")

    results: dict[str, list[dict]] = {"estimators": [], "ksg_vs_bmi": [], "sklearn_extra": []}
    samples = {cfg: dense_gaussian(*cfg, seed=i) for i, cfg in enumerate(CONFIGS)}
    ksg_seconds: dict[tuple[int, int, str], float] = {}

    header = (f"{'n':>5} {'d':>3}  {'estimator':<14} {'s/estimate':>11} {'peak MiB':>9} "
              f"{'estimate':>9} {'truth':>7}  notes")
    print(header)
    print("-" * len(header))
    for (n, d), (x, y, truth) in samples.items():
        for label, est, repeats in estimators():
            reps = repeats if args.repeats is None else min(repeats, args.repeats)
            value = est.estimate(x, y)
            info = est.last_info
            secs = seconds_per_call(lambda: est.estimate(x, y), reps)
            peak = peak_of_call(lambda: est.estimate(x, y))
            if isinstance(est, KSG):
                note = f"k={est.k}, {info['algorithm_used']}"
                ksg_seconds[(n, d, est.metric)] = secs
            elif isinstance(est, CCA):
                note = f"shrinkage {info['shrinkage_used']:.3f}"
            else:
                note = (
                    f"batch {info['batch_size_used']}, {info['steps']} steps "
                    f"(best {info['best_step']}), hidden {info['hidden']}, {info['device']}"
                )
            print(f"{n:>5} {d:>3}  {label:<14} {secs:>11.4f} {fmt(peak):>9} {value:>9.3f} "
                  f"{truth:>7.3f}  {note}")
            results["estimators"].append(
                {"n": n, "d": d, "estimator": label, "seconds": secs, "peak_mib": peak,
                 "estimate": value,
                 "truth": truth, "settings": est.settings(), "info": info}
            )

    print("\nKSG against benchmark-mi's KSG (same k, same norm, standardised, one k); the "
          "peak memory of each one's first call\n  in a fresh process (above what the process "
          "held before it; see benchmarks/peak_memory.py)")
    bmi, reason = (None, "") if args.bmi_python else import_bmi()
    timings = None
    if args.bmi_python:
        timings = bmi_in_other_python(args.bmi_python, samples, repeats=21)
        print(f"  benchmark-mi timed in {args.bmi_python}")
    elif bmi is not None:
        timings = {}
        for (n, d), (x, y, _) in samples.items():
            for metric in ("euclidean", "chebyshev"):
                theirs = bmi.estimators.KSGEnsembleFirstEstimator(
                    neighborhoods=(K,), standardize=True, metric_x=metric
                )
                timings[(f"n{n}d{d}", metric)] = {
                    "seconds": seconds_per_call(lambda: theirs.estimate(x, y), 21),
                    "estimate": float(theirs.estimate(x, y))}
    if timings is None:
        print(f"  skipped: the benchmark-mi package (import name bmi) cannot be imported ({reason}).")
        print("  Install benchmark-mi (it needs JAX) here, or pass --bmi-python, to measure the ratio.")
        n, d = BMI_QUOTED_CONFIG
        ours = ksg_seconds[(n, d, "euclidean")]
        print(
            f"  For reference only, not measured here: the issue quotes about "
            f"{BMI_QUOTED_SECONDS} s for benchmark-mi's KSG at n = {n}, {d} + {d} dims; "
            f"KSG euclidean took {ours:.4f} s on that configuration above, "
            f"{BMI_QUOTED_SECONDS / ours:.1f}x less than the quoted figure."
        )
        results["ksg_vs_bmi"].append({"skipped": reason, "quoted_bmi_seconds": BMI_QUOTED_SECONDS,
                                      "ours_seconds": ours, "config": [n, d]})
    else:
        peaks = first_call_peaks(args.bmi_python or sys.executable, samples)
        for (n, d), (x, y, _) in samples.items():
            for metric in ("euclidean", "chebyshev"):
                theirs = timings[(f"n{n}d{d}", metric)]
                t_theirs, v_theirs = theirs["seconds"], theirs["estimate"]
                m_theirs, m_ours = peaks[(f"n{n}d{d}", metric)]
                t_ours = ksg_seconds[(n, d, metric)]
                v_ours = max(0.0, KSG(k=K, metric=metric).estimate(x, y))  # bmi clips at 0
                print(
                    f"  n={n:>4} d={d:>2} {metric:<9}: bmi {t_theirs:.4f} s, ours {t_ours:.4f} s, "
                    f"ratio {t_theirs / t_ours:5.1f}x; first call's peak bmi {fmt(m_theirs)} "
                    f"MiB, ours {fmt(m_ours)} MiB, ratio {ratio(m_ours, m_theirs)}; "
                    f"estimates {v_theirs:.4f} vs {v_ours:.4f}"
                )
                results["ksg_vs_bmi"].append(
                    {"n": n, "d": d, "metric": metric, "bmi_seconds": t_theirs,
                     "ours_seconds": t_ours, "ratio": t_theirs / t_ours,
                     "bmi_first_call_mib": m_theirs, "ours_first_call_mib": m_ours,
                     "bmi_estimate": v_theirs, "ours_estimate": v_ours}
                )

    print("\nKSG euclidean brute force: distances from matrix products vs from differences "
          "(seconds per estimate and peak memory of one; the library switches at dx + dy >= "
          f"{ksg_module._GRAM_FROM_DIM})")
    gram_from = ksg_module._GRAM_FROM_DIM
    results["ksg_brute_strategies"] = []
    for n, d in [(500, 2), (500, 3), (500, 4), (500, 8), (500, 32), (2000, 4), (2000, 32)]:
        x, y, _ = dense_gaussian(n, d, seed=100 + d)
        est = KSG(k=K, metric="euclidean", algorithm="brute")
        times, peaks = {}, {}
        try:
            for label, switch in (("products", 2), ("differences", 10**9)):
                ksg_module._GRAM_FROM_DIM = switch
                times[label] = seconds_per_call(lambda: est.estimate(x, y), 30)
                peaks[label] = peak_of_call(lambda: est.estimate(x, y))
        finally:
            ksg_module._GRAM_FROM_DIM = gram_from
        print(f"  n={n:>4} d={d:>2}+{d:<2}: products {times['products']:.4f} s, differences "
              f"{times['differences']:.4f} s, ratio {times['differences'] / times['products']:.2f}x; "
              f"peak {fmt(peaks['products'])} / {fmt(peaks['differences'])} MiB, ratio "
              f"{ratio(peaks['products'], peaks['differences'])}")
        results["ksg_brute_strategies"].append(
            {"n": n, "d": d, **times, "peak_mib": peaks})

    print(
        "\nExtra (not the same quantity as above): scikit-learn mutual_info_regression, "
        "a KSG for one target column,\n  against KSG(chebyshev) on the first coordinate "
        "of X and of Y only (1 + 1 dims)"
    )
    from sklearn.feature_selection import mutual_info_regression

    for (n, d), (x, y, _) in samples.items():
        x1, y1 = x[:, :1], y[:, :1]
        sk = lambda: mutual_info_regression(x1, y1[:, 0], n_neighbors=K, random_state=0)  # noqa: E731
        ours = KSG(k=K)
        t_sk = seconds_per_call(sk, 30)
        t_ours = seconds_per_call(lambda: ours.estimate(x1, y1), 30)
        m_sk = peak_of_call(sk)
        m_ours = peak_of_call(lambda: ours.estimate(x1, y1))
        v_sk = float(sk()[0])
        v_ours = ours.estimate(x1, y1)
        print(
            f"  n={n:>4} (from d={d:>2}): sklearn {t_sk:.4f} s, ours {t_ours:.4f} s, ratio {t_sk / t_ours:5.1f}x; "
            f"peak sklearn {fmt(m_sk)} MiB, ours {fmt(m_ours)} MiB, ratio {ratio(m_ours, m_sk)}; "
            f"estimates {v_sk:.4f} vs {v_ours:.4f} (truth {-0.5 * math.log(1 - CORRELATION**2):.4f})"
        )
        results["sklearn_extra"].append(
            {"n": n, "sklearn_seconds": t_sk, "ours_seconds": t_ours,
             "sklearn_peak_mib": m_sk, "ours_peak_mib": m_ours,
             "sklearn_estimate": v_sk, "ours_estimate": v_ours}
        )

    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=float))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
