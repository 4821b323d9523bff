"""Feature ranking by MI: mutual_info_scores (its default, MIST, KSG) against scikit-learn.

    python benchmarks/bench_selection.py                 # markdown tables on stdout
    python benchmarks/bench_selection.py --seeds 3 --n 200 1000

Synthetic tables with 20 features of which a known few are relevant; the score of a
method on a table is the ROC AUC of its MI scores separating relevant from irrelevant
features (1 = every relevant feature ranked above every irrelevant one), averaged over
seeds.  Then the top five features of each method on scikit-learn's bundled diabetes
(regression) and breast cancer (classification) data.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mistmodel import MIST
from mistmodel.estimators import KSG
from mistmodel.selection import mutual_info_scores

FEATURES = 20


def nonlinear(rng, n):
    X = rng.standard_normal((n, FEATURES))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + np.abs(X[:, 2]) + 0.3 * rng.standard_normal(n)
    return X, y, [0, 1, 2]


def interacting(rng, n):
    X = rng.standard_normal((n, FEATURES))
    y = X[:, 0] * X[:, 1] + np.sign(X[:, 2] * X[:, 3]) + 0.3 * rng.standard_normal(n)
    return X, y, [0, 1, 2, 3]


def redundant(rng, n):
    X = rng.standard_normal((n, FEATURES))
    X[:, 1] = X[:, 0] + 0.3 * rng.standard_normal(n)
    X[:, 2] = np.tanh(X[:, 0]) + 0.3 * rng.standard_normal(n)
    y = X[:, 0] + 0.5 * X[:, 3] + 0.5 * rng.standard_normal(n)
    return X, y, [0, 1, 2, 3]


def heavy_tailed(rng, n):
    X = rng.standard_t(1.5, (n, FEATURES))
    y = X[:, 0] + np.tanh(X[:, 1]) + 0.5 * rng.standard_t(1.5, n)
    return X, y, [0, 1]


def classes(rng, n):
    X = rng.standard_normal((n, FEATURES))
    score = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.3 * rng.standard_normal(n)
    y = np.digitize(score, [-0.5, 0.5])            # three classes
    return X, y, [0, 1, 2]


TABLES = {"nonlinear": nonlinear, "interacting": interacting, "redundant": redundant,
          "heavy-tailed": heavy_tailed, "3 classes": classes}


def methods(mist, discrete: bool, seed: int):
    ours = partial(mutual_info_scores, discrete_target=discrete, random_state=seed)
    sk = mutual_info_classif if discrete else mutual_info_regression
    # default: estimator=None, MIST for a continuous target, KSG(discrete="auto") for classes
    default = partial(ours, estimator=KSG(discrete="auto") if discrete else mist)
    return {"default": default, "MIST": partial(ours, estimator=mist),
            "KSG (ours)": partial(ours, estimator=KSG()), "sklearn": partial(sk, random_state=seed)}


def synthetic(mist, sizes, seeds) -> None:
    print("| table | n | " + " | ".join(methods(mist, False, 0)) + " |")
    print("|---|---|" + "---|" * 4)
    seconds: dict[str, float] = {}
    for name, make in TABLES.items():
        for n in sizes:
            aucs: dict[str, list[float]] = {}
            for seed in range(seeds):
                X, y, relevant = make(np.random.default_rng(seed), n)
                truth = np.isin(np.arange(FEATURES), relevant)
                for method, score in methods(mist, name == "3 classes", seed).items():
                    start = time.perf_counter()
                    scores = score(X, y)
                    seconds[method] = seconds.get(method, 0.0) + time.perf_counter() - start
                    aucs.setdefault(method, []).append(roc_auc_score(truth, scores))
            cells = " | ".join(f"{np.mean(v):.3f}" for v in aucs.values())
            print(f"| {name} | {n} | {cells} |")
    print("\ntotal seconds per method: "
          + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items()))


def bundled(mist) -> None:
    for loader, discrete in ((load_diabetes, False), (load_breast_cancer, True)):
        data = loader()
        print(f"\n{loader.__name__.removeprefix('load_')} (n = {data.data.shape[0]}, "
              f"{data.data.shape[1]} features): top five by score")
        for method, score in methods(mist, discrete, 0).items():
            scores = score(data.data, data.target)
            top = np.argsort(scores)[::-1][:5]
            shown = ", ".join(f"{data.feature_names[j]} ({scores[j]:.3f})" for j in top)
            print(f"- {method}: {shown}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--n", type=int, nargs="+", default=[200, 1000])
    args = p.parse_args()
    mist = MIST.load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # MIST's out-of-range / tied-data notices
        synthetic(mist, args.n, args.seeds)
        bundled(mist)


if __name__ == "__main__":
    main()
