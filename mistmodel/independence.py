"""Permutation tests of independence: any of our MI estimators, and distance correlation.

    from mistmodel.independence import independence_test
    result = independence_test(MIST.load(), x, y, n_permutations=199, seed=0)
    result.p_value                     # (1 + #{null >= statistic}) / (1 + n_permutations)

The statistic is the estimator's ``estimate(x, y)``; the null distribution is the same
estimate on ``(x, y[perm])`` for ``n_permutations`` uniformly random row permutations of
``y``. Under independence the observed sample and its permutations are exchangeable, so
``P(p_value <= alpha) <= alpha`` for every alpha, whatever the estimator and its bias: the
level is exact by construction (ties are counted against the observed statistic). An
estimator with ``estimate_batch`` (MIST) gets the observed sample and its permutations in
batched calls.

:func:`distance_correlation_test` is the same test with the squared sample distance
correlation of Szekely, Rizzo & Bakirov (2007) as the statistic: a reference for power.
It holds two ``n x n`` matrices, so it is meant for ``n`` up to a few thousand.

:func:`conditional_independence_test` tests ``X`` independent of ``Y`` given ``Z`` with a
conditional MI estimator (KSG, CCA, MIST's ``mist_cmi``) as the statistic and the local
permutation scheme of Runge (2018): each permuted sample takes row ``i``'s ``x`` from one
of the ``neighbours`` rows nearest to row ``i`` in ``Z`` (itself included), drawn without
repeats where the neighbourhoods allow (some rows repeat, about a tenth with 5
neighbours; warnings about repeated values are not raised for the copies), so the
permuted ``x`` keeps its dependence on ``Z`` and loses any on ``Y`` beyond it. Its level is approximate, not exact: it holds as
well as ``X`` given ``Z`` varies little within a neighbourhood (small ``neighbours``,
enough rows per value of ``Z``).
"""
from __future__ import annotations

import numbers
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from .caller_warnings import (CrossCheckWarning, DiscreteBiasWarning, OutOfRangeWarning,
                              PermutationLevelWarning, SmallSampleWarning, TiedDataWarning,
                              silenced, warn)
from .estimators.base import (TooFewRowsError, check_seed, check_xy, check_xyz, constant_columns,
                              kept_columns, numbered_as_given, standardize_columns)

__all__ = ["IndependenceTest", "independence_test", "conditional_independence_test",
           "local_permutations", "distance_correlation", "distance_correlation_test",
           "permutation_p_value", "adjusted_p_values"]

#: Rows x columns of the permuted copies handed to one ``estimate_batch`` call.
BATCH_CELLS = 1 << 24
#: The conditional test warns where its copies lose more than this much (nats) and this
#: share of X's linear (Gaussian) dependence on Z.  Measured with KSG(k=5), 99 copies,
#: alpha 0.05, n = 200, one X and one Y column, each 3 x (sum of Z / sqrt(dz)) + noise,
#: 100 null samples: with 3 Z columns and 5 neighbours the copies lose 0.36 nats (32%)
#: and the test rejects 17; with 2 neighbours, 0.13 nats (12%) and 9; with one Z column,
#: 0.03 nats (3%) and 7; with X and Y independent of Z, 0.00 nats and 3.
LOST_DEPENDENCE_WARN = 0.1
LOST_SHARE_WARN = 0.2
#: The copies the diagnostic looks at (the first ones: it is a mean).
LOST_DEPENDENCE_COPIES = 20


@dataclass(frozen=True)
class IndependenceTest:
    """Result of a permutation test of independence."""

    statistic: float  #: the statistic on the observed sample
    p_value: float  #: ``(1 + #{null >= statistic}) / (1 + n_permutations)``
    n_permutations: int
    estimator: str  #: name of the statistic's estimator
    null: np.ndarray = field(repr=False)  #: the statistic on each permuted sample


def _check_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"n_permutations must be an integer >= 1; got {value!r}")
    return int(value)


#: Permutations up to this many bytes in all are kept after the first pass; more are made
#: again on every pass.
KEPT_PERMUTATION_BYTES = 64 * 2**20


class Permutations:
    """``count`` uniformly random row permutations of ``n`` rows drawn from ``seed``, the
    same ones on every pass.  Up to :data:`KEPT_PERMUTATION_BYTES` they are kept after the
    first pass (an MI matrix passes over them once per pair); beyond, they are made one at a
    time on every pass, so that they are never all held at once (999 of 20,000 rows would
    take 160 MB)."""

    def __init__(self, n: int, count: int, seed: int) -> None:
        self.n, self.count, self.seed = n, count, seed
        self._kept: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._kept is not None:
            yield from self._kept
            return
        keep = self.count * self.n * np.dtype(np.int64).itemsize <= KEPT_PERMUTATION_BYTES
        made: list[np.ndarray] = []
        rng = np.random.default_rng(self.seed)
        for _ in range(self.count):
            perm = rng.permutation(self.n)
            if keep:
                made.append(perm)
            yield perm
        if keep:
            self._kept = made


def _permutations(n: int, count: int, seed: int) -> Permutations:
    return Permutations(n, count, seed)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


#: A permuted value this close to the statistic (relative, and at least this many nats)
#: counts as a tie, for an estimator without a ``tie_tolerance`` of its own: float64
#: estimators give a permuted copy equal to the sample the same value but for rounding.
#: MIST, a float32 network that reads one sample a hair differently in batches of other
#: sizes, sets 1e-6.
TIE_TOLERANCE = 1e-12


def tie_tolerance(estimator: Any) -> float:
    """The estimator's ``tie_tolerance``, else :data:`TIE_TOLERANCE`."""
    return float(getattr(estimator, "tie_tolerance", TIE_TOLERANCE))


def permutation_p_value(statistic: float, null: np.ndarray,
                        tolerance: float = TIE_TOLERANCE) -> float:
    """``(1 + #{null >= statistic}) / (1 + len(null))``, a permuted value within
    ``tolerance`` (relative, at least ``tolerance`` nats) of the statistic counting as a
    tie, and a NaN one against the statistic (both conservative); NaN for a NaN
    statistic."""
    if np.isnan(statistic):
        return float("nan")
    null = np.asarray(null, dtype=np.float64)
    if np.isfinite(statistic):
        statistic = statistic - tolerance * max(1.0, abs(statistic))
    return (1 + int(np.count_nonzero(~(null < statistic)))) / (1 + null.size)


ADJUSTMENTS = ("holm", "bh")


def adjusted_p_values(p_values: ArrayLike, method: str = "holm") -> np.ndarray:
    """p-values adjusted for testing them all at once; NaN ones are left out and stay NaN.

    ``"holm"``: Holm's step-down (1979), family-wise error: the chance that any
    independent pair is declared dependent stays below alpha, whatever the dependence
    between the tests. ``"bh"``: Benjamini & Hochberg (1995), false discovery rate: the
    expected share of independent pairs among those declared dependent stays below alpha
    (for tests that are independent or positively dependent).
    """
    if method not in ADJUSTMENTS:
        raise ValueError(f"method must be one of {', '.join(map(repr, ADJUSTMENTS))}; "
                         f"got {method!r}")
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = ~np.isnan(p)
    values = p[finite]
    if values.size:
        if method == "bh":
            from scipy.stats import false_discovery_control
            out[finite] = false_discovery_control(values, method="bh")
        else:
            order = np.argsort(values, kind="stable")
            scaled = (values.size - np.arange(values.size)) * values[order]
            adjusted = np.empty_like(values)
            adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
            out[finite] = adjusted
    return out


def warn_nan_null(null: np.ndarray, who: str, what: str) -> None:
    """Warn where some permuted copies gave NaN: they count against the statistic."""
    nan = int(np.count_nonzero(np.isnan(null)))
    if nan:
        warn(f"{who}: {nan} of {null.size} permuted copies of {what} gave NaN; they count "
             "as at least the statistic, so the p-value is conservative (larger than it "
             "would be)", RuntimeWarning)


def _result(statistic: float, null: np.ndarray, name: str,
            tolerance: float = TIE_TOLERANCE) -> IndependenceTest:
    if np.isnan(statistic) or statistic == -np.inf:
        raise ValueError(f"{name} returned {statistic} as its statistic on the sample")
    null = np.asarray(null, dtype=np.float64)
    warn_nan_null(null, name, "the sample")
    return IndependenceTest(statistic=float(statistic),
                            p_value=permutation_p_value(statistic, null, tolerance),
                            n_permutations=int(null.size), estimator=name, null=null)


def _estimator_name(estimator: Any) -> str:
    return str(getattr(estimator, "name", type(estimator).__name__))


def independence_test(estimator: Any, x: ArrayLike, y: ArrayLike, n_permutations: int = 199,
                      seed: int = 0, batch: bool = True) -> IndependenceTest:
    """Permutation test of ``X`` independent of ``Y`` with an MI estimator as the statistic.

    Parameters
    ----------
    estimator : any object with ``estimate(x, y) -> float`` (KSG, CCA, MINE, InfoNCE, MIST).
    x, y : ``(n, dx)`` and ``(n, dy)`` arrays, checked like every estimator's input.
    n_permutations : number of random row permutations of ``y`` (>= 1); the smallest
        attainable p-value is ``1 / (1 + n_permutations)``.
    seed : seed of the permutations (the estimator keeps its own seed for every call).
    batch : use the estimator's ``estimate_batch`` when it has one.
    """
    if not callable(getattr(estimator, "estimate", None)):
        raise TypeError(
            f"estimator must have an estimate(x, y) method; got {type(estimator).__name__}")
    count = _check_count(n_permutations)
    seed = check_seed(seed)
    name = _estimator_name(estimator)
    xa, ya = check_xy(x, y, int(getattr(estimator, "min_rows", 2)), who=name)
    perms = _permutations(xa.shape[0], count, seed)
    batched = batch and callable(getattr(estimator, "estimate_batch", None))
    statistic = (float(np.ravel(estimator.estimate_batch([(xa, ya)]))[0]) if batched
                 else float(estimator.estimate(xa, ya)))
    # the statistic's warnings (ties, ranges, MIST's cross-check) are about the data; its
    # permuted copies would only repeat them, and the cross-check would cost time
    with silenced(CrossCheckWarning, DiscreteBiasWarning, OutOfRangeWarning,
                  SmallSampleWarning, TiedDataWarning), \
            copies_of(name, "the sample"), same_discreteness(estimator, x=xa, y=ya):
        null = (_batched(estimator, xa, ya, perms) if batched
                else np.array([estimator.estimate(xa, ya[p]) for p in perms]))
    return _result(statistic, null, name, tie_tolerance(estimator))


@contextmanager
def copies_of(who: str, what: str) -> Iterator[None]:
    """Say so where a permuted copy of ``what``, not the user's data, has too few usable
    rows (:class:`TooFewRowsError` raised inside the block)."""
    try:
        yield
    except TooFewRowsError as err:
        raise TooFewRowsError(
            f"{who} could not estimate a permuted copy of {what} ({err}); there are too few "
            "rows per group of equal discrete values for permutations with this "
            "estimator") from err


def same_discreteness(estimator: Any, **sides: np.ndarray) -> Any:
    """A block in which the estimator takes the sample's discrete columns as those of its
    copies (KSG's ``discreteness_of``), so that every copy is estimated the same way as the
    sample; a no-op for estimators that do not decide discreteness per sample."""
    hold = getattr(estimator, "discreteness_of", None)
    return hold(**sides) if callable(hold) else nullcontext()


def _batched(estimator: Any, x: np.ndarray, y: np.ndarray, perms: Iterable[np.ndarray]
             ) -> np.ndarray:
    """One estimate per permutation of ``y``, in chunks of about BATCH_CELLS cells."""
    per_chunk = max(1, BATCH_CELLS // (x.shape[0] * (x.shape[1] + y.shape[1])))
    values = []
    for chunk in _chunks(perms, per_chunk):
        pairs = [(x, y[p]) for p in chunk]
        values.append(np.asarray(estimator.estimate_batch(pairs), dtype=np.float64).ravel())
    return np.concatenate(values)


# -- conditional independence -----------------------------------------------------------------

def local_permutations(z: ArrayLike, count: int, neighbours: int = 5, seed: int = 0
                       ) -> list[np.ndarray]:
    """``count`` row maps ``perm`` (``x[perm]`` is the permuted x) in which ``perm[i]`` is
    one of the ``neighbours`` rows nearest to row ``i`` in ``z`` (max-norm on standardised
    columns, itself included; ties broken at random), taken without repeats where possible:
    rows are visited in random order, each taking a neighbour not yet taken, else any of
    its neighbours."""
    za = np.asarray(z, dtype=np.float64)
    kept = kept_columns(za.shape[1], constant_columns(za))
    za = za[:, kept]
    if za.shape[1] == 0:
        raise ValueError("z is entirely constant: X and Y given Z is X and Y; use "
                         "independence_test")
    n = za.shape[0]
    if isinstance(neighbours, bool) or not isinstance(neighbours, numbers.Integral) \
            or not 2 <= neighbours <= n:
        raise ValueError(f"neighbours must be an integer from 2 to n = {n} (1 would leave "
                         f"every row in place); got {neighbours!r}")
    rng = np.random.default_rng(seed)
    with numbered_as_given(z=kept):
        zs = standardize_columns(za, "z")
    zs = zs + rng.uniform(-1e-10, 1e-10, size=zs.shape)      # random order among ties
    _, nbrs = cKDTree(zs).query(zs, k=int(neighbours), p=np.inf)
    nbrs = np.asarray(nbrs).reshape(n, int(neighbours))
    perms = []
    for _ in range(count):
        used = np.zeros(n, dtype=bool)
        perm = np.empty(n, dtype=np.int64)
        candidates = np.take_along_axis(nbrs, rng.random(nbrs.shape).argsort(axis=1), axis=1)
        for i in rng.permutation(n):
            row = candidates[i]
            free = row[~used[row]]
            j = free[0] if free.size else row[0]
            perm[i] = j
            used[j] = True
        perms.append(perm)
    return perms


def conditional_independence_test(estimator: Any, x: ArrayLike, y: ArrayLike, z: ArrayLike,
                                  n_permutations: int = 199, seed: int = 0,
                                  neighbours: int = 5, batch: bool = True) -> IndependenceTest:
    """Local permutation test of ``X`` independent of ``Y`` given ``Z``.

    Parameters
    ----------
    estimator : an estimator with ``estimate_conditional(x, y, z)`` (KSG, CCA, or MIST
        loaded with ``variant="mist_cmi"``); the statistic is its I(X;Y|Z) estimate.
    x, y, z : ``(n, dx)``, ``(n, dy)``, ``(n, dz)`` arrays, checked like every estimator's
        conditional input; an entirely constant ``z`` is refused.
    n_permutations : number of locally permuted copies (>= 1).
    seed : seed of the permutations.
    neighbours : size of the ``Z``-neighbourhood each row's ``x`` is drawn from: smaller
        keeps the level closer (the neighbourhoods are narrower), larger gives more
        distinct permutations.  Where the copies lose much of X's dependence on Z (many
        Z columns, strong dependence), the level runs above alpha and a
        :class:`~mistmodel.caller_warnings.PermutationLevelWarning` says so.
    batch : use ``estimate_conditional_batch`` when the estimator has one (MIST).

    ``p_value`` is ``(1 + #{null >= statistic}) / (1 + n_permutations)``; see the module
    notes for why its level is approximate.
    """
    if not callable(getattr(estimator, "estimate_conditional", None)) or \
            not getattr(estimator, "estimates_conditional", True):
        raise TypeError(f"{_estimator_name(estimator)} does not estimate I(X;Y|Z); use KSG, "
                        "CCA or MIST.load(variant='mist_cmi')")
    count = _check_count(n_permutations)
    seed = check_seed(seed)
    name = _estimator_name(estimator)
    xa, ya, za = check_xyz(x, y, z, int(getattr(estimator, "min_rows", 2)), who=name)
    perms = local_permutations(za, count, neighbours, seed)
    _warn_lost_dependence(xa, ya, za, perms[:LOST_DEPENDENCE_COPIES], neighbours)
    batched = batch and callable(getattr(estimator, "estimate_conditional_batch", None))
    statistic = (float(np.ravel(estimator.estimate_conditional_batch([(xa, ya, za)]))[0])
                 if batched else float(estimator.estimate_conditional(xa, ya, za)))
    # The permuted x repeats some rows (where neighbourhoods run out): warnings about
    # repeated values or sparse tables would be about the copies, not the user's data, and
    # MIST's cross-check is about the data too.  Silenced in this thread only: other threads
    # keep their warnings.
    with silenced(TiedDataWarning, CrossCheckWarning, DiscreteBiasWarning, OutOfRangeWarning,
                  SmallSampleWarning), \
            copies_of(name, "the sample"), same_discreteness(estimator, x=xa, y=ya, z=za):
        if batched:
            per_chunk = max(1, BATCH_CELLS // (xa.shape[0] * (xa.shape[1] + ya.shape[1]
                                                               + za.shape[1])))
            null = np.concatenate([
                np.asarray(estimator.estimate_conditional_batch(
                    [(xa[p], ya, za) for p in perms[i:i + per_chunk]]),
                    dtype=np.float64).ravel()
                for i in range(0, len(perms), per_chunk)])
        else:
            null = np.array([estimator.estimate_conditional(xa[p], ya, za) for p in perms])
    return _result(statistic, null, name, tie_tolerance(estimator))


def _linear_mi(x: np.ndarray, z: np.ndarray) -> float:
    """Gaussian MI (nats) of ``x`` and its least-squares fit on ``z``; NaN if degenerate."""
    zc = np.c_[np.ones(len(z)), z - z.mean(axis=0)]
    residual = x - zc @ np.linalg.lstsq(zc, x, rcond=None)[0]
    whole = np.linalg.slogdet(np.atleast_2d(np.cov(x, rowvar=False)))
    left = np.linalg.slogdet(np.atleast_2d(np.cov(residual, rowvar=False)))
    if whole[0] <= 0 or left[0] <= 0:
        return float("nan")
    return 0.5 * float(whole[1] - left[1])


def _warn_lost_dependence(x: np.ndarray, y: np.ndarray, z: np.ndarray,
                          perms: list[np.ndarray], neighbours: int) -> None:
    """Warn where the copies lose more than ``LOST_DEPENDENCE_WARN`` nats and
    ``LOST_SHARE_WARN`` of X's linear dependence on Z while Y depends on Z by more than
    ``LOST_DEPENDENCE_WARN`` too: the level then runs above alpha (with Y independent of
    Z it holds)."""
    if not perms or x.shape[0] <= max(x.shape[1], y.shape[1]) + z.shape[1] + 1:
        return
    if not _linear_mi(y, z) > LOST_DEPENDENCE_WARN:
        return
    before = _linear_mi(x, z)
    after = float(np.mean([_linear_mi(x[p], z) for p in perms]))
    lost = before - after
    if np.isfinite(lost) and lost > LOST_DEPENDENCE_WARN and lost > LOST_SHARE_WARN * before:
        warn(f"conditional_independence_test: the locally permuted copies keep {after:.2f} "
             f"of the {before:.2f} nats of X's linear dependence on Z, so their Z-"
             f"neighbourhoods ({neighbours} rows, over {z.shape[1]} Z column(s)) are wide "
             "and the test rejects more often than alpha (measured: 17% at alpha 0.05 "
             "where 0.36 nats were lost). Use fewer neighbours (2 or 3), more rows, or fewer "
             "Z columns.", PermutationLevelWarning)


# -- distance correlation ---------------------------------------------------------------------

def _centred_distances(a: np.ndarray) -> np.ndarray:
    d = cdist(a, a)
    return d - d.mean(axis=0)[None, :] - d.mean(axis=1)[:, None] + d.mean()


def _dcor2(a: np.ndarray, b: np.ndarray) -> float:
    """Squared distance correlation from double-centred distance matrices (0 if degenerate)."""
    dcov2 = float(np.mean(a * b))
    norm = float(np.sqrt(np.mean(a * a) * np.mean(b * b)))
    return dcov2 / norm if norm > 0 else 0.0


def distance_correlation(x: ArrayLike, y: ArrayLike) -> float:
    """Squared sample distance correlation ``dCor_n^2(X, Y)`` in [0, 1] (V-statistic).

    Zero in the population exactly when X and Y are independent (finite first moments);
    one when ``y`` is a similarity transform of ``x``. Costs ``O(n^2)`` time and memory.
    """
    xa, ya = check_xy(x, y, 2, who="distance correlation")
    return _dcor2(_centred_distances(xa), _centred_distances(ya))


def distance_correlation_test(x: ArrayLike, y: ArrayLike, n_permutations: int = 199,
                              seed: int = 0) -> IndependenceTest:
    """Permutation test with the squared distance correlation as the statistic.

    The permutations are those :func:`independence_test` draws for the same ``seed`` and
    ``n``, so both tests can be compared on the same permuted samples.
    """
    count = _check_count(n_permutations)
    seed = check_seed(seed)
    xa, ya = check_xy(x, y, 2, who="distance correlation")
    a, b = _centred_distances(xa), _centred_distances(ya)
    null = [_dcor2(a, b[np.ix_(p, p)]) for p in _permutations(xa.shape[0], count, seed)]
    return _result(_dcor2(a, b), np.array(null), "dcor")
