"""Shared training loop of the variational estimators (MINE, InfoNCE).

A neural estimator trains a critic ``T(x, y)`` (:mod:`.critics`) to maximise a
variational lower bound on ``I(X; Y)`` and reports the bound on rows it was
not trained on:

1. The rows are split at random into a training part and a held-out part
   (``test_fraction`` of the rows, at least 2 of each).
2. Each step draws ``b = min(batch_size, n_train)`` training rows without
   replacement, scores all ``b x b`` pairs (diagonal: joint samples;
   off-diagonal: product of the marginals) and takes an Adam step on the
   estimator's training loss. The batch size adapts to ``n`` in this way, so
   every ``n`` from 4 rows up gets a finite estimate at a ``test_fraction`` of
   at most 0.5 (the default) and a ``batch_size`` of 3 or more (step 3 says
   which other splits are refused).
3. Every ``eval_every`` steps (and before the first step) the bound is
   computed on the held-out rows, cut into fixed blocks of at most ``b`` rows and
   at least :data:`MIN_BLOCK_ROWS`. A block of one row has no other row to pair
   its ``x`` with: its InfoNCE term is 0 whatever the critic, and it adds no pair
   to MINE's product-of-marginals term. A split that would leave one (``b = 2``
   and an odd number of held-out rows: 2 training rows, at small ``n`` with
   ``test_fraction`` above 0.5, or ``batch_size=2``) is refused with a
   :class:`~mistmodel.estimators.base.TooFewRowsError` (a ``ValueError``; a
   bootstrap replicate refused so is left out of the interval, with a warning).
   Training stops after ``patience`` evaluations without improvement, after
   ``max_steps`` steps, or if the loss stops being finite.
4. The estimate is the best held-out bound seen (early stopping). Selecting
   the best of several evaluations on the same held-out rows makes the
   estimate slightly optimistic when the held-out part is tiny; the untrained
   critic's evaluation guarantees a finite value.
5. Where the bound has a ceiling (InfoNCE: the mean log of the held-out blocks' sizes,
   each at most the batch size; ``last_info["ceiling"]``), an estimate from
   :data:`CEILING_SHARE` of it raises a
   :class:`~mistmodel.caller_warnings.CeilingWarning`: there the estimate reads far
   below the MI.

Randomness (split, batches, initial weights) comes from ``seed`` alone, through
seeded ``torch.Generator`` objects of the call's own: torch's global generator
(the caller's, and other threads') is neither read nor reset. Computation runs on ``device``:
"auto" picks CUDA when it is available, else the CPU.

Threads: with ``threads=None`` (the default) the estimator uses torch's
thread count as the caller left it. ``threads=T`` runs the CPU training on
``T`` intra-op threads through :func:`mistmodel.threads.torch_threads`, which gives the
calling thread its count back when the call returns or raises (torch keeps the count per
thread; other threads keep theirs). The critics are small: on a busy machine, or
with several estimates running side by side, ``threads=1`` is often many
times faster than torch's default of one thread per core.

Inputs are standardised column-wise (mutual information is invariant to
that) at any magnitude (:func:`~mistmodel.estimators.base.standardize_columns`);
with ``standardize=False`` the columns go to the critic as they are, in
float32: input that float32 cannot hold (beyond 1e30, so small that a
column's values collapse to one, or more than 1% of a column's distinct values
merged) is refused, and a column far from unit scale (standard deviation or
largest magnitude beyond :data:`UNIT_SCALE` times 1 or its spread) warns
(``OutOfRangeWarning``). The held-out bound is computed in float64.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..caller_warnings import CeilingWarning, OutOfRangeWarning, warn
from ..per_thread import PerThread
from ..threads import torch_threads
from .base import (Estimator, TooFewRowsError, check_flag, column_number,
                   standardize_columns)
from .critics import ConcatCritic

__all__ = ["MIN_BLOCK_ROWS", "NeuralEstimator", "resolve_device"]

# float32 holds magnitudes up to about 3.4e38; leave room for the critic's arithmetic.
_FLOAT32_LIMIT = 1e30
# with standardize=False, a column whose spread, or whose largest magnitude relative to
# its spread, passes this factor warns: MINE read -47 nats for 1000 t (MI 0.35) and
# InfoNCE 0.0 for 1000 + t, against 0.39 and 0.38 for t
UNIT_SCALE = 100.0
# share of a bound's ceiling (InfoNCE: log of the batch size) from which an estimate warns:
# Gaussians with MI 3.32 nats read 2.0-2.8 at 63-69% of it (benchmarks/infonce_ceiling.py)
CEILING_SHARE = 0.6
#: fewest rows in a held-out block (and in the training part): each row's ``x`` is paired
#: with another row's ``y`` for InfoNCE's contrast and MINE's product of the marginals
MIN_BLOCK_ROWS = 2


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class NeuralEstimator(Estimator):
    """Base of the critic-based estimators; subclasses define the bound.

    Parameters
    ----------
    hidden
        Hidden-layer widths of the critic MLP.
    batch_size
        Largest batch; the batch used is ``min(batch_size, n_train)``.
    lr
        Adam learning rate.
    max_steps
        Upper limit on optimisation steps.
    eval_every
        Steps between two evaluations of the held-out bound.
    patience
        Evaluations without improvement before training stops.
    test_fraction
        Share of the rows held out for evaluation (at least 2 rows, and 2 left to
        train on); a split that would leave a held-out block of one row is refused
        (module docs, step 3).
    grad_clip
        Largest gradient norm per step (stabilises MINE's exponential term).
    standardize
        Standardise each column before training.
    seed
        Seed of the split, the batches and the initial weights: an integer from 0 to
        2**32 - 1 (torch's generators keep 32 bits of it).
    device
        "auto", "cpu", "cuda", "cuda:1", ...
    threads
        CPU threads used while training; ``None`` (default) keeps torch's
        current setting. The calling thread's setting is restored afterwards (see
        module docs). The estimate depends on the thread count a little (float32
        sums run in another order): MINE read 1.6812 and 1.6809 nats at 1 and 2
        threads (n = 300, 8 + 8 columns, 150 steps).
    """

    bootstrap = "subsample"

    #: The calling thread's latest training record (:meth:`_run_info`).
    _info = PerThread(dict)

    def __init__(
        self,
        hidden: Sequence[int] = (64, 64),
        batch_size: int = 64,
        lr: float = 1e-3,
        max_steps: int = 1000,
        eval_every: int = 25,
        patience: int = 8,
        test_fraction: float = 0.5,
        grad_clip: float = 10.0,
        standardize: bool = True,
        seed: int = 0,
        device: str = "auto",
        threads: int | None = None,
    ) -> None:
        if isinstance(hidden, (str, bytes)) or not all(
                isinstance(h, (int, np.integer)) and not isinstance(h, bool) for h in hidden) \
                or not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must list at least one positive integer width; got "
                             f"{hidden!r}")
        hidden = tuple(int(h) for h in hidden)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
                or not 0 <= seed < 2 ** 32:
            raise ValueError(f"seed must be an integer from 0 to 2**32 - 1; got {seed!r}")
        if str(device) != "auto":
            try:
                torch.device(device)
            except (RuntimeError, TypeError) as exc:
                raise ValueError(f"device {device!r} is not a torch device: {exc}") from None
        for label, value in (
            ("batch_size", batch_size),
            ("max_steps", max_steps),
            ("eval_every", eval_every),
            ("patience", patience),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{label} must be a positive integer; got {value!r}")
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2; got {batch_size}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction}")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1
        ):
            raise ValueError(f"threads must be a positive integer or None; got {threads!r}")
        if not lr > 0.0 or not grad_clip > 0.0:
            raise ValueError("lr and grad_clip must be positive")
        self.hidden = hidden
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.max_steps = int(max_steps)
        self.eval_every = int(eval_every)
        self.patience = int(patience)
        self.test_fraction = float(test_fraction)
        self.grad_clip = float(grad_clip)
        self.standardize = check_flag(standardize, "standardize")
        self.seed = int(seed)
        self.device = str(device)
        self.threads = None if threads is None else int(threads)

    # ---------------------------------------------------------- subclasses
    @abstractmethod
    def _reset(self) -> None:
        """Clear per-run state (called once before training)."""

    @abstractmethod
    def _batch_loss(self, scores: torch.Tensor) -> torch.Tensor:
        """Training loss for one ``b x b`` score matrix."""

    @abstractmethod
    def _held_out_bound(self, blocks: list[torch.Tensor]) -> float:
        """The bound (nats) on held-out score matrices, one per block."""

    # ------------------------------------------------------------- common
    def settings(self) -> dict[str, Any]:
        return {
            "hidden": list(self.hidden),
            "batch_size": self.batch_size,
            "lr": self.lr,
            "max_steps": self.max_steps,
            "eval_every": self.eval_every,
            "patience": self.patience,
            "test_fraction": self.test_fraction,
            "grad_clip": self.grad_clip,
            "standardize": self.standardize,
            "seed": self.seed,
            "device": self.device,
            "threads": self.threads,
        }

    @property
    def min_rows(self) -> int:
        return 4

    def _split_sizes(self, n: int) -> tuple[int, int]:
        """Rows of the training part and of the held-out part of ``n`` rows:
        ``test_fraction`` of them held out, at least :data:`MIN_BLOCK_ROWS` in each.

        Raises
        ------
        TooFewRowsError
            Cut into blocks of at most the batch size ``b = min(batch_size, n_train)``,
            the held-out rows would leave a block of fewer than :data:`MIN_BLOCK_ROWS`
            rows (module docs, step 3).
        """
        n_test = min(n - MIN_BLOCK_ROWS,
                     max(MIN_BLOCK_ROWS, int(round(n * self.test_fraction))))
        n_train = n - n_test
        b = min(self.batch_size, n_train)
        if n_test // math.ceil(n_test / b) < MIN_BLOCK_ROWS:
            self._refuse_split(n, n_train, n_test, b)
        return n_train, n_test

    def _refuse_split(self, n: int, n_train: int, n_test: int, b: int) -> None:
        """Raise the :class:`TooFewRowsError` of a split that leaves a held-out block of a
        single row, naming the setting that does it."""
        why = (f"each held-out block needs at least {MIN_BLOCK_ROWS} rows (a row alone in "
               "its block has no other row's y to be paired with: its InfoNCE term is 0 "
               "whatever the critic, and it adds no pair to MINE's product of the "
               "marginals)")
        if b == self.batch_size:
            raise TooFewRowsError(
                f"{self.name}: n = {n} rows at test_fraction={self.test_fraction:g} hold out "
                f"{n_test} rows, which batch_size={self.batch_size} cuts into blocks of at "
                f"most {b} rows, one of them a single row; {why}. Use a batch_size of "
                f"{b + 1} or more, or a test_fraction that holds out an even number of rows")
        raise TooFewRowsError(
            f"{self.name}: n = {n} rows at test_fraction={self.test_fraction:g} hold out "
            f"{n_test} rows and train on {n_train}, so the held-out rows are cut into blocks "
            f"of at most {b} rows (the training batch), one of them a single row; {why}. Use "
            "a test_fraction of at most 0.5 (the default), which works at every n from "
            f"{self.min_rows}")

    def _estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        from .ksg import warn_copied_continuous_rows
        self._split_sizes(x.shape[0])          # refuses an unusable split before warning
        warn_copied_continuous_rows(
            self.name, "a copy can fall in the critic's training rows and its held-out ones",
            x, y)
        device = resolve_device(self.device)
        if self.standardize:
            x, y = standardize_columns(x, "x"), standardize_columns(y, "y")
        else:
            _check_float32(x, "x")
            _check_float32(y, "y")
        # training needs gradients, also inside a caller's no_grad or inference_mode
        with torch_threads(self.threads if device.type == "cpu" else None), \
                torch.inference_mode(False), torch.enable_grad():
            return self._train(x, y, seed, device)

    def _train(self, x: np.ndarray, y: np.ndarray, seed: int, device: torch.device) -> float:
        """Split, train with early stopping, return the best held-out bound."""
        n = x.shape[0]
        xt = torch.as_tensor(x, dtype=torch.float32, device=device)
        yt = torch.as_tensor(y, dtype=torch.float32, device=device)

        gen = torch.Generator().manual_seed(seed)
        n_train, n_test = self._split_sizes(n)
        perm = torch.randperm(n, generator=gen)
        train_idx, test_idx = perm[:n_train], perm[n_train:]
        b = min(self.batch_size, n_train)
        test_blocks = [
            blk.to(device)
            for blk in torch.tensor_split(test_idx, math.ceil(n_test / b))
        ]

        critic = ConcatCritic.seeded(x.shape[1], y.shape[1], self.hidden, seed).to(device)
        optimiser = torch.optim.Adam(critic.parameters(), lr=self.lr)
        self._reset()

        def evaluate() -> float:
            critic.eval()
            with torch.no_grad():
                # the bound in float64: float32 would round log-sum-exp terms of large
                # scores away (rows whose scores are all alike would count as matches)
                blocks = [critic.pair_scores(xt[blk], yt[blk]).double() for blk in test_blocks]
                value = self._held_out_bound(blocks)
            critic.train()
            return value

        best = evaluate()
        if not math.isfinite(best):
            best = 0.0
        best_step, since_best, step, stop = 0, 0, 0, "max_steps"
        for step in range(1, self.max_steps + 1):
            rows = train_idx[torch.randperm(n_train, generator=gen)[:b]].to(device)
            loss = self._batch_loss(critic.pair_scores(xt[rows], yt[rows]))
            if not torch.isfinite(loss):
                stop = "non-finite loss"
                break
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(critic.parameters(), self.grad_clip)
            optimiser.step()
            if step % self.eval_every == 0 or step == self.max_steps:
                value = evaluate()
                if math.isfinite(value) and value > best:
                    best, best_step, since_best = value, step, 0
                else:
                    since_best += 1
                    if since_best >= self.patience:
                        stop = "patience"
                        break
        ceiling = self._ceiling([len(blk) for blk in test_blocks])
        self._info = {
            "device": str(device),
            "batch_size_used": b,
            "n_train": n_train,
            "n_test": n_test,
            "steps": step,
            "best_step": best_step,
            "stopped_by": stop,
            "hidden": list(self.hidden),
            "lr": self.lr,
            **({} if ceiling is None else {"ceiling": ceiling}),
        }
        if ceiling is not None and best >= CEILING_SHARE * ceiling:
            sizes = sorted({len(blk) for blk in test_blocks})
            warn(f"{self.name}: the estimate, {best:.3f} nats, is {best / ceiling:.0%} of the "
                 f"most its bound can report on these {n_test} held-out rows ({ceiling:.3f}: "
                 f"the mean log of their block size, {' or '.join(map(str, sizes))} rows, at "
                 f"most the batch size {b}). From about {CEILING_SHARE:.0%} of it the "
                 "estimate reads far below the MI, which may be far higher; use KSG, MIST or "
                 "a larger batch_size (and more rows).", CeilingWarning)
        return float(best)

    def _ceiling(self, blocks: list[int]) -> float | None:
        """The most the held-out bound can be on test blocks of these sizes, if it has a
        ceiling (None by default)."""
        return None

    def _run_info(self) -> dict[str, Any]:
        return dict(self._info)


def _check_float32(a: np.ndarray, label: str) -> None:
    """Refuse raw (unstandardised) input that the float32 critic cannot represent, and
    warn where a column lies far from unit scale, where the critic trains poorly."""
    peak = np.max(np.abs(a), axis=0)
    big = np.flatnonzero(peak > _FLOAT32_LIMIT)
    if big.size:
        col = int(big[0])
        raise ValueError(
            f"{label} column {column_number(label, col)} reaches {peak[col]:.3g}, beyond "
            "what the float32 critic can work with; use standardize=True (the default), "
            "or rescale it"
        )
    single = a.astype(np.float32)
    collapsed = np.flatnonzero(np.all(single == single[:1], axis=0))
    if collapsed.size:
        col = int(collapsed[0])
        raise ValueError(
            f"{label} column {column_number(label, col)} takes a single value once "
            f"converted to float32 (largest magnitude {peak[col]:.3g}); use "
            "standardize=True (the default), or rescale it"
        )
    merged = [j for j in range(a.shape[1])
              if np.unique(single[:, j]).size < 0.99 * np.unique(a[:, j]).size]
    if merged:
        raise ValueError(
            f"{label} column {column_number(label, merged[0])} has more than 1% of its "
            "distinct values merged by float32 (equal once converted); use "
            "standardize=True (the default), or rescale it")
    spread = a.std(axis=0)
    far = np.flatnonzero((peak > UNIT_SCALE * spread) | (spread > UNIT_SCALE)
                         | (spread < 1.0 / UNIT_SCALE))
    if far.size:
        col = int(far[0])
        warn(f"{label} column {column_number(label, col)} goes to the critic far from unit "
             f"scale (standard deviation {spread[col]:.3g}, largest magnitude "
             f"{peak[col]:.3g}; standardize=False): the critic trains poorly there and the "
             "estimate can be far from the MI, even negative. standardize=True (the "
             "default) leaves the MI as it is.", OutOfRangeWarning)
