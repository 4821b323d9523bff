"""Mutual information between every pair of columns (or column groups) of a table.

    from mistmodel.matrix import mi_matrix, plot_mi_matrix
    mi = mi_matrix(df)                                   # MIST, every pair of columns
    mi = mi_matrix(df, groups={"pos": ["x", "y"], "speed": ["v"]}, estimator=KSG())
    res = mi_matrix(df, permutations=999)                # res.mi, res.p_value, res.p_value_adjusted
    plot_mi_matrix(mi)

The table is a 2-D numpy array, a pandas DataFrame or an xarray Dataset
(:mod:`mistmodel.tabular`).  The result is an ``xarray.DataArray`` with dims
``("variable_1", "variable_2")``, both indexed by the column (or group) names, symmetric,
in nats.  The diagonal is NaN: I(X;X) is the entropy of X, infinite for a continuous
variable, and no estimator here estimates it.  ``attrs`` hold the estimator's name, its
settings as a JSON string (netCDF attributes cannot hold dicts), the groups as JSON, the
units, ``permutations`` and ``seed``.

Each pair is estimated once, with the variable whose label sorts first as X: an
estimator need not be exactly symmetric in X and Y (MIST is not), and so the values do not
depend on the order of the table's columns.

``permutations=P > 0`` also tests each pair for independence by permuting the rows of its
second variable (the test of :mod:`mistmodel.independence`, with its exact level); the
result is then an ``xarray.Dataset`` with ``mi`` and ``p_value``
(``(1 + #{null >= observed}) / (1 + P)``, NaN on the diagonal; an infinite estimate gets
the smallest p-value unless its permuted copies are infinite too, a NaN one NaN and a
warning naming the pair).  All pairs share the same ``P`` row permutations, drawn from
``seed``.  With many pairs some independent ones come out below any alpha by chance (five
tables of 25 independent columns, n = 300, CCA, 99 permutations: 85 of 1,500 pairs at
p <= 0.05), so the Dataset also holds ``p_value_adjusted``, the p-values adjusted over all
pairs at once (:func:`~mistmodel.independence.adjusted_p_values`; none of the 85 stays
below 0.05).  ``adjust="holm"``, the default, bounds the chance of declaring any
independent pair dependent; ``"bh"`` the expected share of independent pairs among those
declared dependent.  The heatmap hatches pairs by it.  Holm's smallest adjusted p-value is
``pairs / (1 + P)``, so it needs ``P >= pairs / alpha`` permutations to declare any pair
dependent; an :class:`~mistmodel.caller_warnings.AdjustedLevelWarning` says so where
``P`` is fewer.

An estimator with ``estimate_batch`` (MIST) gets all pairs, and their permuted copies, in
batched calls; any other estimator is called pair by pair.  A progress bar (tqdm, on
stderr) is shown for more than ``AUTO_PROGRESS_PAIRS`` pairs unless ``progress=False``.

Refused, each with one ``ValueError`` naming the culprit: a column in two groups, an
empty group, an unknown column, a constant column (it carries no information: leave it
out), NaN or an infinite value, fewer than two variables, fewer rows than the estimator
needs.
"""
from __future__ import annotations

import json
import math
import numbers
from contextlib import nullcontext
from itertools import chain
from typing import Any, Mapping, Sequence

import numpy as np

from .estimators.base import _json_ready, check_seed
from .independence import (ADJUSTMENTS, Permutations, _chunks, _estimator_name,
                           _permutations, adjusted_p_values, copies_of, permutation_p_value, tie_tolerance,
                           warn_nan_null)
from . import cross_check
from .caller_warnings import (AdjustedLevelWarning, CrossCheckWarning, DiscreteBiasWarning, OutOfRangeWarning,
                              SmallSampleWarning, TiedDataWarning, sample_labels, silenced,
                              warn)
from .tabular import (column_groups, constant_column_names, table_columns, ties_by_name,
                      warned_once)

__all__ = ["mi_matrix", "plot_mi_matrix", "figure_size", "AUTO_PROGRESS_PAIRS"]

#: More pairs than this show a progress bar when ``progress=None``.
AUTO_PROGRESS_PAIRS = 100
#: Samples handed to one ``estimate_batch`` call (the estimator cuts them further).
BATCH_SAMPLES = 256
DIMS = ("variable_1", "variable_2")


def mi_matrix(data: Any, estimator: Any = None, groups: Mapping[str, Sequence[Any]] | None = None,
              permutations: int = 0, seed: int = 0, progress: bool | None = None,
              adjust: str = "holm"):
    """The MI of every pair of variables of ``data`` (see the module docs).

    Parameters
    ----------
    data : numpy array ``(n, p)``, pandas DataFrame or xarray Dataset.
    estimator : object with ``estimate(x, y)`` (and optionally ``estimate_batch``);
        ``None`` loads the shipped MIST checkpoint.
    groups : ``{name: [column, ...]}``: each group is one (multivariate) variable;
        columns in no group are left out.  ``None``: every column is a variable.
    permutations : number of row permutations for the independence p-values (0: none).
    seed : seed of the permutations.
    progress : show a progress bar; ``None``: when there are more than
        ``AUTO_PROGRESS_PAIRS`` pairs.
    adjust : how ``p_value_adjusted`` adjusts the p-values for testing every pair:
        "holm" (family-wise error) or "bh" (false discovery rate).
    """
    import xarray as xr

    count = _check_count(permutations)
    seed = check_seed(seed)
    if adjust not in ADJUSTMENTS:
        raise ValueError(f"adjust must be one of {', '.join(map(repr, ADJUSTMENTS))}; "
                         f"got {adjust!r}")
    names, values = table_columns(data)
    variables = column_groups(names, groups)
    if len(variables) < 2:
        raise ValueError(f"an MI matrix needs at least two variables; got {len(variables)}")
    if values.shape[0] < 2:
        raise ValueError(f"an MI matrix needs at least 2 rows; the table has {values.shape[0]}")
    used = [j for _, cols in variables for j in cols]
    constant = constant_column_names(names, values, used)
    if constant:
        raise ValueError(f"column {constant[0]!r} is constant: it carries no information "
                         "about any other column; leave it out"
                         + (f" ({len(constant)} constant columns)" if len(constant) > 1 else ""))
    if estimator is None:
        from .mist import MIST
        estimator = MIST.load()
    if not callable(getattr(estimator, "estimate", None)):
        raise TypeError(f"estimator must have an estimate(x, y) method; got "
                        f"{type(estimator).__name__}")
    min_rows = int(getattr(estimator, "min_rows", 2))
    if values.shape[0] < min_rows:
        raise ValueError(f"{_estimator_name(estimator)} needs at least {min_rows} rows; the table has "
                         f"{values.shape[0]}")

    blocks = [np.ascontiguousarray(values[:, cols]) for _, cols in variables]
    labels = [name for name, _ in variables]
    pairs = ordered_pairs(labels)
    perms = _permutations(values.shape[0], count, seed)
    show = len(pairs) > AUTO_PROGRESS_PAIRS if progress is None else bool(progress)
    with ties_by_name(estimator, list(zip(labels, blocks))), warned_once("mi_matrix"):
        stats = _pair_statistics(estimator, blocks, pairs, perms, show, labels)

    mi = np.full((len(blocks), len(blocks)), np.nan)
    pv, adjusted = np.full_like(mi, np.nan), np.full_like(mi, np.nan)
    tolerance = tie_tolerance(estimator)
    for (i, j), row in zip(pairs, stats):
        mi[i, j] = mi[j, i] = row[0]
        if count:
            pv[i, j] = pv[j, i] = permutation_p_value(row[0], row[1:], tolerance)
    if count:
        tested = ~np.isnan(stats[:, 0])           # a NaN statistic has a NaN p-value
        warn_nan_null(stats[tested, 1:], f"mi_matrix: {_estimator_name(estimator)}",
                      "the pairs")
        _warn_unreachable(len(pairs), count, adjust)
        rows, cols = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
        adjusted[rows, cols] = adjusted[cols, rows] = adjusted_p_values(pv[rows, cols], adjust)
    failed = [f"{labels[i]!r} and {labels[j]!r}" for (i, j), row in zip(pairs, stats)
              if np.isnan(row[0])]
    if failed:
        warn(f"mi_matrix: {_estimator_name(estimator)} returned NaN for the variables "
             f"{'; '.join(failed[:5])}{' and more' if len(failed) > 5 else ''}: their MI "
             "and p-value are NaN", RuntimeWarning)
    attrs = {"estimator": _estimator_name(estimator),
             "estimator_settings": json.dumps(_json_ready(_settings(estimator))),
             "groups": json.dumps({name: [names[j] for j in cols] for name, cols in variables}),
             "units": "nats", "permutations": count, "seed": seed,
             "diagonal": "NaN: I(X;X) is the entropy of X, not estimated"}
    coords = {DIMS[0]: labels, DIMS[1]: labels}
    mi_da = xr.DataArray(mi, dims=DIMS, coords=coords, name="mi", attrs=attrs)
    if not count:
        return mi_da
    p_da = xr.DataArray(pv, dims=DIMS, coords=coords, name="p_value",
                        attrs={"test": "permutation test of independence, rows of the "
                                       "variable whose label sorts second permuted",
                               "formula": "(1 + #{null >= observed}) / (1 + permutations)"})
    adjusted_da = xr.DataArray(adjusted, dims=DIMS, coords=coords, name="p_value_adjusted",
                               attrs={"adjustment": adjust, "pairs": len(pairs)})
    return xr.Dataset({"mi": mi_da, "p_value": p_da, "p_value_adjusted": adjusted_da},
                      attrs=attrs)


def ordered_pairs(labels: Sequence[str]) -> list[tuple[int, int]]:
    """Every pair of variables, each as ``(i, j)`` in the order of its labels: MIST is not
    exactly symmetric in X and Y, and so reordering a table's columns leaves every value as
    it was."""
    k = len(labels)
    return [(i, j) if labels[i] <= labels[j] else (j, i)
            for i in range(k) for j in range(i + 1, k)]


def _pair_statistics(estimator: Any, blocks: list[np.ndarray], pairs: list[tuple[int, int]],
                     perms: Permutations, show: bool, labels: list[str]) -> np.ndarray:
    """Per pair: the observed estimate, then one per permutation: ``(pairs, 1 + P)``;
    ``labels`` name the variables in the cross-check's warning."""
    from tqdm.auto import tqdm

    jobs = ((i, j, order) for i, j in pairs for order in chain((None,), perms))
    per_pair = 1 + len(perms)
    out = np.empty(len(pairs) * per_pair)
    batched = callable(getattr(estimator, "estimate_batch", None))
    step = BATCH_SAMPLES if batched else 1
    name = _estimator_name(estimator)
    done = 0
    with tqdm(total=len(pairs), disable=not show, desc="MI pairs", unit="pair") as bar:
        for chunk in _chunks(jobs, step):
            got = np.empty(len(chunk))
            for observed in (True, False):
                at = [k for k, (_, _, order) in enumerate(chunk) if (order is None) == observed]
                if not at:
                    continue
                samples = [(blocks[chunk[k][0]], blocks[chunk[k][1]] if observed
                            else blocks[chunk[k][1]][chunk[k][2]]) for k in at]
                # the permuted copies would only repeat the observed pairs' warnings;
                # MIST's cross-check runs on the observed pairs, by name, at the end
                # a warning about one observed pair of the batch names its variables
                named = sample_labels([
                    f"mi_matrix: variables {labels[chunk[k][0]]!r} and "
                    f"{labels[chunk[k][1]]!r}" for k in at]) if batched and observed else None
                with silenced(CrossCheckWarning, *(() if observed else (
                        TiedDataWarning, DiscreteBiasWarning, SmallSampleWarning,
                        OutOfRangeWarning))), \
                        (nullcontext() if observed else copies_of(f"mi_matrix: {name}",
                                                                  "a pair")), \
                        (named or nullcontext()):
                    got[at] = (np.asarray(estimator.estimate_batch(samples),
                                          dtype=np.float64).ravel() if batched
                               else [estimator.estimate(x, y) for x, y in samples])
            out[done:done + len(got)] = got
            bar.update((done + len(got)) // per_pair - done // per_pair)
            done += len(got)
    out = out.reshape(len(pairs), per_pair)
    cross_check.warn_by_name(estimator, "mi_matrix",
                             [f"variables {labels[i]!r} and {labels[j]!r}" for i, j in pairs],
                             [(blocks[i], blocks[j]) for i, j in pairs], out[:, 0],
                             progress=show)
    return out


def _warn_unreachable(pairs: int, count: int, adjust: str, alpha: float = 0.05) -> None:
    """Warn where Holm's adjusted p-values cannot come below ``alpha``."""
    if adjust == "holm" and pairs / (1 + count) > alpha:
        warn(f"mi_matrix: with {count} permutations the smallest p-value is 1 / {1 + count}, "
             f"and Holm's adjustment over {pairs} pairs multiplies it by up to {pairs}: no "
             f"p_value_adjusted can come below {alpha:g}; use permutations >= "
             f"{math.ceil(pairs / alpha) - 1}, or adjust='bh'", AdjustedLevelWarning)


def _settings(estimator: Any) -> dict[str, Any]:
    settings = getattr(estimator, "settings", None)
    return dict(settings()) if callable(settings) else {}


def _check_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"permutations must be an integer >= 0; got {value!r}")
    return int(value)


def plot_mi_matrix(mi: Any, ax: Any = None, annotate: bool | None = None,
                   alpha: float = 0.05):
    """A heatmap of an :func:`mi_matrix` result; returns the matplotlib Axes.

    ``mi``: the DataArray, or the Dataset with ``mi`` and ``p_value`` (then pairs with
    ``p_value_adjusted > alpha``, or ``p_value > alpha`` in a Dataset without it, are
    hatched as not significant; the title says which).  ``annotate``: print the values
    in the cells; ``None``: when there are at most 12 variables.  An infinite estimate is
    drawn in the colour of the largest finite one and marked "inf"; the diagonal and NaN
    estimates are left blank.
    """
    from matplotlib.patches import Rectangle

    p_value, tested = None, ""
    if hasattr(mi, "data_vars"):
        for key in ("p_value_adjusted", "p_value"):
            if key in mi:
                p_value = mi[key].values
                how = mi[key].attrs.get("adjustment") if key == "p_value_adjusted" else None
                tested = f"\nhatched: p > {alpha:g}" + (f" ({how}-adjusted)" if how else "")
                break
        mi = mi["mi"]
    values = np.asarray(mi.values, dtype=np.float64)
    infinite = np.isposinf(values)
    top = np.nanmax(values[np.isfinite(values)]) if np.isfinite(values).any() else 0.0
    shown = np.where(infinite, top, values)
    labels = [str(v) for v in mi.coords[mi.dims[0]].values]
    k = len(labels)
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(figsize=figure_size(k))
    image = ax.imshow(np.ma.masked_invalid(shown), cmap="viridis", vmin=0.0)
    ax.figure.colorbar(image, ax=ax, label=f"I(X;Y) [{mi.attrs.get('units', 'nats')}]")
    ax.set_xticks(range(k), labels, rotation=90)
    ax.set_yticks(range(k), labels)
    ax.set_title(f"mutual information ({mi.attrs.get('estimator', '')}){tested}")
    if annotate if annotate is not None else k <= 12:
        for i in range(k):
            for j in range(k):
                if np.isfinite(shown[i, j]):
                    text = "inf" if infinite[i, j] else f"{values[i, j]:.2f}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=8,
                            color="black" if shown[i, j] > 0.6 * top else "white")
    if p_value is not None:
        weak = np.argwhere(p_value > alpha)
        for i, j in weak:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//",
                                       edgecolor="grey", linewidth=0))
    return ax


def figure_size(variables: int) -> tuple[float, float]:
    """Width and height in inches of a heatmap of ``variables`` rows and columns."""
    side = min(12.0, 2.0 + 0.35 * variables)
    return side + 1.5, side
