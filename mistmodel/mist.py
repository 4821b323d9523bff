"""MIST and MIST-QR: the learned mutual-information estimator, as a library object.

    from mistmodel import MIST
    mist = MIST.load()                       # shipped point-estimate checkpoint (offline)
    mist.estimate(x, y)                      # I(X;Y) in nats
    mist.estimate_batch([(x1, y1), (x2, y2)])  # many samples, batched forward passes

    qr = MIST.load(variant="mist_qr")        # shipped quantile checkpoint
    qr.quantiles(x, y, [0.05, 0.5, 0.95])    # non-decreasing in tau
    qr.interval(x, y, level=0.9)             # (lower, upper)
    mist.interval(x, y, n_boot=100)          # point checkpoint: explicit bootstrap only

``MIST.load(path)`` returns an estimator for whichever variant the checkpoint holds.  A
point-estimate (``mist``) checkpoint refuses ``quantiles`` (and ``interval`` unless a
bootstrap is asked for with ``n_boot``) with a clear error; a quantile (``mist_qr``) checkpoint answers ``estimate`` with its median.

Input rules (all shared with the other estimators through ``check_xy``):

* ``x`` ``(n, dim_x)`` and ``y`` ``(n, dim_y)``, 2-D, numeric, finite, same ``n``;
  NaN/inf, mismatched rows, 1-D or empty input raise ``ValueError`` naming the problem;
* ``n < 2`` raises; ``2 <= n < 10`` works but warns (:class:`SmallSampleWarning`): the
  network was trained on ``n >= 10`` and such estimates are little better than a prior;
* dims or ``n`` beyond the ranges seen in training work (the network takes any shape)
  but warn (:class:`OutOfRangeWarning`), naming the trained range;
* constant columns are dropped (they carry no information); if one side is entirely
  constant the estimate is exactly 0.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from . import kernels
from .batching import collate, plan_chunks
from .calibration import sample_factors, sample_rows, widen
from .heap import retain_freed_memory
from .estimators.base import Estimator, _check_level, as_pair, check_xy, constant_columns
from .model import MISTNet, ModelConfig

__all__ = ["MIST", "SmallSampleWarning", "OutOfRangeWarning", "default_checkpoint",
           "load_network", "MIN_ROWS", "WARN_ROWS"]

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_CHECKPOINTS = {"mist": CHECKPOINT_DIR / "mist.pt", "mist_qr": CHECKPOINT_DIR / "mist_qr.pt"}
MIN_ROWS = 2      # below this an estimate is refused
WARN_ROWS = 10    # below this an estimate is given with a SmallSampleWarning


class SmallSampleWarning(UserWarning):
    """The sample has fewer rows than the network was trained on (n < 10)."""


class OutOfRangeWarning(UserWarning):
    """The sample's dims or n lie beyond what the network saw in training."""


def default_checkpoint(variant: str = "mist") -> Path:
    """Path of the checkpoint shipped inside the package for ``variant``."""
    if variant not in DEFAULT_CHECKPOINTS:
        raise ValueError(f"variant must be 'mist' or 'mist_qr', got {variant!r}")
    return DEFAULT_CHECKPOINTS[variant]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" -> CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_network(path: str | os.PathLike, device: str | torch.device = "cpu"
                 ) -> tuple[MISTNet, dict[str, Any]]:
    """Build the network stored in a checkpoint (training or exported) and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no MIST checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable MIST checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "model_config" not in ckpt:
        raise ValueError(f"{path} is not a MIST checkpoint (no model_state / model_config)")
    net = MISTNet(ModelConfig.from_dict(ckpt["model_config"]))
    net.load_state_dict(ckpt["model_state"])
    net.to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("model_state", "optimizer_state")}
    return net, meta


class MIST(Estimator):
    """The learned estimator.  Build with :meth:`MIST.load`.

    Parameters
    ----------
    network : the trained :class:`MISTNet`.
    meta : checkpoint metadata (``data_ranges`` drives the out-of-range warnings).
    checkpoint : where it was loaded from (recorded in ``settings()``).
    device : torch device for inference.
    max_cells : padded cells (``batch x rows x columns``) per forward pass in
        :meth:`estimate_batch`; larger lists are cut into shape-sorted chunks.  On CPU
        with ``torch.get_num_threads() = T > 1`` the chunks run in T Python threads with
        one torch thread each (torch's thread count is set to 1 for the duration of the
        call and restored after); a single chunk runs on one torch thread with its
        compiled kernels (:mod:`mistmodel.kernels`) split over T threads.
    """

    bootstrap = "subsample"

    def __init__(self, network: MISTNet, meta: dict[str, Any] | None = None,
                 checkpoint: str | None = None, device: str | torch.device | None = None,
                 max_cells: int = 65_536, seed: int = 0):
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        self.meta = dict(meta or {})
        self.checkpoint = checkpoint
        self.max_cells = int(max_cells)
        self.seed = int(seed)
        self.variant = network.config.variant
        self.name = self.variant

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, variant: str = "mist",
             device: str | torch.device | None = None, **kwargs: Any) -> "MIST":
        """Load a checkpoint; ``path=None`` takes the one shipped for ``variant``.

        The shipped checkpoints live inside the package, so this works offline.  The
        returned estimator has the variant the checkpoint holds.
        """
        ckpt = default_checkpoint(variant) if path is None else Path(path)
        if path is None and not ckpt.is_file():
            raise FileNotFoundError(
                f"the default {variant} checkpoint is missing from the package ({ckpt}); "
                "train one with `python -m mistmodel.train` and pass its path")
        dev = resolve_device(device)
        net, meta = load_network(ckpt, dev)
        return cls(net, meta, checkpoint=str(ckpt), device=dev, **kwargs)

    # ------------------------------------------------------------------ estimator API
    def settings(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "variant": self.variant,
                "device": str(self.device)}

    @property
    def is_quantile(self) -> bool:
        return self.variant == "mist_qr"

    @property
    def data_ranges(self) -> dict[str, Any]:
        """Ranges of n / dim_x / dim_y seen in training (empty if unknown)."""
        return dict(self.meta.get("data_ranges") or {})

    def _estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        return float(np.ravel(self._forward([(x, y)], None))[0])

    def estimate_batch(self, samples: Iterable[Any]) -> np.ndarray:
        """Estimates for many samples in batched forward passes.

        ``samples``: ``(x, y)`` pairs or objects with ``.x``/``.y`` (e.g. ``mistgen``
        samples), of any shapes.  Samples are validated like :meth:`estimate`, sorted by
        shape and padded; each chunk of at most ``max_cells`` padded cells is one forward
        pass (a typical list is a single pass).  Returns a float64 array in input order.
        """
        out = self._predict(samples, None)
        return out[:, 0] if out.ndim == 2 else out

    def quantiles(self, x: Any, y: Any, taus: Sequence[float]) -> np.ndarray:
        """Quantiles of I(X;Y) at ``taus`` (in (0, 1)); non-decreasing in tau."""
        return self.quantiles_batch([(x, y)], taus)[0]

    def quantiles_batch(self, samples: Iterable[Any], taus: Sequence[float]) -> np.ndarray:
        """Quantiles for many samples: array ``(len(samples), len(taus))``."""
        self._require_quantiles("quantiles")
        tau = np.atleast_1d(np.asarray(taus, dtype=np.float64))
        if tau.ndim != 1 or tau.size == 0 or not np.all((tau > 0) & (tau < 1)):
            raise ValueError(f"taus must be a non-empty list of numbers in (0, 1); got {taus!r}")
        return self._predict(samples, tau)

    def interval(self, x: Any, y: Any, level: float = 0.9, n_boot: int | None = None,
                 seed: int = 0) -> tuple[float, float]:
        """Central ``level`` interval for I(X;Y).

        A ``mist_qr`` checkpoint answers with its quantiles ``(1 - level) / 2`` and
        ``(1 + level) / 2``, widened (or narrowed) by the checkpoint's split-conformal
        factor for ``level`` and the sample's size when it has one
        (:mod:`mistmodel.calibration`; the shipped checkpoint has them for 0.5, 0.8, 0.9 and
        0.95, per bin of n); ``n_boot``/``seed`` are ignored:
        no resampling needed.  A point (``mist``) checkpoint has no interval of its own: it
        raises a clear error, unless ``n_boot`` is given explicitly, in which case it
        returns the base class's subsample-bootstrap interval (``n_boot`` forward passes)
        like the baselines do.
        """
        _check_level(level)
        if not self.is_quantile:
            if n_boot is None:
                self._require_quantiles("interval")
            return super().interval(x, y, level=level, n_boot=n_boot, seed=seed)
        lo, hi = self.interval_batch([(x, y)], level)[0]
        return float(lo), float(hi)

    def interval_batch(self, samples: Iterable[Any], level: float = 0.9,
                       calibrated: bool = True) -> np.ndarray:
        """Intervals for many samples: array ``(len(samples), 2)``.  ``calibrated=False``
        gives the raw quantile intervals even where a conformal factor exists."""
        _check_level(level)
        samples = list(samples)
        q = self.quantiles_batch(samples, [(1 - level) / 2, (1 + level) / 2])
        if not calibrated:
            return q
        factor = self.calibration_factors(level, sample_rows(samples))
        if factor is None:
            return q
        return np.stack(widen(q[:, 0], q[:, 1], factor), axis=1)

    def calibration_factors(self, level: float, n: Sequence[int]) -> np.ndarray | None:
        """The checkpoint's split-conformal factor at ``level`` for samples of ``n`` rows
        (the factor of each one's n-bin where fitted, else the pooled one), or None if the
        checkpoint has no factor for ``level``."""
        return sample_factors(self.meta.get("interval_calibration"), level, n)

    def estimate_with_interval(self, x: Any, y: Any, level: float = 0.9,
                               n_boot: int = 100, seed: int = 0):
        """Estimate and interval in one record.  A ``mist_qr`` checkpoint gives its
        quantile interval; a ``mist`` checkpoint falls back to the base class's
        subsample bootstrap (``n_boot`` forward passes)."""
        if not self.is_quantile:
            return super().estimate_with_interval(x, y, level, n_boot, seed)
        from .estimators.base import Estimate, _json_ready
        start = time.perf_counter()
        value = self.estimate(x, y)
        lo, hi = self.interval(x, y, level)
        return Estimate(estimator=self.name, value=value, lower=lo, upper=hi, level=level,
                        n_boot=None, settings=_json_ready(self.settings()),
                        info=_json_ready(self.last_info), seconds=time.perf_counter() - start)

    # ------------------------------------------------------------------ internals
    def _require_quantiles(self, what: str) -> None:
        if not self.is_quantile:
            raise RuntimeError(
                f"MIST.{what} needs a quantile (mist_qr) checkpoint, but "
                f"{self.checkpoint or 'this network'} is a point-estimate (mist) checkpoint; "
                "load one with MIST.load(variant='mist_qr') or MIST.load(PATH_TO_QR_CHECKPOINT)")

    def _who(self) -> str:
        return "MIST"

    def _prepare_many(self, samples: Iterable[Any]) -> tuple[list, set[int]]:
        """Validate samples and drop constant columns; indices of all-constant sides."""
        prepared: list[tuple[np.ndarray, np.ndarray]] = []
        const: set[int] = set()
        for i, item in enumerate(samples):
            x, y = as_pair(item)
            try:
                xa, ya = check_xy(x, y, MIN_ROWS, who="MIST")
            except ValueError as exc:
                raise ValueError(f"sample {i}: {exc}") from None
            cx, cy = constant_columns(xa), constant_columns(ya)
            if cx.size or cy.size:
                xa, ya = np.delete(xa, cx, axis=1), np.delete(ya, cy, axis=1)
                if xa.shape[1] == 0 or ya.shape[1] == 0:
                    const.add(i)
            prepared.append((xa, ya))
        if not prepared:
            raise ValueError("estimate_batch needs at least one sample")
        return prepared, const

    def _predict(self, samples: Iterable[Any], tau: np.ndarray | None) -> np.ndarray:
        """Validated, batched predictions in input order; 0 for samples whose X or Y is
        all constant columns (no information)."""
        prepared, const = self._prepare_many(samples)
        live = [i for i in range(len(prepared)) if i not in const]
        if not live:
            shape = (len(prepared),) if not self.is_quantile else (
                len(prepared), 1 if tau is None else len(tau))
            return np.zeros(shape, dtype=np.float64)
        pred = self._forward([prepared[i] for i in live], tau)
        out = np.zeros((len(prepared),) + pred.shape[1:], dtype=np.float64)
        out[live] = pred
        return out

    def _warn_shapes(self, shapes: list[tuple[int, int, int]]) -> None:
        small = [s[0] for s in shapes if s[0] < WARN_ROWS]
        if small:
            warnings.warn(
                f"MIST was trained on samples of n >= {WARN_ROWS} rows; got n = {min(small)}. "
                "The estimate is returned but is unreliable at this size.",
                SmallSampleWarning, stacklevel=4)
        r = self.data_ranges
        problems = []
        for key, pos in (("dim_x", 1), ("dim_y", 2), ("n", 0)):
            if key in r:
                lo, hi = r[key]
                big = max(s[pos] for s in shapes)
                if big > hi:
                    problems.append(f"{key} = {big} > {hi}")
        if problems:
            trained = ", ".join(f"{k} in [{v[0]}, {v[1]}]" for k, v in r.items())
            warnings.warn(
                f"sample beyond the shapes MIST was trained on ({'; '.join(problems)}; "
                f"trained: {trained}). The network accepts any shape, but expect lower "
                "accuracy out of range.", OutOfRangeWarning, stacklevel=4)

    def _forward(self, pairs: list[tuple[np.ndarray, np.ndarray]],
                 tau: np.ndarray | None) -> np.ndarray:
        """Batched inference on validated pairs, in input order."""
        shapes = [(x.shape[0], x.shape[1], y.shape[1]) for x, y in pairs]
        self._warn_shapes(shapes)
        copula = self.network.config.copula
        is_q = self.is_quantile
        width = 1 if (is_q and tau is None) else (len(tau) if is_q else 0)
        out = np.zeros((len(pairs), width) if is_q else len(pairs), dtype=np.float64)
        t = None
        if is_q:
            t = torch.as_tensor(np.array([0.5]) if tau is None else tau, dtype=torch.float32,
                                device=self.device)
        chunks = plan_chunks(shapes, max_cells=self.max_cells, max_batch=len(pairs))

        def run(chunk: list[int]) -> np.ndarray:
            with torch.inference_mode():
                batch = collate([pairs[i] for i in chunk], copula=copula).to(self.device)
                pred = self.network(*batch.inputs(), tau=t, lookup=batch.lookup)
                return pred.double().cpu().numpy()

        if self.device.type == "cpu":
            retain_freed_memory()
        threads = torch.get_num_threads()
        single = len(chunks) == 1
        if self.device.type != "cpu" or threads < 2 or (single and not kernels.enabled()):
            for chunk in chunks:
                out[chunk] = run(chunk)
            return out
        # On CPU the many small operations of a forward pass parallelise better across
        # chunks than within one: chunks run side by side, one torch thread each.  A single
        # chunk runs its small operations on one thread and splits the compiled kernels,
        # where most of its time goes, over all of them.
        kernel_threads = kernels.thread_count()         # torch's, or the caller's setting
        torch.set_num_threads(1)
        try:
            if single:
                with kernels.kernel_threads(kernel_threads):
                    out[chunks[0]] = run(chunks[0])
            else:
                with ThreadPoolExecutor(min(threads, len(chunks))) as pool:
                    for chunk, pred in zip(chunks, pool.map(run, chunks)):
                        out[chunk] = pred
        finally:
            torch.set_num_threads(threads)
        return out

    def __repr__(self) -> str:
        return f"MIST(variant={self.variant!r}, checkpoint={self.checkpoint!r})"
