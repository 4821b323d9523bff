"""MIST's estimates cross-checked against KSG on a subsample.

MIST reads a sample through the ranks of its columns and was trained on families whose
dependence is monotone or close to it.  Where the dependence folds - Y a periodic,
piecewise or saw-tooth function of X, an invertible but not monotone map of a column -
it reads much less than the MI, often none at all: on a bivariate Gaussian at rho = 0.95
(1.16 nats) with Y's halves of [-2, 2) swapped (``mistgen``'s ``fold``), an invertible
map that keeps the MI, it reads 0.000, and 0.08-0.11 with four pieces reversed (``saw``;
``benchmarks/non_monotone.py``).  KSG, which counts neighbours, does not care about the
shape.  MIST also reads low, at every n, where the dependence is strong in few columns
(a bivariate Gaussian at rho = 0.99, 1.96 nats, reads about 1.53;
``benchmarks/strong_gaussian.py``) or has sharp edges (Y = X plus uniform noise:
28-90% of the MI; ``benchmarks/additive_noise.py``), where KSG on a few hundred rows is
close.

The conditional network does the same with I(X;Y|Z): with Y folded, a Gaussian chain
whose I(X;Y|Z) is 0.347 reads 0.026 (``benchmarks/non_monotone.py``).  So each estimate
of a sample with at least :data:`MIN_ROWS` rows and at most :data:`MAX_DIMS` columns in
all (where KSG is cheap and not biased far down) is compared with KSG (k = 5; for
I(X;Y|Z) its Frenzel-Pompe form) on :data:`ROWS` evenly spaced rows of the sample; where KSG reads at
least :func:`margin` nats more than MIST and at least :func:`ratio` times MIST's value
(twice it below :data:`RATIO_FROM` nats, :data:`RATIO` times from there; below
:data:`RATIO_FROM` never more than ``RATIO * RATIO_FROM`` nats: :func:`threshold`),
:func:`first_miss` reports it and MIST raises a
:class:`~mistmodel.caller_warnings.CrossCheckWarning`.  The margin is 0.1 nats from 400
rows and ``2 / sqrt(rows)`` below (0.2 at 100 rows): KSG's own noise at independence is
about 0.01-0.02 nats on 500 rows, but on 100-200 rows of weakly dependent samples it read
up to 0.13 nats more than MIST where MIST was right.  The factor keeps quiet where both see
the dependence and differ by their biases and noise: KSG's spread on 500 rows is 0.035-0.045
nats at 0.2-0.3 nats, and with 1.15 at every value it warned on up to 25 of 200 bivariate
Gaussians at rho 0.65 (0.275 nats), several of which MIST read within 0.05.  From 1 nat a
factor of two missed strong dependence in few columns, which 1.15 catches.  Samples with a
heavily tied column are left out: KSG's tie-breaking noise inflates them, and MIST warns about them anyway
(``TiedDataWarning``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .caller_warnings import (CrossCheckWarning, SmallSampleWarning, TiedDataWarning,
                              is_silenced, silenced, warn)
from .estimators.base import constant_columns, tied_columns
from .estimators.ksg import KSG

__all__ = ["ADVICE", "ROWS", "MIN_ROWS", "MAX_DIMS", "MARGIN", "RATIO", "RATIO_FROM",
           "first_miss", "margin", "ratio", "threshold",
           "misses", "subsample_rows", "warn_by_name"]

ROWS = 500        # rows KSG reads
MIN_ROWS = 100    # below this KSG's noise is too large for the margin
MAX_DIMS = 8      # dx + dy: above it KSG is biased down and slower
MARGIN = 0.1      # nats by which KSG must exceed MIST from 400 rows (and by ratio())
RATIO = 1.15      # the factor by which it must exceed it from RATIO_FROM nats
RATIO_FROM = 1.0  # below this estimate, the factor is 2
# what a CrossCheckWarning says after the numbers
ADVICE = ("the dependence may have a shape MIST does not see (not monotone: periodic, folded "
          "or piecewise; sharp-edged, as Y = X plus uniform noise) or be stronger than MIST "
          "reads in few columns (from about 1.5 nats), where it reads less than the MI, or "
          "none. Use KSG for such data (see the known limitations in docs/mist.md); "
          "MIST.load(cross_check=False), or --no-cross-check on the command line, turns this "
          "check off.")


def margin(rows: int) -> float:
    """Nats by which KSG on ``rows`` rows must exceed MIST: ``max(MARGIN, 2 / sqrt(rows))``."""
    return max(MARGIN, 2.0 / np.sqrt(rows))


def ratio(value: float) -> float:
    """The factor by which KSG must exceed MIST's ``value``: 2 below :data:`RATIO_FROM`
    nats, :data:`RATIO` from there."""
    return RATIO if value >= RATIO_FROM else 2.0


def threshold(value: float, rows: int) -> float:
    """What KSG on ``rows`` rows must read for MIST's ``value`` to be a miss: at least
    :func:`margin` more and :func:`ratio` times as much, except that below
    :data:`RATIO_FROM` no more than ``RATIO * RATIO_FROM`` is asked, so that a lower
    ``value`` never needs a higher reading to warn (twice 0.95 nats would ask more than
    1.15 times 1 nat)."""
    scaled = ratio(value) * value
    if value < RATIO_FROM:
        scaled = min(scaled, RATIO * RATIO_FROM)
    return max(value + margin(rows), scaled)


def subsample_rows(n: int, rows: int = ROWS) -> np.ndarray:
    """``min(n, rows)`` evenly spaced row indices from ``0`` to ``n - 1``."""
    return np.unique(np.linspace(0, n - 1, min(n, rows)).round().astype(np.int64))


def misses(samples: Sequence[tuple[np.ndarray, ...]], values: Sequence[float],
           first_only: bool = False, progress: bool = False) -> list[tuple[int, float, int]]:
    """``(index, KSG's estimate, rows it read)`` of each sample where KSG reads clearly
    more than ``values`` (module notes); with ``first_only``, of the first one only.
    A sample is ``(x, y)``, read as I(X;Y), or ``(x, y, z)``, read as I(X;Y|Z) (KSG's
    Frenzel-Pompe form; ``z`` counts towards :data:`MAX_DIMS`).  Constant columns are left
    out first; a sample KSG refuses (a column spanning more than float64 resolves) is
    skipped, not an error."""
    from tqdm.auto import tqdm

    ksg, found = KSG(k=5), []
    for i, (parts, value) in enumerate(tqdm(list(zip(samples, values)), disable=not progress,
                                            desc="cross-check", unit="sample")):
        parts = [np.delete(a, constant_columns(a), axis=1) for a in parts]
        n = parts[0].shape[0]
        if n < MIN_ROWS or not all(a.shape[1] for a in parts) or \
                sum(a.shape[1] for a in parts) > MAX_DIMS or any(tied_columns(a) for a in parts):
            continue
        rows = subsample_rows(n)
        try:
            with silenced(TiedDataWarning, SmallSampleWarning):
                reference = float(ksg.estimate(*(a[rows] for a in parts)) if len(parts) == 2
                                  else ksg.estimate_conditional(*(a[rows] for a in parts)))
        except ValueError:
            continue
        if reference >= threshold(float(value), rows.size):
            found.append((i, reference, rows.size))
            if first_only:
                break
    return found


def first_miss(samples: Sequence[tuple[np.ndarray, ...]], values: Sequence[float]
               ) -> tuple[int, float, int] | None:
    """The first of :func:`misses`, else None."""
    found = misses(samples, values, first_only=True)
    return found[0] if found else None


def warn_by_name(estimator: Any, who: str, labels: Sequence[str],
                 samples: Sequence[tuple[np.ndarray, np.ndarray]], values: Sequence[float],
                 progress: bool = False) -> None:
    """For callers that split a table into pairs of variables (``labels`` names each
    sample): one :class:`CrossCheckWarning` naming every pair where KSG reads clearly
    more than ``estimator``'s ``values``, when the estimator cross-checks (MIST's
    ``cross_check``) and the warning is not silenced."""
    if not getattr(estimator, "cross_check", False) or is_silenced(CrossCheckWarning):
        return
    found = misses(samples, values, progress=progress)
    if not found:
        return
    shown = [f"{labels[i]} ({float(values[i]):.3f} against {ref:.3f} nats)"
             for i, ref, _ in found[:5]]
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    warn(f"{who}: {getattr(estimator, 'name', 'the estimator')} reads less dependence "
         f"than KSG (k = 5, on up to {ROWS} rows) for {', '.join(shown)}{more}: {ADVICE}",
         CrossCheckWarning)
