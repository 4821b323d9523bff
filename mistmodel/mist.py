"""MIST and MIST-QR: the learned mutual-information estimator, as a library object.

    from mistmodel import MIST
    mist = MIST.load()                       # shipped point-estimate checkpoint (offline)
    mist.estimate(x, y)                      # I(X;Y) in nats
    mist.estimate_batch([(x1, y1), (x2, y2)])  # many samples, batched forward passes

    qr = MIST.load(variant="mist_qr")        # shipped quantile checkpoint
    qr.quantiles(x, y, [0.05, 0.5, 0.95])    # non-decreasing in tau
    qr.interval(x, y, level=0.9)             # (lower, upper)
    mist.interval(x, y, n_boot=100)          # point checkpoint: explicit bootstrap only

    cmi = MIST.load(variant="mist_cmi")      # shipped conditional checkpoint
    cmi.estimate_conditional(x, y, z)        # I(X;Y|Z) in nats

``MIST.load(path)`` returns an estimator for whichever variant the checkpoint holds.  A
point-estimate (``mist``) checkpoint refuses ``quantiles`` (and ``interval`` unless a
bootstrap is asked for with ``n_boot``) with a clear error; a quantile (``mist_qr``)
checkpoint answers ``estimate`` with its median.  A conditional (``mist_cmi``) checkpoint
tags columns X, Y or Z and answers only ``estimate_conditional`` (and
``estimate_conditional_batch``); the others refuse ``estimate_conditional``.  Checkpoints are safetensors files with
a JSON card (:mod:`mistmodel.checkpoint`): loading one runs nothing from the file.

``backend`` (at load) chooses the runtime of the forward pass once
(:mod:`mistmodel.backends`): the default ``"auto"`` runs the compiled ``"simd"`` kernels
where they can run the network here and the plain ``"torch"`` forward pass elsewhere;
``"torch"`` always works.  ``threads`` sets torch's CPU
thread count for the duration of each call and restores it afterwards, also when the
call raises; by default torch's setting is left as it is, except that ``"simd"`` runs
torch's small steps on one thread during a call (its kernels use the threads).

Input rules (all shared with the other estimators through ``check_xy``):

* ``x`` ``(n, dim_x)`` and ``y`` ``(n, dim_y)``, 2-D, numeric, finite, same ``n``;
  NaN/inf, mismatched rows, 1-D or empty input raise ``ValueError`` naming the problem;
* ``n < 2`` raises; ``2 <= n < 10`` works but warns (:class:`SmallSampleWarning`): the
  network was trained on ``n >= 10`` and such estimates are little better than a prior;
* a sample of more rows than the network was trained on is read in row groups
  (``max_rows``, below); dims beyond the range seen in training are refused with a
  ``ValueError`` naming the trained range (the network takes any shape, but its
  estimates there can be off by orders of magnitude: hundreds of nats for independent
  data at 64 + 64 dims); ``out_of_range="warn"`` answers anyway, with an
  :class:`OutOfRangeWarning`;
* constant columns are dropped (they carry no information) and reported
  (``last_info["dropped_x"]``, ``Estimate.dropped_x``); if one side is entirely constant
  the estimate is exactly 0 and MIST-QR's interval is exactly ``(0.0, 0.0)``;
* MIST-QR answers quantiles only at taus inside the grid it was trained on
  (``[tau_min, tau_max]`` of its config, 0.01 .. 0.99 for the shipped one), hence central
  intervals up to level ``1 - 2 tau_min`` (0.98); beyond that it refuses.  Its intervals
  are conformally calibrated at the levels its checkpoint has factors for (0.5, 0.8, 0.9,
  0.95 for the shipped one) and are the raw quantiles at other levels; ``last_info`` /
  ``Estimate.info`` say which (``"interval_method"``), and a call at another level warns
  (:class:`UncalibratedLevelWarning`): raw quantile intervals are not calibrated.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from .backends import check_threads, make_backend
from .batching import collate, plan_chunks
from .caller_warnings import (CrossCheckWarning, OutOfRangeWarning, SmallSampleWarning,
                              TiedDataWarning, UncalibratedLevelWarning, is_silenced,
                              sample_prefix, warn)
from . import cross_check as cc
from .calibration import calibration_problem, sample_factors, sample_rows, widen
from . import neighbour_correction as nc
from .checkpoint import (CheckpointError, is_mi_ceiling, load_checkpoint,
                         non_finite_tensors)
from .correlated_sides import (ADVICE, CONDITIONAL_ADVICE, CONDITIONAL_MIN_COLUMNS,
                               MIN_COLUMNS, correlated_side)
from .estimators.base import (Estimate, Estimator, _check_level, _json_ready, as_pair,
                              check_xy, check_xyz, column_number, constant_columns,
                              kept_columns, tied_columns, tied_flags)
from .copula import normal_scores
from .model import MISTNet, ModelConfig, QuantileHead
from .orientation import orientation_signs
from .per_thread import PerThread
from .shipped import default_checkpoint

__all__ = ["MIST", "SmallSampleWarning", "OutOfRangeWarning", "TiedDataWarning",
           "CrossCheckWarning", "UncalibratedLevelWarning",
           "default_checkpoint",
           "load_network", "MIN_ROWS", "WARN_ROWS"]

# an estimate this many times its width's mi_ceiling is no saturation (see _check_values)
RUNAWAY = 3.0

# how raw quantile intervals cover, as an UncalibratedLevelWarning quotes it
UNCALIBRATED_COVERAGE = ("benchmarks/qr_levels.py, the shipped checkpoint on 800 normal-dense "
                         "and 800 student-dense samples, d 1-4, n 20-300: 0.685 and 0.557 at "
                         "level 0.6, 0.953 and 0.879 at 0.85")

MIN_ROWS = 2      # below this an estimate is refused
WARN_ROWS = 10    # below this an estimate is given with a SmallSampleWarning


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" -> CUDA when available, else CPU; a CUDA device must be available."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device {device!r} is not a torch device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} asked for, but CUDA is not available "
                           "here (torch.cuda.is_available() is False); use device='cpu'")
    return dev


def load_network(path: str | os.PathLike, device: str | torch.device = "cpu"
                 ) -> tuple[MISTNet, dict[str, Any]]:
    """The network stored in a checkpoint, in eval mode on ``device``, and its card.

    Raises :class:`~mistmodel.checkpoint.CheckpointError` (a ``ValueError``) when the
    file is not a safetensors MIST checkpoint, its card's model config is invalid, or
    its tensors do not match that config (the message names the keys).
    """
    state, card = load_checkpoint(path)
    try:
        config = ModelConfig.from_dict(card["model_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model_config in its card: {exc}") from None
    if card["variant"] != config.variant:
        raise CheckpointError(f"{path}: its card says variant {card['variant']!r} but its "
                              f"model_config says {config.variant!r}")
    return network_from_state(config, state, path).to(device).eval(), card


def network_from_state(config: ModelConfig, state: dict[str, torch.Tensor],
                       path: str | os.PathLike) -> MISTNet:
    """A float32 :class:`MISTNet` holding ``state``: built without initial weights (on
    torch's meta device, so no random generator is touched, the caller's or another
    thread's), then given the checkpoint's tensors and the quantile grid.  The config's
    sizes are checked against the tensors first, so that a card cannot make it build a
    network far larger than the file."""
    _check_sizes(config, state, path)
    net = _empty_network(config, path)
    _check_tensors(net.state_dict(), state, path)
    weights = {k: v.to(torch.float32) for k, v in state.items()}
    _check_finite_in_float32(weights, path)
    try:
        net.load_state_dict(weights, assign=True)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its tensors do not load into the network its card's "
                              f"model_config describes: {exc}") from None
    if isinstance(net.head, QuantileHead):
        net.head.grid = net.head.make_grid(config.quantile_knots, device="cpu")
    return net


def _empty_network(config: ModelConfig, path: str | os.PathLike) -> MISTNet:
    """The network of ``config`` on torch's meta device (no weights)."""
    try:
        with torch.device("meta"):
            return MISTNet(config)
    except (RuntimeError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{path}: the network its card's model_config describes "
                              f"cannot be built: {exc}") from None


def _declared_lengths(config: ModelConfig) -> list[tuple[str, str, int, int]]:
    """Where the file's tensors show each size of ``config`` that sets the network's:
    ``(the config's setting, tensor, axis, the length the setting gives that axis)``."""
    c = config
    lengths = [
        (f"width {c.width}", "embed.tag.weight", 1, c.width),
        (f"conditional {str(c.conditional).lower()} ({c.tags} column tags)",
         "embed.tag.weight", 0, c.tags),
        (f"heads {c.heads}", "col_bias.0.lin", 0, c.heads),
        (f"summary_width {c.summary_width}", "final_norm.weight", 0, c.summary_width),
        (f"ffn_mult {c.ffn_mult}", "col_set.ffn.net.0.weight", 0, c.ffn_mult * c.summary_width),
        (f"pair_width {c.pair_width}", "pairs.net.0.weight", 0, c.pair_width),
        (f"head_hidden {c.head_hidden}", "head.net.0.weight", 0, c.head_hidden),
        (f"quantile_knots {c.quantile_knots}" if c.variant == "mist_qr" else "variant 'mist'",
         "head.net.4.weight", 0, c.quantile_knots if c.variant == "mist_qr" else 1),
    ]
    if c.blocks:
        lengths.append((f"inducing {c.inducing}", "row_att.0.inducing", 0, c.inducing))
    return lengths


def _check_sizes(config: ModelConfig, state: dict[str, torch.Tensor],
                 path: str | os.PathLike) -> None:
    """Refuse a model config whose sizes (blocks, widths, heads, ...) the file's tensors
    do not have, before any network is built."""
    problems = []
    blocks = {key.split(".")[1] for key in state if key.startswith("col_att.")}
    if len(blocks) != config.blocks:
        problems.append(f"its blocks {config.blocks} need column attention tensors "
                        f"(col_att.<block>.*) of {config.blocks} blocks, the file holds "
                        f"those of {len(blocks)}")
    for setting, name, axis, length in _declared_lengths(config):
        problem = _length_problem(state.get(name), name, axis, length, setting)
        if problem:
            problems.append(problem)
    if problems:
        raise CheckpointError(f"{path}: the tensors do not match the card's model_config: "
                              + "; ".join(problems))


def _length_problem(tensor: torch.Tensor | None, name: str, axis: int, length: int,
                    setting: str) -> str | None:
    """How ``tensor`` (None: missing) fails to have the ``length`` along ``axis`` that the
    config's ``setting`` gives it, or None."""
    if tensor is None:
        return f"missing tensor {name}, which shows its {setting}"
    shape = tuple(tensor.shape)
    if tensor.dim() <= axis:
        return f"tensor {name} has shape {shape}, its {setting} needs {length} along axis {axis}"
    if shape[axis] != length:
        needed = tuple(length if i == axis else size for i, size in enumerate(shape))
        return f"tensor {name} has shape {shape}, its {setting} needs {needed}"
    return None


def _check_tensors(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor],
                   path: str | os.PathLike) -> None:
    """Refuse a state dict whose names, shapes or kinds of number differ from the
    network's (real floating point, read in float32)."""
    def listing(keys: set[str]) -> str:
        shown = sorted(keys)
        return ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")

    problems = []
    missing, unexpected = set(expected) - set(found), set(found) - set(expected)
    if missing:
        problems.append(f"missing tensors {listing(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {listing(unexpected)}")
    for key in sorted(set(expected) & set(found)):
        if tuple(found[key].shape) != tuple(expected[key].shape):
            problems.append(f"tensor {key} has shape {tuple(found[key].shape)}, the model "
                            f"config needs {tuple(expected[key].shape)}")
        if expected[key].is_floating_point() and not found[key].is_floating_point():
            dtype = str(found[key].dtype).removeprefix("torch.")
            problems.append(f"tensor {key} has dtype {dtype}, the network needs real "
                            "floating-point numbers (float32)")
    if problems:
        raise CheckpointError(f"{path}: the tensors do not match the card's model_config: "
                              + "; ".join(problems))


def _check_finite_in_float32(weights: dict[str, torch.Tensor], path: str | os.PathLike
                             ) -> None:
    """Refuse tensors that are not finite in float32 (float64 values beyond its range)."""
    broken = non_finite_tensors(weights)
    if broken:
        raise CheckpointError(f"{path}: tensor {broken[0]!r} holds NaN or infinite values in "
                              "float32, the precision the network reads its weights in")


class MIST(Estimator):
    """The learned estimator.  Build with :meth:`MIST.load`.

    Parameters
    ----------
    network : the trained :class:`MISTNet`.
    meta : the checkpoint's card (``data_ranges`` drives the out-of-range warnings,
        ``interval_calibration`` the MIST-QR interval factors).
    checkpoint : where it was loaded from (recorded in ``settings()``).
    device : torch device for inference (``None``/"auto": CUDA when available).
    max_cells : padded cells (``batch x rows x columns``) per forward pass in
        :meth:`estimate_batch`; larger lists are cut into shape-sorted chunks.
    seed : seed of the subsample bootstrap of a point checkpoint's :meth:`interval`.
    backend : runtime of the forward pass (:func:`mistmodel.backends.make_backend`);
        :attr:`runtime` says which one runs ("auto" and a "simd" that cannot run here
        become "torch"; "simd" also hands single calls its kernels do not take to torch).
    threads : CPU threads of the backend during each call (for ``"torch"``, torch's
        thread count, restored after the call, also when it raises); ``None`` leaves the
        runtime's setting alone.
    out_of_range : ``"refuse"`` (default): dims beyond the checkpoint's ``data_ranges``
        raise a ``ValueError``; ``"warn"``: answer with an :class:`OutOfRangeWarning`.
    max_rows : largest sample the network reads at once.  A sample of ``n > max_rows``
        rows is split into ``ceil(n / max_rows)`` disjoint groups of rows of near-equal
        size (a seeded random partition, so sorted or clustered rows do not bias it) and
        the estimates (quantiles) of the groups are averaged: time and memory grow
        linearly in ``n``, and every forward pass stays inside the sizes the network was
        trained on.  The default ``"trained"`` takes the largest ``n`` of the
        checkpoint's ``data_ranges``; ``None`` always reads the whole sample.  The
        average has the bias of an estimate at ``n / groups`` rows and less variance;
        MIST-QR's interval is the average of the groups' intervals, hence conservative.
    neighbour_correction : point checkpoints only.  ``True`` corrects each estimate by
        the network's mean error on samples of the same shape drawn from the sample's
        neighbour, whose MI is exact (:mod:`mistmodel.neighbour_correction`): two draws
        from a Gaussian or Student-t copula fitted to it, or, below 20 rows per column,
        eight shuffles of its Y rows against its X rows (MI 0).  Full weight below 0.5
        nats (0.25 with shuffles), none above 1 nat (0.5), and none for a heavily tied
        column or, from 20 rows per column, a column repeating another (a continuous
        copula is no neighbour there).  It costs the neighbour's fit and two (eight) more
        forward passes where it applies (each copula draw read in at most 8 row groups).  The
        estimate is not clipped at 0 (at independence it is about as often below 0 as
        above), stays unchanged under strictly increasing maps of the columns and under
        row order (up to ``max_rows`` rows, as the plain estimate), but not exactly
        under permutations of the columns (the draws change).
        ``last_info["neighbour_correction"]`` records the weight, the reason when it
        does not apply, which neighbour (``"copula"``, ``"shuffled"``), its MI and
        degrees of freedom, the number of draws and the network's mean estimate on them.
    cross_check : ``True`` (default) compares each I(X;Y) or I(X;Y|Z) estimate of a sample
        of 100 rows or more and at most 8 columns in all with KSG on 500 of its rows (for
        I(X;Y|Z) its Frenzel-Pompe form), and raises a
        :class:`CrossCheckWarning` (one per call, naming the first such sample) where KSG
        reads at least twice as much, but never more than 1.15 nats below 1 nat (1.15
        times as much from 1 nat), and more by a margin (0.1 nats from 400 rows,
        ``2 / sqrt(rows)`` below): MIST misses dependence that is not monotone, and
        reads low where it is sharp-edged or strong in few columns
        (:mod:`mistmodel.cross_check`).  It costs 2-3 ms per sample;
        ``False`` skips it, as do the permuted copies of a permutation test.
    orient : ``True`` (default) turns the sign of the columns of an (X, Y) sample whose
        dependence is negative before the network reads it (MI is unchanged by such
        flips; the networks, trained on positively dependent families, read negative
        dependence as almost none): only where an entry of the cross-correlation matrix
        of the normal scores is negative and significant on its own (level 0.01 over all
        entries), so that by design at most 1 independent sample in 100 is turned
        (:mod:`mistmodel.orientation`).  A 1 + 1 sample turned reads exactly as its mirror
        image with Y negated.  Each row group is turned on its own; conditional samples
        (X, Y, Z) never are; the neighbour correction's draws take their sample's signs.
    """

    bootstrap = "subsample"
    #: A permutation test's copy within this (relative, at least this many nats) of the
    #: statistic ties with it: the float32 network reads one sample up to ~1.5e-7 nats
    #: differently in batches of other sizes.
    tie_tolerance = 1e-6
    continuous_only = True        # trained on continuous data: class labels are out of reach
    # what a TiedDataWarning advises, after naming the column
    tie_advice = ("MIST was trained on continuous data and is biased on discrete or heavily "
                  "tied columns. For such data use KSG(discrete='auto') "
                  "(mistmodel.estimators.KSG), the "
                  "mixed-KSG estimator on columns with few distinct values.")

    #: The calling thread's latest call: its row groups and its neighbour correction.
    _row_groups = PerThread(lambda: 1)
    _correction_info = PerThread()

    def __init__(self, network: MISTNet, meta: dict[str, Any] | None = None,
                 checkpoint: str | None = None, device: str | torch.device | None = None,
                 max_cells: int = 65_536, seed: int = 0, backend: str = "auto",
                 threads: int | None = None, max_rows: int | str | None = "trained",
                 out_of_range: str = "refuse", neighbour_correction: bool = False,
                 cross_check: bool = True, orient: bool = True):
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        self.meta = dict(meta or {})
        if self.meta.get("mi_ceiling") is not None and not is_mi_ceiling(self.meta["mi_ceiling"]):
            raise ValueError("meta['mi_ceiling'] must map consecutive widths ('1', '2', ...) "
                             "to non-decreasing finite numbers of nats, none negative; got "
                             f"{self.meta['mi_ceiling']!r}")
        if self.meta.get("interval_calibration") is not None and (
                problem := calibration_problem(self.meta["interval_calibration"])):
            raise ValueError(f"meta['interval_calibration'] {problem}")
        self.checkpoint = checkpoint
        for name, value, low in (("max_cells", max_cells, 1), ("seed", seed, 0)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
                    or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
        self.max_cells = int(max_cells)
        self.seed = int(seed)
        self.backend = backend
        self.threads = check_threads(threads)
        self.variant = network.config.variant
        self.name = "mist_cmi" if network.config.conditional else self.variant
        self._run = make_backend(backend, self.network, threads=self.threads)
        self.max_rows = self._check_max_rows(max_rows)
        if out_of_range not in ("refuse", "warn"):
            raise ValueError(f"out_of_range must be 'refuse' or 'warn', got {out_of_range!r}")
        self.out_of_range = out_of_range
        if not isinstance(neighbour_correction, (bool, np.bool_)):
            raise ValueError("neighbour_correction must be True or False, got "
                             f"{neighbour_correction!r}")
        if neighbour_correction and (self.is_quantile or self.is_conditional):
            raise ValueError(
                "neighbour_correction corrects the point estimate of a 'mist' checkpoint; "
                f"this checkpoint is {self.name!r}")
        self.neighbour_correction = bool(neighbour_correction)
        if not isinstance(cross_check, (bool, np.bool_)):
            raise ValueError(f"cross_check must be True or False, got {cross_check!r}")
        self.cross_check = bool(cross_check)
        if not isinstance(orient, (bool, np.bool_)):
            raise ValueError(f"orient must be True or False, got {orient!r}")
        self.orient = bool(orient)

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, variant: str = "mist",
             device: str | torch.device | None = None, **kwargs: Any) -> "MIST":
        """Load a checkpoint; ``path=None`` takes the one shipped for ``variant``.

        The shipped checkpoints live inside the package, so this works offline.  The
        returned estimator has the variant the checkpoint holds.  ``kwargs`` go to the
        constructor (``backend``, ``threads``, ``max_cells``, ``seed``, ``max_rows``,
        ``out_of_range``, ``neighbour_correction``).
        """
        ckpt = default_checkpoint(variant) if path is None else Path(path)
        if path is None and not ckpt.is_file():
            raise FileNotFoundError(
                f"the default {variant} checkpoint is missing from the package ({ckpt}); "
                "train one with the study workflow and pass its path")
        dev = resolve_device(device)
        net, card = load_network(ckpt)
        return cls(net, card, checkpoint=str(ckpt), device=dev, **kwargs)

    # ------------------------------------------------------------------ estimator API
    def settings(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "variant": self.name,
                "device": str(self.device), "max_cells": self.max_cells, "seed": self.seed,
                "backend": self.backend, "threads": self.threads, "max_rows": self.max_rows,
                "out_of_range": self.out_of_range,
                "neighbour_correction": self.neighbour_correction,
                "cross_check": self.cross_check, "orient": self.orient}

    def row_groups(self, n: int) -> int:
        """Into how many disjoint groups of rows a sample of ``n`` rows is split."""
        if self.max_rows is None or n <= self.max_rows:
            return 1
        return -(-int(n) // self.max_rows)

    def _check_max_rows(self, max_rows: int | str | None) -> int | None:
        if max_rows == "trained":
            n_range = self.data_ranges.get("n")
            if n_range and int(n_range[1]) < 2 * WARN_ROWS:
                raise ValueError(
                    f"the checkpoint's data_ranges give at most {int(n_range[1])} rows, too "
                    f"few for row groups, which need at least {2 * WARN_ROWS}; pass "
                    f"max_rows=None to read whole samples, or an integer >= {2 * WARN_ROWS}")
            return int(n_range[1]) if n_range else None
        if max_rows is None:
            return None
        if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) \
                or max_rows < 2 * WARN_ROWS:
            raise ValueError(f"max_rows must be an integer >= {2 * WARN_ROWS}, 'trained' or "
                             f"None; got {max_rows!r}")
        return int(max_rows)

    def _run_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"row_groups": self._row_groups}
        if self.neighbour_correction:
            info["neighbour_correction"] = self._correction_info
        return info

    @property
    def is_quantile(self) -> bool:
        return self.variant == "mist_qr"

    @property
    def is_conditional(self) -> bool:
        """Whether the network reads (X, Y, Z) and estimates I(X;Y|Z)."""
        return bool(self.network.config.conditional)

    @property
    def estimates_conditional(self) -> bool:
        return self.is_conditional

    @property
    def data_ranges(self) -> dict[str, Any]:
        """Ranges of n / dim_x / dim_y seen in training (empty if unknown)."""
        return dict(self.meta.get("data_ranges") or {})

    @property
    def tau_range(self) -> tuple[float, float]:
        """The quantile levels ``[tau_min, tau_max]`` MIST-QR was trained on."""
        return self.network.config.tau_min, self.network.config.tau_max

    def estimate(self, x: Any, y: Any) -> float:
        self._refuse_conditional("estimate")
        value = super().estimate(x, y)
        self._cross_check(lambda: [check_xy(x, y, MIN_ROWS, who="MIST")], [value])
        return value

    def bootstrap_distribution(self, x: Any, y: Any, n_boot: int = 100,
                               seed: int = 0) -> np.ndarray:
        self._refuse_conditional("bootstrap_distribution")
        return super().bootstrap_distribution(x, y, n_boot, seed)

    def _estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        self._refuse_conditional("estimate")
        tied = self._warn_ties([(x, y)])
        out = np.ravel(self._forward([(x, y)], None))
        if self.neighbour_correction:
            out = self._corrected([(x, y)], out, seed, tied)
        return float(out[0])

    def estimate_conditional(self, x: Any, y: Any, z: Any) -> float:
        """I(X;Y|Z) in nats, from a conditional (``mist_cmi``) checkpoint; input rules as
        :meth:`estimate`, with ``z`` ``(n, dim_z)`` as a third group (see
        :meth:`Estimator.estimate_conditional`).  An entirely constant ``z`` is refused
        (then I(X;Y|Z) = I(X;Y): ask the ``mist`` checkpoint)."""
        self._require_conditional()
        value = super().estimate_conditional(x, y, z)
        self._cross_check(lambda: [check_xyz(x, y, z, min_rows=MIN_ROWS, who="MIST")], [value])
        return value

    def _estimate_given_constant_z(self, x: np.ndarray, y: np.ndarray
                                   ) -> tuple[float, dict[str, Any]]:
        raise ValueError(_CONSTANT_Z)

    def _estimate_conditional(self, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                              seed: int) -> float:
        self._warn_ties([(x, y, z)])
        return float(np.ravel(self._forward([(x, y, z)], None))[0])

    def estimate_conditional_batch(self, samples: Iterable[Any]) -> np.ndarray:
        """I(X;Y|Z) for many ``(x, y, z)`` triples (or objects with ``.x``, ``.y``,
        ``.z``) in batched forward passes, in input order.  Constant columns are dropped;
        a sample whose x or y is entirely constant gets exactly 0; one whose z is
        entirely constant is refused."""
        self._require_conditional()
        self._last_info = {}
        prepared, live, kept = [], [], []
        for i, item in enumerate(samples):
            if isinstance(item, (tuple, list)):
                parts = tuple(item)
            else:
                parts = tuple(getattr(item, side, None) for side in "xyz")
                if parts[2] is None:
                    raise ValueError(f"sample {i}: a {type(item).__name__} without .x, .y "
                                     "and .z; give (x, y, z) triples")
            if len(parts) != 3:
                raise ValueError(f"sample {i}: expected an (x, y, z) triple, got "
                                 f"{len(parts)} arrays")
            try:
                xa, ya, za = check_xyz(*parts, min_rows=MIN_ROWS, who="MIST")
            except (TypeError, ValueError) as exc:
                raise ValueError(f"sample {i}: {exc}") from None
            kept.append(tuple(kept_columns(a.shape[1], constant_columns(a))
                              for a in (xa, ya, za)))
            xa, ya, za = (a[:, k] for a, k in zip((xa, ya, za), kept[-1]))
            if za.shape[1] == 0:
                raise ValueError(f"sample {i}: {_CONSTANT_Z}")
            prepared.append((xa, ya, za))
            if xa.shape[1] and ya.shape[1]:
                live.append(i)
        if not prepared:
            raise ValueError("MIST needs at least one sample")
        self._warn_ties(prepared, kept)
        out = np.zeros(len(prepared))
        if live:
            out[live] = self._forward([prepared[i] for i in live], None, numbers=live,
                                      count=len(prepared))
        self._cross_check(lambda: prepared, out)
        return out

    def estimate_batch(self, samples: Iterable[Any]) -> np.ndarray:
        """Estimates for many samples in batched forward passes.

        ``samples``: ``(x, y)`` pairs or objects with ``.x``/``.y`` (e.g. ``mistgen``
        samples), of any shapes.  Samples are validated like :meth:`estimate`, sorted by
        shape and padded; each chunk of at most ``max_cells`` padded cells is one forward
        pass.  Returns a float64 array in input order.
        """
        self._refuse_conditional("estimate_batch")
        self._last_info = {}            # last_info records single-sample calls
        kept: list[tuple[np.ndarray, ...]] = []
        prepared = self._prepare_many(samples, warn_ties=False, kept=kept)
        tied = self._warn_ties(prepared, kept)
        out = self._predict(prepared, None)
        out = out[:, 0] if out.ndim == 2 else out
        if self.neighbour_correction:
            out = self._corrected(prepared, out, self.seed, tied)
        self._cross_check(lambda: prepared, out)
        return out

    def _corrected(self, prepared: list[tuple[np.ndarray, np.ndarray]],
                   estimates: np.ndarray, seed: int, tied: list[bool]) -> np.ndarray:
        """``estimates`` with the neighbour correction applied
        (:mod:`mistmodel.neighbour_correction`): one batched pass over the draws from
        the neighbour of each sample it applies to (its fitted copula, or its rows
        shuffled below 20 rows per column).  The draws are seeded by ``seed`` and the
        sample's copula (:func:`~mistmodel.neighbour_correction.copula_digest`), so
        samples of one shape do not share them.  ``tied``: whether each sample has a
        heavily tied column."""
        out = np.array(estimates, dtype=np.float64)
        reasons, hoods = {}, {}
        for i, (x, y) in enumerate(prepared):
            reasons[i] = self._correction_blocked(x, y, out[i], tied[i])
            if reasons[i] is None:
                hoods[i] = nc.neighbour(x, y)
                if hoods[i] is None:
                    reasons[i] = "singular correlation (a column repeats another)"
                elif hoods[i].weight(out[i]) == 0.0:
                    reasons[i] = "the neighbour's MI is above 1 nat"
        live = [i for i in hoods if reasons[i] is None]
        on_draws, counts = np.zeros(len(live)), []
        if live:
            draws = []
            for i in live:
                drawn = hoods[i].draws(self._draw_rows(len(prepared[i][0])), seed)
                draws += self._signed_as(prepared[i], drawn)
                counts.append(len(drawn))
            row_groups = self._row_groups
            on_draws = np.ravel(self._predict(draws, None, check_shapes=False,
                                              orient=False))
            on_draws = np.add.reduceat(on_draws, np.cumsum([0] + counts[:-1])) / counts
            self._row_groups = row_groups
            mi = np.array([hoods[i].mi for i in live])
            weight = np.array([hoods[i].weight(out[i]) for i in live])
            out[live] -= weight * (on_draws - mi)
        if len(prepared) == 1:
            info: dict[str, Any] = {"weight": 0.0, "reason": reasons[0], "neighbour": None,
                                    "neighbour_mi": None, "neighbour_nu": None,
                                    "neighbour_estimate": None, "draws": 0}
            if 0 in hoods and hoods[0] is not None:
                info.update(neighbour=hoods[0].kind, neighbour_mi=hoods[0].mi,
                            neighbour_nu=hoods[0].nu if np.isfinite(hoods[0].nu) else None)
            if live:
                info.update(weight=float(weight[0]),
                            reason="applied", neighbour_estimate=float(on_draws[0]),
                            draws=counts[0])
            self._correction_info = info
        return out

    def _signed_as(self, sample: tuple[np.ndarray, np.ndarray],
                   drawn: list[tuple[np.ndarray, np.ndarray]]
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The draws from a sample's neighbour with the columns negated that
        :attr:`orient` turns in the whole sample, so that the network reads them as it
        reads the sample (they are then read without orientation of their own: a draw's
        weak negative dependence would otherwise be turned where the sample's is not)."""
        if not self.orient:
            return drawn
        signs = orientation_signs(normal_scores(sample[0]), normal_scores(sample[1]))
        if signs is None:
            return drawn
        return [(x * signs[0], y * signs[1]) for x, y in drawn]

    def _draw_rows(self, n: int) -> int:
        """Rows of each draw from the neighbour of a sample of ``n`` rows: ``n``, or, for
        a sample read in more than :data:`~mistmodel.neighbour_correction.DRAW_GROUPS`
        row groups, that many groups of the sample's group size.  The network's bias is
        that of a group, so fewer groups leave the correction's expectation as it is and
        cost a fraction of the time (at n = 100,000: 8 groups of a draw, not 34)."""
        groups = self.row_groups(n)
        return n if groups <= nc.DRAW_GROUPS else nc.DRAW_GROUPS * -(-n // groups)

    @staticmethod
    def _correction_blocked(x: np.ndarray, y: np.ndarray, estimate: float,
                            tied: bool) -> str | None:
        """Why the neighbour correction does not apply to this sample (None: it may)."""
        if x.shape[1] == 0 or y.shape[1] == 0:
            return "a side is constant"
        if tied:
            return "a heavily tied column (a continuous copula is no neighbour of it)"
        if nc.correction_weight(estimate, 0.0) == 0.0:
            return "MIST's estimate is above 1 nat"
        if not nc.fits_copula(len(x), x.shape[1], y.shape[1]) and \
                nc.ShuffledNeighbour.weight(estimate) == 0.0:
            return (f"MIST's estimate is above {nc.SHUFFLED_NONE_ABOVE:g} nats, with fewer "
                    f"than {nc.ROWS_PER_COLUMN} rows per column")
        return None

    def quantiles(self, x: Any, y: Any, taus: Sequence[float]) -> np.ndarray:
        """Quantiles of I(X;Y) at ``taus`` (inside :attr:`tau_range`); non-decreasing."""
        return self.quantiles_batch([(x, y)], taus)[0]

    def quantiles_batch(self, samples: Iterable[Any], taus: Sequence[float]) -> np.ndarray:
        """Quantiles for many samples: array ``(len(samples), len(taus))``."""
        self._require_quantiles("quantiles")
        self._last_info = {}
        return self._predict(self._prepare_many(samples), self._check_taus(taus))

    def interval(self, x: Any, y: Any, level: float = 0.9, n_boot: int | None = None,
                 seed: int = 0) -> tuple[float, float]:
        """Central ``level`` interval for I(X;Y).

        A ``mist_qr`` checkpoint answers with its quantiles ``(1 - level) / 2`` and
        ``(1 + level) / 2``, widened (or narrowed) by the checkpoint's split-conformal
        factor for ``level``, the sample's size and its raw median where it has one
        (:mod:`mistmodel.calibration`), the raw quantiles elsewhere, with an
        :class:`UncalibratedLevelWarning`; ``last_info`` says which.  Levels whose
        quantiles lie beyond the trained tau grid are refused; ``n_boot``/``seed`` are
        ignored.  A point (``mist``) checkpoint has no interval of its own: it raises a
        clear error, unless ``n_boot`` is given explicitly, in which case it returns the
        base class's subsample-bootstrap interval.
        """
        self._last_info = {}
        _check_level(level)
        self._refuse_conditional("interval")
        if not self.is_quantile:
            if n_boot is None:
                self._require_quantiles("interval")
            return super().interval(x, y, level=level, n_boot=n_boot, seed=seed)
        xa, ya = check_xy(x, y, MIN_ROWS, who="MIST")
        q, factor, _ = self._intervals(self._prepare_many([(xa, ya)]), level, calibrated=True)
        self._last_info = {**_columns_info(xa, ya), **self._run_info(),
                           **self._interval_info(level, factor)}
        return float(q[0, 0]), float(q[0, 1])

    def interval_batch(self, samples: Iterable[Any], level: float = 0.9,
                       calibrated: bool = True) -> np.ndarray:
        """Intervals for many samples: array ``(len(samples), 2)``.  ``calibrated=False``
        gives the raw quantile intervals even where a conformal factor exists, and without
        the :class:`UncalibratedLevelWarning` a level without one gives otherwise.  A sample
        with an entirely constant side gets exactly ``[0, 0]``."""
        self._last_info = {}
        return self._intervals(self._prepare_many(samples), level, calibrated)[0]

    def calibration_factors(self, level: float, n: Sequence[int],
                            median: Sequence[float] | None = None) -> np.ndarray | None:
        """The checkpoint's split-conformal factor at ``level`` for samples of ``n`` rows
        whose raw median is ``median`` (the factor of each one's (n-bin, median cell), else
        its n-bin's, else the pooled one: :func:`mistmodel.calibration.sample_factors`), or
        None if the checkpoint has no factor for ``level``."""
        _check_level(level)
        return sample_factors(self.meta.get("interval_calibration"), level, n, median)

    def estimate_with_interval(self, x: Any, y: Any, level: float = 0.9,
                               n_boot: int = 100, seed: int = 0) -> Estimate:
        """Estimate and interval in one record.  A ``mist_qr`` checkpoint gives its median
        and its quantile interval (``info["interval_method"]`` says whether calibrated);
        a ``mist`` checkpoint falls back to the base class's subsample bootstrap
        (``n_boot`` forward passes).  ``info["interval_note"]`` says why, if the interval
        does not contain the estimate."""
        self._refuse_conditional("estimate_with_interval")
        if not self.is_quantile:
            return super().estimate_with_interval(x, y, level, n_boot, seed)
        _check_level(level)
        start = time.perf_counter()
        xa, ya = check_xy(x, y, MIN_ROWS, who="MIST")
        prepared = self._prepare_many([(xa, ya)])
        q, factor, median = self._intervals(prepared, level, calibrated=True)
        (lo, hi), value = (float(v) for v in q[0]), float(median[0])
        info = _columns_info(xa, ya)
        if _has_constant_side(*prepared[0]):
            info["note"] = "a side is constant, so the mutual information is 0"
        else:
            info.update(self._run_info())
        info.update(self._interval_info(level, factor))
        self._last_info = info
        if not lo <= value <= hi:
            info["interval_note"] = (
                f"the median {value:.4g} lies outside the interval: the conformal factor "
                "for this level narrows the raw quantile interval, here past the median")
        return Estimate(estimator=self.name, value=value, lower=lo, upper=hi, level=level,
                        n_boot=None, settings=_json_ready(self.settings()),
                        info=_json_ready(info), seconds=time.perf_counter() - start)

    # ------------------------------------------------------------------ internals
    def _require_conditional(self) -> None:
        if not self.is_conditional:
            raise NotImplementedError(
                f"{self.checkpoint or 'this network'} is a {self.variant} checkpoint: it "
                "estimates I(X; Y) only. For I(X; Y | Z) load the conditional checkpoint, "
                "MIST.load(variant='mist_cmi'), or use KSG (Frenzel-Pompe) or CCA")

    def _refuse_conditional(self, what: str) -> None:
        if self.is_conditional:
            raise RuntimeError(
                f"MIST.{what} estimates I(X; Y), but {self.checkpoint or 'this network'} is "
                "a conditional (mist_cmi) checkpoint: call estimate_conditional(x, y, z) "
                "for I(X; Y | Z), or load MIST.load() for I(X; Y)")

    def _require_quantiles(self, what: str) -> None:
        if not self.is_quantile:
            raise RuntimeError(
                f"MIST.{what} needs a quantile (mist_qr) checkpoint, but "
                f"{self.checkpoint or 'this network'} is a point-estimate (mist) checkpoint; "
                "load one with MIST.load(variant='mist_qr') or MIST.load(PATH_TO_QR_CHECKPOINT)")

    def _check_taus(self, taus: Sequence[float], level: float | None = None) -> np.ndarray:
        """``taus`` as an array, refused unless all lie in :attr:`tau_range` (``level``:
        the interval level they come from, for the message)."""
        if level is not None:
            _check_level(level)
        tau = np.atleast_1d(np.asarray(taus, dtype=np.float64))
        lo, hi = self.tau_range
        if tau.ndim != 1 or tau.size == 0 or not np.all(np.isfinite(tau)):
            raise ValueError(f"taus must be a non-empty list of numbers; got {taus!r}")
        slack = 1e-9                      # (1 - level) / 2 in floating point
        if np.all((tau >= lo - slack) & (tau <= hi + slack)):
            return np.clip(tau, lo, hi)
        if level is not None:
            raise ValueError(
                f"level {level:g} needs the quantiles at tau = {(1 - level) / 2:g} and "
                f"{(1 + level) / 2:g}, "
                f"but this MIST-QR was trained on tau in [{lo:g}, {hi:g}]: its central "
                f"intervals go up to level {1 - 2 * lo:g}")
        bad = tau[(tau < lo - slack) | (tau > hi + slack)]
        raise ValueError(f"this MIST-QR was trained on quantiles at tau in [{lo:g}, {hi:g}]; "
                         f"got tau = {', '.join(f'{t:g}' for t in bad)}, outside it")

    def _intervals(self, prepared: list[tuple[np.ndarray, np.ndarray]], level: float,
                   calibrated: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Central ``level`` intervals ``(len(prepared), 2)``, the factor applied to each
        (None: raw quantiles) and the medians; one forward pass for both ends, the median
        and, when ``calibrated``, the ends of every calibrated level below ``level``: an
        interval holds those levels' calibrated intervals, so that a higher level never
        gives a narrower interval (each level's own factor could)."""
        self._require_quantiles("interval_batch")
        _check_level(level)
        below = [float(k) for k in (self.meta.get("interval_calibration") or {}).get(
            "factors") or {} if float(k) < level - 1e-12] if calibrated else []
        ends = [(1 - level) / 2, 0.5, (1 + level) / 2] + [
            t for low in below for t in ((1 - low) / 2, (1 + low) / 2)]
        q = self._predict(prepared, self._check_taus(ends, level=level))
        rows = sample_rows(prepared)
        median = q[:, 1]
        factor = self.calibration_factors(level, rows, median) if calibrated else None
        if calibrated and factor is None and not all(_has_constant_side(*p) for p in prepared):
            self._warn_uncalibrated(level)
        self._cross_check(lambda: prepared, median)
        lower, upper = (q[:, 0], q[:, 2]) if factor is None else widen(q[:, 0], q[:, 2], factor)
        for k, low in enumerate(below):
            inner = self.calibration_factors(low, rows, median)
            if inner is not None:
                lo, hi = widen(q[:, 3 + 2 * k], q[:, 4 + 2 * k], inner)
                lower, upper = np.minimum(lower, lo), np.maximum(upper, hi)
        q = np.stack([lower, upper], axis=1)
        q[[_has_constant_side(x, y) for x, y in prepared]] = 0.0
        return q, factor, median

    def _calibrated_levels(self) -> list[str]:
        """The levels the checkpoint has conformal factors for, as its card writes them."""
        return sorted((self.meta.get("interval_calibration") or {}).get("factors") or {},
                      key=float)

    def _warn_uncalibrated(self, level: float) -> None:
        known = ", ".join(self._calibrated_levels()) or "none"
        warn(f"MIST-QR has no conformal factor at level {level:g} (calibrated levels: "
             f"{known}): its interval there starts from the raw quantiles, whose coverage "
             f"is not calibrated and depends on the data ({UNCALIBRATED_COVERAGE}). Ask for "
             "a calibrated level, "
             "or for raw intervals knowingly with interval_batch(..., calibrated=False)",
             UncalibratedLevelWarning)

    def _interval_info(self, level: float, factor: np.ndarray | None) -> dict[str, Any]:
        known = self._calibrated_levels()
        if factor is None:
            method = (f"raw quantiles: no conformal factor at level {level:g} (calibrated "
                      f"levels: {', '.join(known) or 'none'})")
        else:
            method = f"split-conformal calibrated quantiles, factor {float(factor[0]):+.3f}"
        below = [k for k in known if float(k) < level - 1e-12]
        if below:
            method += (f", widened where needed to hold the calibrated intervals at "
                       f"{', '.join(below)}")
        return {"level": level, "interval_method": method}

    def _who(self) -> str:
        return "MIST"

    def _cross_check(self, samples: Callable[[], list[tuple[np.ndarray, ...]]],
                     values: Sequence[float]) -> None:
        """One :class:`CrossCheckWarning` for the first of ``samples()`` where KSG reads
        clearly more than ``values`` (:func:`mistmodel.cross_check.first_miss`); nothing,
        and no work, when the check is off or its warning silenced."""
        if not self.cross_check or is_silenced(CrossCheckWarning):
            return
        pairs = samples()
        miss = cc.first_miss(pairs, values)
        if miss is None:
            return
        i, reference, rows = miss
        where = f"sample {i}: " if len(pairs) > 1 else ""
        warn(f"{where}MIST reads {float(values[i]):.3f} nats, but KSG (k = 5) reads "
             f"{reference:.3f} on {rows} of its rows: {cc.ADVICE}", CrossCheckWarning)

    def _prepare_many(self, samples: Iterable[Any], warn_ties: bool = True,
                      kept: list[tuple[np.ndarray, ...]] | None = None
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Validated samples with their constant columns dropped (a side may be left
        without columns); ``warn_ties=False`` leaves :meth:`_warn_ties` to the caller, and
        ``kept`` (a list) receives the numbers of each sample's columns left, per side."""
        prepared, left = [], [] if kept is None else kept
        for i, item in enumerate(samples):
            x, y = as_pair(item)
            try:
                xa, ya = check_xy(x, y, MIN_ROWS, who="MIST")
            except ValueError as exc:
                raise ValueError(f"sample {i}: {exc}") from None
            left.append(tuple(kept_columns(a.shape[1], constant_columns(a)) for a in (xa, ya)))
            prepared.append((xa[:, left[-1][0]], ya[:, left[-1][1]]))
        if not prepared:
            raise ValueError("MIST needs at least one sample")
        if warn_ties:
            self._warn_ties(prepared, left)
        return prepared

    # which columns of an array a TiedDataWarning is about (more than 10% of rows repeat)
    tie_flags = staticmethod(tied_flags)

    def _warn_ties(self, prepared: list[tuple[np.ndarray, ...]],
                   kept: Sequence[tuple[np.ndarray, ...]] | None = None) -> list[bool]:
        """Whether each sample has a heavily tied column; one :class:`TiedDataWarning` per
        call naming the first (by its number among all the sample's columns: ``kept``
        gives each sample's columns left after the constant ones, per side; without it,
        :func:`~mistmodel.estimators.base.column_number` does).  Also one
        :class:`OutOfRangeWarning` per call naming the first sample with an X or Y side of
        strongly correlated columns (:mod:`mistmodel.correlated_sides`)."""
        self._warn_correlated_sides(prepared)
        flags: list[bool] = []
        warned = False
        for i, parts in enumerate(prepared):
            tied = next(((side, t) for side, a in zip("xyz", parts) if (t := tied_columns(a))),
                        None)
            first = tied is not None and not warned
            warned = warned or first
            if first:
                side, columns = tied
                j, fraction = columns[0]
                j = (int(kept[i]["xyz".index(side)][j]) if kept is not None
                     else column_number(side, j))
                where = f"sample {i}, " if len(prepared) > 1 else ""
                more = (f" (and {len(columns) - 1} more {side} columns)"
                        if len(columns) > 1 else "")
                warn(f"{where}{side} column {j} repeats values in {fraction:.0%} of its "
                     f"rows{more}: {self.tie_advice}", TiedDataWarning)
            flags.append(tied is not None)
        return flags

    def _warn_correlated_sides(self, prepared: list[tuple[np.ndarray, ...]]) -> None:
        """One :class:`OutOfRangeWarning` for the first sample with a side whose columns are
        more correlated with each other than in the dependent samples MIST was trained on
        (:func:`mistmodel.correlated_sides.correlated_side`)."""
        if is_silenced(OutOfRangeWarning):
            return
        fewest = CONDITIONAL_MIN_COLUMNS if self.is_conditional else MIN_COLUMNS
        for i, parts in enumerate(prepared):
            found = correlated_side(parts, fewest)
            if found is not None:
                side, columns, correlation = found
                trained = ("nearly all the samples the conditional network was trained on "
                           f"(about 1% of them reach 0.55). {CONDITIONAL_ADVICE}"
                           if self.is_conditional else
                           "the dependent samples MIST was trained on (below about 0.55; "
                           f"only its independent ones go further). {ADVICE}")
                warn(f"{sample_prefix(i, len(prepared))}{side.upper()}'s {columns} columns "
                     "are strongly correlated with each other (mean absolute correlation of "
                     f"their normal scores {correlation:.2f}), beyond {trained}",
                     OutOfRangeWarning)
                return

    def _predict(self, prepared: list[tuple[np.ndarray, np.ndarray]],
                 tau: np.ndarray | None, check_shapes: bool = True,
                 orient: bool | None = None) -> np.ndarray:
        """Predictions in input order; 0 for samples with an entirely constant side.
        ``check_shapes=False`` skips the range warnings (for samples of shapes already
        checked); ``orient`` overrides :attr:`orient` (None: keep it)."""
        width = 1 if tau is None else len(tau)
        out = np.zeros((len(prepared), width) if self.is_quantile else len(prepared))
        live = [i for i, (x, y) in enumerate(prepared) if not _has_constant_side(x, y)]
        if live:
            out[live] = self._forward([prepared[i] for i in live], tau, check_shapes,
                                      numbers=live, count=len(prepared), orient=orient)
        return out

    def _check_shapes(self, shapes: list[tuple[int, ...]],
                      name_of: Callable[[int], str] = lambda i: "") -> None:
        """The n and dims of the samples (``shapes``: ``(n, dim_x, dim_y[, dim_z])``) against
        the card's ``data_ranges``; ``name_of(i)``: how a message names sample ``i``."""
        r = self.data_ranges
        lowest = max(WARN_ROWS, int(r["n"][0])) if "n" in r else WARN_ROWS
        smallest = min(s[0] for s in shapes)
        if smallest < WARN_ROWS:
            warn(
                f"MIST was trained on samples of n >= {lowest} rows; got n = {smallest}. "
                "The estimate is returned but is unreliable at this size.",
                SmallSampleWarning)
        elif smallest < lowest:
            warn(
                f"this network was trained on samples of n >= {lowest} rows; got "
                f"n = {smallest}. Expect lower accuracy below its trained range.",
                OutOfRangeWarning)
        if self.network.config.corrected_stat:
            narrow = [i for i, s in enumerate(shapes) if s[0] <= sum(s[1:]) + 2]
            if narrow:
                n, columns = shapes[narrow[0]][0], sum(shapes[narrow[0]][1:])
                warn(f"{name_of(narrow[0])}n = {n} rows for {columns} columns in all: with "
                     "no more rows than columns + 2 the bias-corrected Gaussian-copula "
                     "statistic this network leans on is undefined (a shrunk one stands in), "
                     "and its estimates can be off by a nat or more. Use more rows or fewer "
                     "columns (e.g. principal components per side).", SmallSampleWarning)
        problems = {}                                   # key -> "key = big > hi"
        first = len(shapes)                             # the first sample beyond a dim
        for key, pos in (("dim_x", 1), ("dim_y", 2), ("dim_z", 3), ("n", 0)):
            if key in r and len(shapes[0]) > pos:
                big = max(s[pos] for s in shapes)
                if big > r[key][1]:
                    problems[key] = f"{key} = {big} > {r[key][1]}"
                    if key != "n":
                        first = min(first, next(i for i, s in enumerate(shapes)
                                                if s[pos] > r[key][1]))
        if not problems:
            return
        trained = ", ".join(f"{k} in [{v[0]}, {v[1]}]" for k, v in r.items())
        where = name_of(first) if first < len(shapes) else ""
        beyond = (f"{where}sample beyond the shapes MIST was trained on "
                  f"({'; '.join(problems.values())}; trained: {trained})")
        if set(problems) - {"n"} and self.out_of_range == "refuse":
            raise ValueError(
                f"{beyond}. Beyond its trained dims the network's estimates can be off by "
                "orders of magnitude. Reduce the dims (e.g. principal components per side), "
                "use CCA or KSG (mistmodel.estimators), or load MIST with "
                "out_of_range='warn' to get the estimate anyway.")
        warn(f"{beyond}. The network accepts any shape, but expect lower accuracy "
             "out of range.", OutOfRangeWarning)

    def _forward(self, pairs: list[tuple[np.ndarray, ...]],
                 tau: np.ndarray | None, check_shapes: bool = True,
                 numbers: Sequence[int] | None = None, count: int | None = None,
                 orient: bool | None = None) -> np.ndarray:
        """Batched forward passes on validated pairs (triples, for a conditional network)
        without constant columns, in input order: ``(len(pairs),)`` point estimates or
        ``(len(pairs), T)`` quantiles.  ``check_shapes=False`` skips the range warnings;
        ``numbers`` (of ``count`` samples the caller was given) are the pairs' numbers
        the warnings name."""
        pieces, owner = self._split_rows(pairs)
        shapes = [(p[0].shape[0],) + tuple(a.shape[1] for a in p) for p in pieces]
        t = None
        if self.is_quantile:
            t = torch.as_tensor([0.5] if tau is None else tau, dtype=torch.float32,
                                device=self.device)
        if check_shapes:
            numbered = range(len(pairs)) if numbers is None else numbers
            total = len(pairs) if count is None else count
            self._check_shapes(shapes, lambda i: sample_prefix(numbered[owner[i]], total))
        out = np.zeros((len(pieces), len(t)) if self.is_quantile else len(pieces))
        flat = [(s[0], s[1], sum(s[2:])) for s in shapes]
        for chunk in plan_chunks(flat, max_cells=self.max_cells, max_batch=len(pieces)):
            batch = collate([pieces[i] for i in chunk], copula=self.network.config.copula,
                            orient=self.orient if orient is None else orient)
            batch = batch.to(self.device)
            out[chunk] = self._run(*batch.inputs(), t).double().cpu().numpy()
        if len(pieces) != len(pairs):      # row groups: each sample's mean
            mean = np.zeros((len(pairs),) + out.shape[1:])
            np.add.at(mean, owner, out)
            counts = np.bincount(owner, minlength=len(pairs))
            out = mean / counts.reshape((-1,) + (1,) * (out.ndim - 1))
        if not np.isfinite(out).all():
            raise FloatingPointError(
                f"{self.checkpoint or 'the network'} answered NaN or an infinite value: its "
                "weights are broken (a checkpoint's are checked at load; check a network "
                "built or changed by hand)")
        if check_shapes:
            median = None if t is None else int(np.argmin(np.abs(t.cpu().numpy() - 0.5)))
            self._check_values(out if median is None else out[:, median],
                               [min(p[0].shape[1], p[1].shape[1]) for p in pairs],
                               range(len(pairs)) if numbers is None else numbers,
                               len(pairs) if count is None else count)
        return out

    @property
    def mi_ceiling(self) -> dict[int, float]:
        """Width of a sample's narrower side -> the largest MI (nats) of the training
        samples whose narrower side has at most that many columns (the card's
        ``mi_ceiling``; empty if it has none)."""
        return {int(k): float(v) for k, v in (self.meta.get("mi_ceiling") or {}).items()}

    def _check_values(self, values: np.ndarray, widths: Sequence[int],
                      numbers: Sequence[int], count: int) -> None:
        """One :class:`OutOfRangeWarning` for the first of ``values`` (point estimates, or
        each sample's quantile nearest the median) above :attr:`mi_ceiling` at its
        sample's narrower side's width (``widths``; beyond the widest trained, the widest
        one's; below the narrowest, no check).  ``numbers``: the samples' numbers among
        the ``count`` the caller was given.

        Near and beyond its training's largest MI the network saturates, at most 1.84
        times the ceiling on Gaussian pairs of up to 4 times it (``benchmarks/high_mi.py``):
        the MI may be far higher.  From :data:`RUNAWAY` times the ceiling the estimate is no
        saturation but a network off its training distribution (MIST-QR's median reads
        890 nats on 16 + 16 columns correlated 0.9, MI 2.1): the MI may be anything."""
        ceiling = self.mi_ceiling
        if not ceiling or is_silenced(OutOfRangeWarning):
            return
        narrowest, widest = min(ceiling), max(ceiling)
        for k, (value, width) in enumerate(zip(np.asarray(values, dtype=np.float64), widths)):
            if width < narrowest:
                continue
            top = ceiling[min(width, widest)]
            if value <= top:
                continue
            if value > RUNAWAY * top:
                meaning = (f"That is {value / top:.0f} times it, beyond where the network "
                           "saturates on strong dependence (below 2 times): the sample is "
                           "unlike any it was trained on, and the estimate says nothing of "
                           "the MI, which may be far lower. Try CCA or KSG "
                           "(mistmodel.estimators).")
            else:
                meaning = ("There it extrapolates and saturates (8 + 8 Gaussian pairs of "
                           "MI 30 and 40 nats both read about 16): the MI may be far "
                           "higher. Take the estimate as a sign of strong dependence, not "
                           "as its measure.")
            warn(f"{sample_prefix(numbers[k], count)}MIST reads {value:.4g} nats, above the "
                 f"largest MI of the samples it was trained on with at most "
                 f"{min(width, widest)} columns on the narrower side ({top:g} nats). "
                 f"{meaning}", OutOfRangeWarning)
            return

    def _split_rows(self, pairs: list[tuple[np.ndarray, ...]]
                    ) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray]:
        """The pieces the network reads (:meth:`row_groups` per sample) and the sample
        each piece belongs to."""
        pieces, owner = [], []
        for i, parts in enumerate(pairs):
            n = len(parts[0])
            groups = self.row_groups(n)
            if groups == 1:
                pieces.append(parts)
                owner.append(i)
                continue
            order = np.random.default_rng([self.seed, n]).permutation(n)
            for rows in np.array_split(order, groups):
                rows = np.sort(rows)
                pieces.append(tuple(a[rows] for a in parts))
                owner.append(i)
        self._row_groups = self.row_groups(len(pairs[0][0])) if len(pairs) == 1 else None
        return pieces, np.asarray(owner)

    @property
    def runtime(self) -> str:
        """The backend that runs the forward pass: "simd", "torch" or "onnx"."""
        return self._run.name

    def __repr__(self) -> str:
        return (f"MIST(name={self.name!r}, checkpoint={self.checkpoint!r}, "
                f"backend={self.backend!r}, runtime={self.runtime!r})")


_CONSTANT_Z = ("every z column is constant, so I(X;Y|Z) = I(X;Y): estimate it with the "
               "mist checkpoint, MIST.load()")


def _has_constant_side(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether x or y has no column left after dropping the constant ones."""
    return x.shape[1] == 0 or y.shape[1] == 0


def _columns_info(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Sample shape and the constant columns left out (indices of the input)."""
    return {"n": int(x.shape[0]), "dx": int(x.shape[1]), "dy": int(y.shape[1]),
            "dropped_x": constant_columns(x).tolist(),
            "dropped_y": constant_columns(y).tolist()}
