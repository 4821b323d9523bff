"""Training MIST / MIST-QR on meta-dataset stores written by ``mistgen``.

    from mistmodel.training import TrainConfig, train
    path = train(TrainConfig(train="data/meta/train.zarr", val="data/meta/val.zarr",
                             out="models/mist", variant="mist", max_steps=600))

What happens:

* **Streaming.**  The training store is read shard by shard in a seeded random order;
  ``buffer_shards`` shards at a time are pooled, shuffled, sorted by shape and cut into
  batches (bucketing: few padded cells), and the batches are shuffled.  Memory depends on
  the shard size and the buffer, never on the size of the store.  A list of stores is
  read as one (``mistgen.open_meta_dataset(list)``).
* **Batches** hold at most ``batch_size`` samples and ``max_cells`` padded cells.  Each
  sample is normalised per column by its normal scores (the copula) and, with
  probability 1/2, has X and Y swapped (MI is symmetric; the target is unchanged);
  optionally (``subsample_rows``) a random subset of its rows is used instead (same MI).
* **Objective.**  ``mist``: squared error on MI in nats.  ``mist_qr``: pinball loss, with
  ``taus_per_sample`` values of tau drawn uniformly from the knot range per datapoint at
  every step (independent draws, averaged).  ``log_weight > 0`` adds the same loss on the
  scale ``log(MI + log_eps)``, where errors near MI = 0 count (:mod:`mistmodel.losses`).
* **Optimisation.**  AdamW, gradient-norm clipping, linear warm-up then cosine decay of the
  learning rate over the run: over the planned samples (``epochs`` passes), or over
  whichever runs out first of those, ``max_steps`` optimizer steps and the time budget.
* **Validation** on a separate store after every epoch (streamed too): loss, MSE by n-bin,
  and for ``mist_qr`` the coverage of the central 90% interval.
* **Files** in ``out``:

  - ``checkpoint.safetensors``: the model of the best validation epoch with its card
    (:mod:`mistmodel.checkpoint`: weights as data, metadata as JSON), the form
    ``MIST.load`` reads and the package ships;
  - ``training_state.pt``: the latest weights, optimizer, schedule, RNG state and
    history, written after every epoch; ``train`` resumes from it (unless
    ``resume=False``).  It holds tensors and plain containers only and is read with
    ``torch.load(weights_only=True)``;
  - ``metrics.json`` (config, per-epoch records, per-step loss and learning rate) and
    ``curves.png`` (loss and learning-rate schedule by step).

  ``init`` starts a new run from another run's ``checkpoint.safetensors`` (a further
  training stage, or fine-tuning on warped stores); the card records every stage.
* **Reproducibility.**  The data order of epoch ``e`` and the taus are functions of
  ``(seed, e)``; on the same machine, torch version and thread count, a run and a run
  resumed from any epoch give the same weights.  A step budget (``max_steps``) keeps
  that; a time budget makes the end point (and the schedule) depend on the machine's speed.
* **Threads**: ``threads`` sets torch's CPU threads for the duration of the call only.
* **Device**: CUDA when available, CPU otherwise (``device`` overrides).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .caller_warnings import warn
from .batching import Batch, bucket_batches, collate, iter_buffered, plan_chunks
from .checkpoint import load_checkpoint, save_checkpoint
from .config_checks import OPTIMISATION_RANGES, check_fields, check_switches_and_seed
from .threads import torch_threads
from .losses import pinball_loss, point_loss, quantile_loss
from .mist import resolve_device
from .model import MISTNet, ModelConfig, config_from_dict, count_parameters

__all__ = ["TrainConfig", "train", "evaluate", "WarmupCosine", "N_BINS", "open_stores",
           "read_training_state", "CHECKPOINT", "TRAINING_STATE"]

N_BINS = {"[10,100)": (10, 100), "[100,300)": (100, 300), "[300,500]": (300, 501),
          "(500,...)": (501, math.inf)}
EVAL_TAUS = tuple(np.round(np.linspace(0.05, 0.95, 19), 4))
CHECKPOINT = "checkpoint.safetensors"
TRAINING_STATE = "training_state.pt"
STATE_FORMAT = "mist-training-state/1"
# what a store's samples were drawn from ...
DRAW_KEYS = ("split", "seed", "count", "specs", "design", "priors", "shard_size")
# ... and what was done to them since: their dtype and, for a warped store, its warp (the
# flows' sha256 among it)
STORE_RECIPE_KEYS = (*DRAW_KEYS, "dtype", "warp")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved with its state and in its card)."""

    train: Any = None                  # store path or list of store paths
    val: Any = None                    # store path / list, or None (no validation)
    out: str = "models/mist"           # output directory
    variant: str = "mist"              # "mist" or "mist_qr"
    model: dict = field(default_factory=dict)   # ModelConfig overrides
    epochs: int = 10
    time_budget_min: float | None = None  # stop (and checkpoint) when exceeded
    max_steps: int | None = None       # stop after so many optimizer steps (a budget)
    batch_size: int = 32               # most samples per batch
    max_cells: int = 300_000           # most padded cells (B x N x D) per batch
    buffer_shards: int = 4             # shards pooled for shuffling and bucketing
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.03               # fraction of the run spent warming up
    min_lr_ratio: float = 0.05         # final lr / peak lr
    grad_clip: float = 1.0
    taus_per_sample: int = 8           # mist_qr: taus drawn per datapoint per step
    log_weight: float = 0.0            # weight of the log-scale term of the loss (losses.py)
    log_eps: float = 0.02              # eps of the log scale, log(MI + eps)
    swap_xy: bool = True               # randomly swap X and Y (MI is symmetric)
    subsample_rows: float = 0.0        # probability of training on a random row subset
    seed: int = 0
    device: str = "auto"
    threads: int | None = None         # torch CPU threads during the call (None: unchanged)
    resume: bool = True
    init: str | None = None            # start from this checkpoint's weights
    progress: bool = True
    epochs_per_call: int | None = None  # end this call after so many epochs; call again to resume

    def __post_init__(self) -> None:
        if self.variant not in ("mist", "mist_qr"):
            raise ValueError(f"variant must be 'mist' or 'mist_qr', got {self.variant!r}")
        if self.train is None:
            raise ValueError("TrainConfig.train: give the training store path(s)")
        check_switches_and_seed(self, ("swap_xy", "resume", "progress"))
        if self.init is not None:
            if not isinstance(self.init, (str, os.PathLike)):
                raise ValueError(f"init must be a checkpoint path or None; got {self.init!r}")
            self.init = os.fspath(self.init)
        check_fields(self, positive_ints=("epochs", "max_steps", "threads", "batch_size",
                                          "max_cells", "buffer_shards", "taus_per_sample",
                                          "epochs_per_call"),
                     ranges={**OPTIMISATION_RANGES,
                             "subsample_rows": (0.0, 1.0, False, False)})
        if self.time_budget_min is not None:
            check_fields(self, ranges={"time_budget_min": (0.0, math.inf, True, True)})
        if "variant" in (self.model or {}):
            raise ValueError("model may not set variant: it is the config's own variant "
                             "('mist' or 'mist_qr'; --variant on the command line)")

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict({**self.model, "variant": self.variant})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("train", "val"):
            v = d[key]
            d[key] = [str(p) for p in v] if isinstance(v, (list, tuple)) else (
                None if v is None else str(v))
        d["out"] = str(d["out"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return config_from_dict(cls, d, "training")


class WarmupCosine:
    """Learning rate as a function of training progress ``p`` in [0, 1]:
    linear warm-up over ``warmup``, then cosine decay to ``min_ratio`` of the peak."""

    def __init__(self, optimizer: torch.optim.Optimizer, peak: float, warmup: float,
                 min_ratio: float):
        self.optimizer, self.peak, self.warmup, self.min_ratio = optimizer, peak, warmup, min_ratio
        self.progress = 0.0

    def factor(self, p: float) -> float:
        p = min(max(p, 0.0), 1.0)
        if self.warmup > 0 and p < self.warmup:
            return max(p / self.warmup, 1e-3)
        q = (p - self.warmup) / max(1.0 - self.warmup, 1e-12)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * q))

    def step(self, progress: float) -> float:
        self.progress = progress
        lr = self.peak * self.factor(progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, float]:
        return {"progress": self.progress, "peak": self.peak, "warmup": self.warmup,
                "min_ratio": self.min_ratio}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.progress = float(state["progress"])


def open_stores(paths: Any):
    """Open one store or several as one (through ``mistgen.open_meta_dataset``); a
    conditional (X, Y, Z) store is refused."""
    import mistgen
    if isinstance(paths, (list, tuple)):
        ds = mistgen.open_meta_dataset([str(p) for p in paths]) if len(paths) > 1 \
            else mistgen.open_meta_dataset(str(paths[0]))
    else:
        ds = mistgen.open_meta_dataset(str(paths))
    if ds.conditional:
        raise ValueError(f"{paths} holds conditional (X, Y, Z) samples; I(X;Y) training "
                         "reads (X, Y) stores (mistmodel.conditional_training trains on these)")
    return ds


def store_recipes(ds) -> list[dict[str, Any]]:
    """What each store of ``ds`` was built from (its path and mistgen's build record)."""
    parts = getattr(ds, "parts", [ds])
    return [{"path": str(p.path), **{k: p.meta[k] for k in STORE_RECIPE_KEYS if k in p.meta}}
            for p in parts]


def _shapes_of(ds) -> dict[str, np.ndarray]:
    idx = ds.index
    return {k: np.asarray(idx[k].values) for k in ("n", "dim_x", "dim_y", "mi")}


def _make_batch(samples: list, rng: np.random.Generator | None, copula: bool,
                swap: bool, subsample: float = 0.0) -> Batch:
    """Collate samples; with ``rng``, augment (both augmentations keep the true MI):
    swap X and Y with probability 1/2, and with probability ``subsample`` keep a random
    subset of ``n' ~ U{10..n}`` rows (a subset of i.i.d. rows is an i.i.d. sample)."""
    pairs = []
    for s in samples:
        x, y = s.x, s.y
        if rng is not None:
            if swap and rng.random() < 0.5:
                x, y = y, x
            n = x.shape[0]
            if subsample > 0 and n > 10 and rng.random() < subsample:
                rows = np.sort(rng.choice(n, size=int(rng.integers(10, n + 1)), replace=False))
                x, y = x[rows], y[rows]
        pairs.append((x, y))
    return collate(pairs, [s.mi for s in samples], copula=copula)


def iterate_batches(ds, epoch_seed: Sequence[int], cfg: TrainConfig, copula: bool,
                    shuffle: bool = True) -> Iterator[Batch]:
    """Stream a store as bucketed batches (shuffled with ``epoch_seed`` when ``shuffle``)."""
    rng = np.random.default_rng(list(epoch_seed))
    order = rng.permutation(ds.num_shards) if shuffle else range(ds.num_shards)
    for buffer in iter_buffered(ds.iter_shards(order), cfg.buffer_shards):
        if shuffle:
            for group in bucket_batches(buffer, rng, cfg.batch_size, cfg.max_cells):
                yield _make_batch(group, rng, copula, cfg.swap_xy, cfg.subsample_rows)
        else:
            shapes = [(s.x.shape[0], s.x.shape[1], s.y.shape[1]) for s in buffer]
            for chunk in plan_chunks(shapes, cfg.max_cells, cfg.batch_size):
                group = [buffer[i] for i in chunk]
                yield _make_batch(group, None, copula, False)


def _loss(net: MISTNet, batch: Batch, gen: torch.Generator | None, cfg: TrainConfig
          ) -> torch.Tensor:
    if net.is_quantile:
        model = net.config
        u = torch.rand(len(batch), cfg.taus_per_sample, generator=gen).to(batch.values.device)
        tau = model.tau_min + (model.tau_max - model.tau_min) * u
        pred = net(*batch.inputs(), tau=tau)
        return quantile_loss(pred, batch.target, tau, cfg.log_weight, cfg.log_eps)
    return point_loss(net(*batch.inputs()), batch.target, cfg.log_weight, cfg.log_eps)


@torch.no_grad()
def evaluate(net: MISTNet, ds, cfg: TrainConfig | None = None, device: str | torch.device = "cpu",
             level: float = 0.9) -> dict[str, Any]:
    """Validation metrics of ``net`` on a store (streamed, unshuffled)."""
    cfg = cfg or TrainConfig(train="-")
    net.eval()
    preds, targets, ns, lows, highs, pinballs = [], [], [], [], [], []
    taus = torch.tensor(EVAL_TAUS, dtype=torch.float32, device=device)
    lo_hi = torch.tensor([(1 - level) / 2, 0.5, (1 + level) / 2], dtype=torch.float32,
                         device=device)
    for batch in iterate_batches(ds, [0], cfg, net.config.copula, shuffle=False):
        batch = batch.to(device)
        if net.is_quantile:
            out = net(*batch.inputs(), tau=torch.cat([taus, lo_hi]))   # (B, 19 + 3)
            q, iv = out[:, :len(EVAL_TAUS)], out[:, len(EVAL_TAUS):]
            pinballs.append(float(pinball_loss(q, batch.target, taus.expand(len(batch), -1))))
            lows.append(iv[:, 0].cpu().numpy())
            preds.append(iv[:, 1].cpu().numpy())
            highs.append(iv[:, 2].cpu().numpy())
        else:
            preds.append(net(*batch.inputs()).cpu().numpy())
        targets.append(batch.target.cpu().numpy())
        ns.append(batch.n.cpu().numpy())
    pred, target, n = (np.concatenate(a) for a in (preds, targets, ns))
    err2 = (pred - target) ** 2
    out: dict[str, Any] = {"count": int(pred.size), "mse": float(err2.mean()),
                           "mae": float(np.abs(pred - target).mean()),
                           "bias": float((pred - target).mean())}
    out["mse_by_n"] = {label: (float(err2[(n >= lo) & (n < hi)].mean())
                               if ((n >= lo) & (n < hi)).any() else None)
                       for label, (lo, hi) in N_BINS.items()}
    if net.is_quantile:
        low, high = np.concatenate(lows), np.concatenate(highs)
        inside = (target >= low) & (target <= high)
        out["pinball"] = float(np.average(pinballs, weights=[len(p) for p in preds]))
        out["coverage"] = float(inside.mean())
        out["coverage_level"] = level
        out["mean_width"] = float((high - low).mean())
        out["loss"] = out["pinball"]
        out["point"] = "median"
    else:
        out["loss"] = out["mse"]
    return out


def read_training_state(out: str | os.PathLike) -> dict[str, Any] | None:
    """The resumable state a run left in ``out`` (``None`` when there is none).

    Read with ``torch.load(weights_only=True)``: tensors and plain containers only."""
    path = Path(out) / TRAINING_STATE
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a MIST training state ({STATE_FORMAT})")
    return state


def _atomic_torch_save(obj: Any, path: Path) -> None:
    from mistgen.files import atomic_output

    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def _atomic_write_text(text: str, path: Path) -> None:
    from mistgen.files import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(text)


# the settings a resumed run may change: where it stops this call and how it reports
# (not ``epochs``: the schedule is laid out over them, so the run would not be the same)
RESUMABLE_CHANGES = ("out", "epochs_per_call", "progress", "threads", "device", "resume")


def _check_same_run(saved: dict[str, Any], cfg: TrainConfig, path: Path,
                    saved_recipes: Any = None, recipes: Any = None) -> None:
    """Refuse to resume the run saved at ``path`` under other data or settings (stores,
    learning rate, seed, init, epochs...): it would go on as the saved run and ignore them.
    ``saved_recipes`` / ``recipes``: what the stores were built from then and now (a store
    rebuilt at the same path is other data)."""
    now = cfg.to_dict()
    changed = sorted(k for k in set(saved) | set(now)
                     if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k))
    if saved_recipes is not None:
        # a state records what this version records; one saved before a record was kept
        # is compared on what it has
        if "init_sha256" in saved_recipes and \
                saved_recipes["init_sha256"] != recipes.get("init_sha256"):
            changed.append("init checkpoint contents (rewritten since)")
        if any(not _same_stores(saved_recipes.get(k), recipes.get(k)) for k in ("train", "val")):
            changed.append("store contents (rebuilt since)")
    if changed:
        raise ValueError(f"{path} is a run with other {', '.join(changed)} than asked for; "
                         "resuming it would ignore them: use another --out directory, or "
                         "resume=False (--no-resume) to start afresh")


def _same_stores(saved: list[dict] | None, now: list[dict] | None) -> bool:
    """Whether the stores ``now`` match the ``saved`` recipes on every key those hold."""
    if saved is None or now is None:
        return saved is now
    return len(saved) == len(now) and all(
        all(n.get(k) == v for k, v in s.items()) for s, n in zip(saved, now))


def _check_out(out: Path, resume: bool, stores: list[str]) -> None:
    """Refuse an output folder that is a file, a store or inside one, or that holds another
    run's files (a checkpoint or metrics without the training state they resume from):
    training would write over them.  ``resume=False`` starts over there knowingly."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} is a file, not a folder")
    resolved = out.resolve()
    for store in map(lambda p: Path(p).resolve(), stores):
        if resolved == store or store in resolved.parents:
            raise ValueError(f"out: {out} is inside the store {store}; write the run elsewhere")
    for folder in (resolved, *resolved.parents):
        if (folder / "zarr.json").is_file():
            raise ValueError(f"out: {out} is inside the Zarr store {folder}; write the run "
                             "elsewhere")
    if resume and not (out / TRAINING_STATE).is_file():
        found = [name for name in (CHECKPOINT, "metrics.json", "curves.png")
                 if (out / name).exists()]
        if found:
            raise ValueError(
                f"out: {out} holds {', '.join(found)} but no {TRAINING_STATE} to resume from: "
                "another run's files (or one stopped before its first epoch was saved), which "
                "training would write over. Use another --out, or resume=False "
                "(--no-resume) to start over there")


def _draws(recipe: dict) -> dict:
    """A store recipe's draws alone: the same samples stored otherwise (dtype, path) match."""
    return {k: v for k, v in recipe.items() if k in DRAW_KEYS}


def _check_each_store_once(train: list[dict]) -> None:
    """Refuse a training store given twice (by path, or built from the same recipe): its
    samples would count twice."""
    for i, recipe in enumerate(train):
        for other in train[:i]:
            same_path = Path(recipe["path"]).resolve() == Path(other["path"]).resolve()
            if same_path or (_draws(recipe) and _draws(recipe) == _draws(other)):
                raise ValueError(f"training store {recipe['path']} is "
                                 f"{'given twice' if same_path else 'built from the same recipe as ' + str(other['path'])}: "
                                 "its samples would count twice")


def _check_disjoint(train: list[dict], val: list[dict]) -> None:
    """Refuse a validation store that is one of the training stores (by path, or built
    from the same recipe elsewhere): the best epoch would be picked on training data.
    ``train`` / ``val``: the stores' recipes (:func:`store_recipes`)."""
    paths = {Path(r["path"]).resolve() for r in train}
    for recipe in val:
        same_path = Path(recipe["path"]).resolve() in paths
        if same_path or (_draws(recipe) and any(_draws(recipe) == _draws(t) for t in train)):
            raise ValueError(f"validation store {recipe['path']} is "
                             f"{'one of the training stores' if same_path else 'built from the same recipe as a training store'}: "
                             "validate on a split of its own")


def _data_ranges(shapes: dict[str, np.ndarray]) -> dict[str, list[int]]:
    return {k: [int(shapes[k].min()), int(shapes[k].max())] for k in ("n", "dim_x", "dim_y")}


def mi_ceiling(shapes: dict[str, np.ndarray]) -> dict[str, float]:
    """The card's ``mi_ceiling``: for each width ``m`` of a sample's narrower side (its
    fewer columns, X's or Y's), from the narrowest in ``shapes`` to the widest, the largest
    MI in nats (rounded up to 4 decimals) of the samples whose narrower side has at most
    ``m`` columns; keys are the widths as strings (JSON)."""
    narrow = np.minimum(np.asarray(shapes["dim_x"]), np.asarray(shapes["dim_y"]))
    mi = np.asarray(shapes["mi"], dtype=np.float64)
    return {str(m): math.ceil(float(mi[narrow <= m].max()) * 1e4) / 1e4
            for m in range(int(narrow.min()), int(narrow.max()) + 1)}


def _plot_curves(history: dict[str, Any], path: Path, variant: str,
                 log_term: bool = False) -> None:
    """Training loss (running mean) and validation loss by step; the learning rate of
    every step (the schedule) below. ``log_term``: the training loss has the log-scale
    term, which the validation loss (what picks the best epoch) leaves out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mistgen.files import atomic_output

    fig = Figure(figsize=(8, 6))     # drawn without pyplot: the caller's backend stays
    FigureCanvasAgg(fig)
    ax = fig.subplots(2, 1, sharex=True)
    steps = np.asarray(history.get("steps", []), dtype=float).reshape(-1, 4)
    if len(steps):
        ax[0].plot(steps[:, 0], steps[:, 2], lw=0.8, alpha=0.8,
                   label="train (running mean)" + (" with the log-scale term" if log_term else ""))
        ax[1].plot(steps[:, 0], steps[:, 3], lw=1.0)
    val = [(e["step"], e["val"]["loss"]) for e in history.get("epochs", []) if e.get("val")]
    if val:
        ax[0].plot(*zip(*val), "s-", label="validation (end of epoch)"
                   + (", without it" if log_term else ""))
    ax[0].set_ylabel("MSE (nats^2)" if variant == "mist" else "pinball loss")
    ax[0].set_yscale("log")
    ax[0].legend()
    ax[1].set_xlabel("optimizer step")
    ax[1].set_ylabel("learning rate")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)


def _write_metrics(out: Path, cfg: TrainConfig, net: MISTNet, history: dict[str, Any],
                   extra: dict[str, Any], plot: bool = True) -> None:
    ep = history.get("epochs", [])
    with_val = [e for e in ep if e.get("val")]
    best = min(with_val, key=lambda e: e["val"]["loss"]) if with_val else None
    metrics = {
        "variant": cfg.variant,
        "config": cfg.to_dict(),
        "model_config": net.config.to_dict(),
        "parameters": count_parameters(net),
        **extra,
        "epochs": ep,
        "steps": {"columns": ["step", "samples_seen", "train_loss_running_mean", "lr"],
                  "rows": history.get("steps", [])},
        "final_validation": with_val[-1]["val"] if with_val else None,
        "best_epoch": best["epoch"] if best else None,
        "best_validation": best["val"] if best else None,
    }
    _atomic_write_text(json.dumps(metrics, indent=1), out / "metrics.json")
    if plot:
        _plot_curves(history, out / "curves.png", cfg.variant, cfg.log_weight > 0)


def _progress_bar(cfg: TrainConfig, count: int, step: int, samples_seen: int):
    """One bar for the whole run, in the unit of its budget: optimizer steps when
    ``max_steps`` is set, else samples over all ``epochs``."""
    from tqdm.auto import tqdm
    if cfg.max_steps is not None:
        return tqdm(total=cfg.max_steps, initial=step, unit="step", desc="training",
                    dynamic_ncols=True)
    return tqdm(total=cfg.epochs * count, initial=samples_seen, unit="sample",
                desc="training", dynamic_ncols=True)


def _filled(model_config: dict[str, Any], source: Any) -> dict[str, Any]:
    """A recorded model configuration with the defaults of options it predates."""
    try:
        return ModelConfig.from_dict(model_config).to_dict()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source} holds a model configuration this version cannot read "
                         f"({exc})") from None


def _start_card(init: str | None, net: MISTNet, device: torch.device) -> list[dict[str, Any]]:
    """Load ``init``'s weights into ``net``; return the training stages its card records."""
    if init is None:
        return []
    state, card = load_checkpoint(init, device=device)
    # a card written before a ModelConfig field existed holds that field's default
    if _filled(card["model_config"], init) != net.config.to_dict():
        raise ValueError(f"init checkpoint {init} holds a different model configuration "
                         f"({card['model_config']}) from this run's ({net.config.to_dict()})")
    net.load_state_dict(state)
    return list(card.get("stages", []))


def make_optimizer(net: MISTNet, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices, none on biases, norms, inducing points
    and seeds."""
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (decay if p.dim() >= 2 and "inducing" not in name and "seed" not in name
         else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def optimizer_step(net: MISTNet, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                   grad_clip: float, step: int) -> float:
    """Backward, clip the gradient norm, step; the loss as a float (non-finite raises)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    optimizer.step()
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(f"training loss became {value} at step {step}: the run "
                                 "diverged; lower the learning rate (lr)")
    return value


def train(config: TrainConfig | dict[str, Any]) -> Path:
    """Train (or resume) and return the path of the run's ``checkpoint.safetensors``.

    The caller's torch thread count and random state are as they were afterwards."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
    cuda = range(torch.cuda.device_count()) if torch.cuda.is_available() else []
    with torch_threads(cfg.threads), torch.random.fork_rng(devices=cuda):
        return _train(cfg)


def _train(cfg: TrainConfig) -> Path:
    out = Path(cfg.out)
    try:                                # refused before out/ exists
        device = resolve_device(cfg.device)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None
    cfg.model_config()                  # a bad model setting is refused before out/ exists
    train_ds = open_stores(cfg.train)
    val_ds = open_stores(cfg.val) if cfg.val is not None else None
    recipes = {"train": store_recipes(train_ds),
               "val": store_recipes(val_ds) if val_ds is not None else None,
               "init_sha256": None if cfg.init is None or not Path(cfg.init).is_file()
               else hashlib.sha256(Path(cfg.init).read_bytes()).hexdigest()}
    _check_each_store_once(recipes["train"])
    if val_ds is not None:
        _check_disjoint(recipes["train"], recipes["val"])
    _check_out(out, cfg.resume, [r["path"] for r in recipes["train"] + (recipes["val"] or [])])
    shapes = _shapes_of(train_ds)
    count = len(train_ds)

    torch.manual_seed(cfg.seed)
    net = MISTNet(cfg.model_config()).to(device)
    optimizer = make_optimizer(net, cfg.lr, cfg.weight_decay)
    scheduler = WarmupCosine(optimizer, cfg.lr, cfg.warmup, cfg.min_lr_ratio)
    history: dict[str, Any] = {"epochs": [], "steps": []}
    start_epoch, samples_seen, step, elapsed_before = 0, 0, 0, 0.0
    saved = read_training_state(out) if cfg.resume else None
    if saved is not None and not (out / CHECKPOINT).is_file():
        # the run's result was removed (e.g. a forced rerun): its state is not to resume
        warn(f"{out / TRAINING_STATE} belongs to a run whose {CHECKPOINT} is gone; "
             "training starts afresh", RuntimeWarning)
        saved = None
    if saved is not None:
        if _filled(saved["model_config"], out / TRAINING_STATE) != net.config.to_dict():
            raise ValueError(f"{out / TRAINING_STATE} holds a different model configuration; "
                             "use another --out directory or resume=False")
        _check_same_run(saved.get("train_config") or {}, cfg, out / TRAINING_STATE,
                        saved.get("store_recipes"), recipes)
        net.load_state_dict(saved["model_state"])
        optimizer.load_state_dict(saved["optimizer_state"])
        scheduler.load_state_dict(saved["scheduler_state"])
        torch.set_rng_state(saved["rng_state"]["torch"])
        start_epoch = int(saved["epoch"]) + 1
        samples_seen, step = int(saved["samples_seen"]), int(saved["step"])
        elapsed_before = float(saved["elapsed_s"])
        history = saved["history"]
        earlier_stages = saved["earlier_stages"]
        if saved["stopped_early"]:
            start_epoch = cfg.epochs          # a budget stop is final
    else:
        earlier_stages = _start_card(cfg.init, net, device)
    out.mkdir(parents=True, exist_ok=True)          # once the run is known to start
    planned = max(1, cfg.epochs * count)
    budget_s = None if cfg.time_budget_min is None else 60.0 * cfg.time_budget_min
    t0 = time.perf_counter()
    copula = net.config.copula
    extra = {"train_stores": cfg.to_dict()["train"], "val_stores": cfg.to_dict()["val"],
             "train_count": count, "data_ranges": _data_ranges(shapes),
             "mi_ceiling": mi_ceiling(shapes),
             "device": str(device), "threads": torch.get_num_threads()}
    stage = {"train_config": cfg.to_dict(), "train_recipes": recipes["train"],
             "val_recipes": recipes["val"]}
    stop = start_epoch >= cfg.epochs
    # the running mean of the loss goes on where a resumed run left it
    running = history["steps"][-1][2] if history["steps"] else None
    last_plot = time.perf_counter()
    end_epoch = cfg.epochs if cfg.epochs_per_call is None else min(
        cfg.epochs, start_epoch + cfg.epochs_per_call)
    bar = _progress_bar(cfg, count, step, samples_seen) if cfg.progress and not stop else None
    for epoch in range(start_epoch, end_epoch):
        net.train()
        gen = torch.Generator().manual_seed(int(np.random.default_rng([cfg.seed, epoch, 1])
                                                .integers(2**62)))
        losses, weights = [], []
        for batch in iterate_batches(train_ds, [cfg.seed, epoch], cfg, copula):
            batch = batch.to(device)
            elapsed = elapsed_before + time.perf_counter() - t0
            progress = samples_seen / planned
            if cfg.max_steps:                  # a step budget: the schedule ends with it
                progress = max(progress, step / cfg.max_steps)
            if budget_s:
                progress = max(progress, elapsed / budget_s)
            lr = scheduler.step(progress)
            value = optimizer_step(net, optimizer, _loss(net, batch, gen, cfg), cfg.grad_clip,
                                   step)
            b = len(batch)
            losses.append(value)
            weights.append(b)
            samples_seen += b
            step += 1
            running = value if running is None else 0.98 * running + 0.02 * value
            history["steps"].append([step, samples_seen, running, lr])
            if bar is not None:
                bar.update(1 if cfg.max_steps is not None else b)
                bar.set_postfix(epoch=epoch + 1, loss=f"{running:.3f}", lr=f"{lr:.2e}")
            if (budget_s and elapsed_before + time.perf_counter() - t0 > budget_s) or \
                    (cfg.max_steps is not None and step >= cfg.max_steps):
                stop = True
                break
        record = {"epoch": epoch, "train_loss": float(np.average(losses, weights=weights))
                  if losses else None, "samples_seen": samples_seen, "step": step,
                  "lr": optimizer.param_groups[0]["lr"],
                  "seconds": elapsed_before + time.perf_counter() - t0,
                  "complete": not stop}
        if val_ds is not None:
            record["val"] = evaluate(net, val_ds, cfg, device)
        history["epochs"].append(record)
        progress_record = {"epoch": epoch, "step": step, "samples_seen": samples_seen,
                           "stopped_early": stop}
        # the card leaves out the wall time (metrics.json has it by epoch), so that the
        # same run on the same machine writes the same checkpoint bytes
        # the checkpoint and the metrics first, the state last: an epoch counts as done
        # (and is not run again on resume) only once all of it is written
        vals = [e["val"]["loss"] for e in history["epochs"] if e.get("val")]
        if val_ds is None or record["val"]["loss"] <= min(vals):
            save_checkpoint(out / CHECKPOINT, net.state_dict(), {
                "variant": cfg.variant, "model_config": net.config.to_dict(),
                "data_ranges": extra["data_ranges"], "mi_ceiling": extra["mi_ceiling"],
                "validation": record.get("val"),
                **progress_record, "train_config": cfg.to_dict(),
                "stages": earlier_stages + [{**stage, **progress_record}],
            })
        last_epoch = stop or epoch == cfg.epochs - 1
        plot = last_epoch or time.perf_counter() - last_plot > 60.0
        _write_metrics(out, cfg, net, history, extra, plot=plot)
        if plot:
            last_plot = time.perf_counter()
        _atomic_torch_save({
            "format": STATE_FORMAT,
            "model_config": net.config.to_dict(),
            "model_state": net.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "scheduler_state": scheduler.state_dict(),
            "rng_state": {"torch": torch.get_rng_state()},
            **progress_record,
            "elapsed_s": record["seconds"],
            "train_config": cfg.to_dict(),
            "store_recipes": recipes,
            "history": history,
            "earlier_stages": earlier_stages,
        }, out / TRAINING_STATE)
        if cfg.progress:
            msg = f"epoch {epoch + 1}: train {record['train_loss']:.4f}"
            if record.get("val"):
                msg += f", val {record['val']['loss']:.4f}"
            (bar.write if bar is not None else print)(msg)
        if stop:
            break
    if bar is not None:
        bar.close()
    if not (out / CHECKPOINT).is_file():      # nothing to do and nothing saved yet
        raise RuntimeError(f"no epochs were run and {out / CHECKPOINT} does not exist")
    if not (out / "metrics.json").is_file() or not (out / "curves.png").is_file():
        _write_metrics(out, cfg, net, history, extra)
    return out / CHECKPOINT
