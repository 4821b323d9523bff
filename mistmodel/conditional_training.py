"""Training the conditional network (I(X;Y|Z)) on samples drawn from ``mistgen.conditional``.

    python -m mistmodel.conditional_training --out models/mist_cmi \\
        --init mistmodel/checkpoints/mist.safetensors --steps 1500

* **Data.**  A batch is drawn from ``numpy.random.default_rng(key)``: one
  ``n`` (log-uniform in ``n_range``), then per datapoint a spec, a transform chain of
  ``transforms`` (applied to each group, :func:`mistgen.conditional.transform_groups`),
  ``dim_x``, ``dim_y``,
  ``dim_z`` (uniform in ``dim_range``) and a seed for
  :func:`mistgen.conditional.conditional_sample`, so a batch is a pure function of the
  recipe and its key.  Datapoints are added while the padded batch stays within
  ``max_cells`` (at most ``batch_size``).  X and Y are swapped with probability 1/2
  (I(X;Y|Z) is symmetric).  Training batches come from ``[seed, 0, step]``; the
  validation set is ``val_count`` datapoints drawn the same way from ``[seed, 1, k]``, fixed
  for the run.  Either may come from conditional stores instead
  (:func:`mistgen.build_conditional_dataset`): with ``train_store`` the batches stream from
  its shards (shard order and batches shuffled per epoch from ``[seed, 0, epoch]``,
  datapoints of like shape batched together within ``max_cells``, X and Y swapped with
  probability 1/2), and with ``val_store`` the validation set is that whole store.
* **Start.**  ``init`` is a checkpoint: a conditional one continues; an unconditional
  (I(X;Y)) one is widened to the conditional network by :func:`widen_unconditional`
  (the X and Y parts are kept, what reads Z starts at zero or at the init's values).
  With ``anchor`` (the default) the widened network's head corrects a Gaussian-copula
  statistic (:class:`mistmodel.model.PointHead`; with ``corrected_stat``, also the
  default, the conditional MI less its Wishart bias) and its last layer starts at zero,
  so training starts from that statistic.
* **Objective.**  Squared error in nats plus ``log_weight`` times squared error on the
  log scale (:func:`mistmodel.losses.point_loss`); AdamW with warm-up and cosine decay
  over ``steps``; gradient clipping.
* **Files** in ``out``: ``checkpoint.safetensors`` (the weights at the best validation
  loss, checked every ``eval_every`` steps, with a card recording every stage's recipe)
  and ``metrics.json``.  The caller's torch threads and random state are restored.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from mistgen.conditional import (CONDITIONAL_SPECS, ConditionalSample, conditional_sample,
                                 transform_groups)

from .batching import bucket_batches, collate, plan_chunks
from .checkpoint import load_checkpoint, save_checkpoint
from .config_checks import OPTIMISATION_RANGES, check_fields, check_switches_and_seed
from .losses import point_loss
from .model import MISTNet, ModelConfig
from .threads import torch_threads
from .training import (WarmupCosine, _atomic_write_text, make_optimizer, optimizer_step,
                       store_recipes)

__all__ = ["ConditionalTrainConfig", "draw_step", "widen_unconditional", "train_conditional"]

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.json"


@dataclass
class ConditionalTrainConfig:
    out: str
    init: str
    specs: list[str] = field(default_factory=lambda: list(CONDITIONAL_SPECS))
    transforms: list[str] = field(default_factory=lambda: ["base"])
    n_range: tuple[int, int] = (50, 1000)
    dim_range: tuple[int, int] = (1, 16)
    steps: int = 1000
    batch_size: int = 32
    max_cells: int = 120_000
    lr: float = 3e-4
    warmup: float = 0.05
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    log_weight: float = 0.5
    log_eps: float = 0.02
    anchor: bool = True
    corrected_stat: bool = True
    val_count: int = 256
    train_store: str | list[str] | None = None
    val_store: str | list[str] | None = None
    eval_every: int = 250
    seed: int = 0
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [s for s in self.specs if s not in CONDITIONAL_SPECS]
        if unknown or not self.specs:
            raise ValueError(f"specs must be a non-empty list of {', '.join(CONDITIONAL_SPECS)}; "
                             f"unknown: {unknown}")
        from mistgen.registry import TRANSFORMS
        bad = [c for c in self.transforms
               if not c or any(t not in TRANSFORMS for t in c.split("-"))]
        if bad or not self.transforms:
            raise ValueError(f"transforms must be a non-empty list of chains of "
                             f"{', '.join(TRANSFORMS.names())} joined by '-'; bad: {bad}")
        for name, least in (("n_range", 10), ("dim_range", 1)):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) \
                    or len(value) != 2 or not all(_is_int(v) for v in value) \
                    or not least <= value[0] <= value[1]:
                raise ValueError(f"{name} must be two whole numbers [low, high] with "
                                 f"{least} <= low <= high; got {value!r}")
            setattr(self, name, (int(value[0]), int(value[1])))
        check_switches_and_seed(self, ("anchor", "corrected_stat", "progress"))
        for name in ("train_store", "val_store"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                value = list(value)
                setattr(self, name, value)
            if value is not None and not (isinstance(value, str) and value or isinstance(
                    value, list) and value and all(isinstance(v, str) and v for v in value)):
                raise ValueError(f"{name} must be a store path or a non-empty list of them, "
                                 f"got {value!r}")
        check_fields(self, positive_ints=("steps", "batch_size", "max_cells", "val_count",
                                          "eval_every", "threads"),
                     ranges=OPTIMISATION_RANGES)
        largest = self.n_range[1] * 3 * self.dim_range[1]
        if self.train_store is None and largest > self.max_cells:
            raise ValueError(f"one sample of n = {self.n_range[1]} rows and {self.dim_range[1]} "
                             f"columns per group holds {largest:,} cells, above max_cells = "
                             f"{self.max_cells:,}: raise max_cells or lower n_range / "
                             "dim_range")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["n_range"], d["dim_range"] = list(self.n_range), list(self.dim_range)
        return d


def draw_step(cfg: ConditionalTrainConfig, key: Sequence[int]) -> list[ConditionalSample]:
    """The datapoints of one batch, a pure function of ``cfg``'s data recipe and ``key``."""
    rng = np.random.default_rng(list(key))
    lo, hi = cfg.n_range
    n = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
    dlo, dhi = cfg.dim_range
    samples: list[ConditionalSample] = []
    widest = 0
    while len(samples) < cfg.batch_size:
        spec = cfg.specs[int(rng.integers(len(cfg.specs)))]
        chain = cfg.transforms[int(rng.integers(len(cfg.transforms)))]
        dims = [int(d) for d in rng.integers(dlo, dhi + 1, size=3)]
        widest = max(widest, sum(dims))
        if samples and (len(samples) + 1) * n * widest > cfg.max_cells:
            break
        s = transform_groups(conditional_sample(spec, n, *dims, seed=[*key, len(samples)]),
                             chain)
        if rng.random() < 0.5:
            s = _swapped(s)
        samples.append(s)
    return samples


def open_conditional_stores(paths: str | list[str]):
    """One conditional store, or several read as one; an (X, Y) store is refused."""
    import mistgen

    ds = mistgen.open_meta_dataset(paths if isinstance(paths, str) else list(paths))
    if not ds.conditional:
        raise ValueError(f"{paths} holds (X, Y) samples; the conditional network trains on "
                         "stores built by mistgen.build_conditional_dataset")
    return ds


def store_batches(ds, cfg: ConditionalTrainConfig) -> Iterator[list[ConditionalSample]]:
    """Endless shuffled batches from a conditional store, epoch after epoch (a pure
    function of the store and ``cfg.seed``)."""
    epoch = 0
    while True:
        rng = np.random.default_rng([cfg.seed, 0, epoch])
        for k in rng.permutation(ds.num_shards):
            for group in bucket_batches(ds.shard(int(k)), rng, cfg.batch_size, cfg.max_cells):
                yield [_swapped(s) if rng.random() < 0.5 else s for s in group]
        epoch += 1


def _swapped(s: ConditionalSample) -> ConditionalSample:
    return ConditionalSample(s.y, s.x, s.z, s.cmi, s.mi, s.spec, s.seed, s.params)


class StoreValidation:
    """A conditional store's datapoints as validation batches, read shard by shard at each
    pass (memory stays that of one shard)."""

    def __init__(self, ds, batch_size: int = 16, max_cells: int = 120_000):
        self.ds, self.batch_size, self.max_cells = ds, batch_size, max_cells

    def __iter__(self) -> Iterator[list[ConditionalSample]]:
        for shard in self.ds.iter_shards():
            shapes = [(s.n, s.dim_x, s.dim_y + s.dim_z) for s in shard]
            for chunk in plan_chunks(shapes, self.max_cells, self.batch_size):
                yield [shard[i] for i in chunk]


def _batch(samples: list[ConditionalSample], copula: bool):
    return collate([(s.x, s.y, s.z) for s in samples], [s.cmi for s in samples], copula=copula)


def widen_unconditional(net: MISTNet, state: dict[str, torch.Tensor]) -> None:
    """Load an unconditional network's weights into the conditional ``net``.

    Tensors of equal shape are copied.  The X and Y tag embeddings and pair biases keep
    their values (Z's tag starts at X's, Z's pair biases at zero); the pair readout keeps
    its moment inputs and moves the four X/Y pair types to their places among the nine;
    the head keeps its inputs from the X and Y pools, the pairs, log n and the dims, reads
    the Gaussian-copula conditional MI where it read the MI, and starts at zero on the Z
    pools, log dim_z and the bias-corrected statistic.
    """
    own = net.state_dict()
    c = net.config
    s, w = c.summary_width, c.pair_width
    with torch.no_grad():
        for key, target in own.items():
            src = state[key]
            if src.shape == target.shape:
                target.copy_(src)
            elif key == "embed.tag.weight":
                target[:2] = src
                target[2] = src[0]
            elif key.endswith(".pair") and key.startswith("col_bias"):
                target.zero_()
                target[:, :2, :2] = src
            elif key == "pairs.net.0.weight":
                moments = src.shape[1] - 4
                target.zero_()
                target[:, :moments] = src[:, :moments]
                for old, new in enumerate((0, 1, 3, 4)):      # XX, XY, YX, YY of 3 x 3
                    target[:, moments + new] = src[:, moments + old]
            elif key == "head.net.0.weight":
                target.zero_()
                target[:, :5 * s] = src[:, :5 * s]
                target[:, 7 * s:7 * s + 2 * w] = src[:, 5 * s:5 * s + 2 * w]
                feats = src[:, 5 * s + 2 * w:]                  # n, dx, dy, 4 MI features
                base = 7 * s + 2 * w
                target[:, base:base + 3] = feats[:, :3]
                target[:, base + 4:base + 8] = feats[:, 3:7]    # (bias-corrected: zero)
            else:
                raise ValueError(f"cannot widen tensor {key} from {tuple(src.shape)} "
                                 f"to {tuple(target.shape)}")


def _start(cfg: ConditionalTrainConfig) -> tuple[MISTNet, list[dict[str, Any]]]:
    state, card = load_checkpoint(cfg.init)
    config = ModelConfig.from_dict(card["model_config"])
    if config.variant != "mist":
        raise ValueError(f"init {cfg.init} is a {config.variant} checkpoint; the conditional "
                         "network starts from a point-estimate (mist) one")
    stages = list(card.get("stages", []))
    if config.conditional:
        if (config.anchor, config.corrected_stat) != (cfg.anchor, cfg.corrected_stat):
            raise ValueError(
                f"init {cfg.init} is a conditional network with anchor={config.anchor}, "
                f"corrected_stat={config.corrected_stat}; a further stage keeps them: set "
                "the same in this config")
        net = MISTNet(config)
        net.load_state_dict(state)
    else:
        net = MISTNet(ModelConfig.from_dict({**config.to_dict(), "conditional": True,
                                             "anchor": cfg.anchor,
                                             "corrected_stat": cfg.corrected_stat}))
        widen_unconditional(net, state)
        if cfg.anchor:
            with torch.no_grad():
                net.head.net[-1].weight.zero_()
                net.head.net[-1].bias.zero_()
    return net, stages


def _validate(net: MISTNet, val: Iterable[list[ConditionalSample]], cfg: ConditionalTrainConfig
              ) -> dict[str, float]:
    net.eval()
    preds, truths = [], []
    with torch.no_grad():
        for samples in val:
            batch = _batch(samples, net.config.copula)
            preds.append(net(*batch.inputs()).double().numpy())
            truths.append(batch.target.double().numpy())
    net.train()
    p, t = np.concatenate(preds), np.concatenate(truths)
    loss = float(point_loss(torch.as_tensor(p), torch.as_tensor(t), cfg.log_weight, cfg.log_eps))
    return {"loss": loss, "mse": float(np.mean((p - t) ** 2)),
            "mae": float(np.mean(np.abs(p - t))),
            "mae_below_0.1": float(np.mean(np.abs(p - t)[t < 0.1])) if (t < 0.1).any() else None}


def _validation_set(cfg: ConditionalTrainConfig) -> Iterable[list[ConditionalSample]]:
    if cfg.val_store is not None:
        return StoreValidation(open_conditional_stores(cfg.val_store), 16, cfg.max_cells)
    val_cfg = ConditionalTrainConfig(**{**asdict(cfg), "batch_size": 16})
    val, seen = [], 0
    while seen < cfg.val_count:
        val.append(draw_step(val_cfg, [cfg.seed, 1, len(val)]))
        seen += len(val[-1])
    return val


def train_conditional(cfg: ConditionalTrainConfig) -> Path:
    """Train and return the path of ``out/checkpoint.safetensors``."""
    with torch_threads(cfg.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return _train(cfg)


def _train(cfg: ConditionalTrainConfig) -> Path:
    out = Path(cfg.out)
    earlier = [name for name in (CHECKPOINT, METRICS) if (out / name).exists()]
    if earlier:
        raise FileExistsError(
            f"{out} already holds {' and '.join(earlier)} of an earlier run; conditional "
            "training does not resume and will not write over it: choose another out, or "
            "move those files away")
    net, stages = _start(cfg)
    net.train()
    optimizer = make_optimizer(net, cfg.lr, cfg.weight_decay)
    scheduler = WarmupCosine(optimizer, cfg.lr, cfg.warmup, cfg.min_lr_ratio)
    val = _validation_set(cfg)
    out.mkdir(parents=True, exist_ok=True)
    stores = None
    val_stores = store_recipes(val.ds) if isinstance(val, StoreValidation) else None
    if cfg.train_store is None:
        batches = (draw_step(cfg, [cfg.seed, 0, step]) for step in range(cfg.steps))
        lo, hi = cfg.n_range
        dlo, dhi = cfg.dim_range
        ranges = {"n": [lo, hi], "dim_x": [dlo, dhi], "dim_y": [dlo, dhi], "dim_z": [dlo, dhi]}
    else:
        train_ds = open_conditional_stores(cfg.train_store)
        batches = store_batches(train_ds, cfg)
        stores = store_recipes(train_ds)
        index = train_ds.index
        ranges = {k: [int(index[k].min()), int(index[k].max())]
                  for k in ("n", "dim_x", "dim_y", "dim_z")}
        ranges["dim_x"] = ranges["dim_y"] = [min(ranges["dim_x"][0], ranges["dim_y"][0]),
                                             max(ranges["dim_x"][1], ranges["dim_y"][1])]
    history: dict[str, Any] = {"steps": [], "val": []}
    best = math.inf
    saved = False
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, unit="step", desc="training (conditional)",
                   dynamic_ncols=True)
    t0 = time.perf_counter()
    running = None
    for step, samples in zip(range(cfg.steps), batches):
        lr = scheduler.step(step / cfg.steps)
        batch = _batch(samples, net.config.copula)
        loss = point_loss(net(*batch.inputs()), batch.target, cfg.log_weight, cfg.log_eps)
        value = optimizer_step(net, optimizer, loss, cfg.grad_clip, step)
        running = value if running is None else 0.98 * running + 0.02 * value
        history["steps"].append([step + 1, len(batch), value, lr])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}", lr=f"{lr:.1e}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            record = {"step": step + 1, "seconds": time.perf_counter() - t0,
                      **_validate(net, val, cfg)}
            history["val"].append(record)
            if bar is not None:
                bar.write(f"step {step + 1}: val loss {record['loss']:.4f}, "
                          f"mae {record['mae']:.4f}")
            if not math.isfinite(record["loss"]):
                _write_metrics(out, cfg, history)
                raise FloatingPointError(
                    f"conditional training diverged: validation loss {record['loss']} at step "
                    f"{step + 1}; lower lr (now {cfg.lr:g}) or grad_clip")
            if record["loss"] <= best:
                best, saved = record["loss"], True
                save_checkpoint(out / CHECKPOINT, net.state_dict(), {
                    "variant": "mist", "model_config": net.config.to_dict(),
                    "data_ranges": ranges,
                    "validation": record, "step": step + 1,
                    "train_config": cfg.to_dict(),
                    "stages": stages + [{"conditional_train_config": cfg.to_dict(),
                                         "step": step + 1,
                                         **({"stores": stores} if stores else {}),
                                         **({"val_stores": val_stores} if val_stores
                                            else {})}],
                })
    if bar is not None:
        bar.close()
    _write_metrics(out, cfg, history)
    if not saved:
        raise RuntimeError(f"conditional training wrote no checkpoint to {out}: no validation "
                           "ran")
    return out / CHECKPOINT


def _write_metrics(out: Path, cfg: ConditionalTrainConfig, history: dict[str, Any]) -> None:
    """``metrics.json``, written whole or not at all."""
    _atomic_write_text(json.dumps({"config": cfg.to_dict(), **history}, indent=1),
                       out / METRICS)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mistmodel.conditional_training",
                                description="Train the conditional MIST network (I(X;Y|Z)).")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--init", required=True,
                   help="checkpoint to start from (an I(X;Y) one is widened)")
    p.add_argument("--specs", default=",".join(CONDITIONAL_SPECS),
                   help="comma-separated conditional specs (default: all)")
    p.add_argument("--transforms", default="base",
                   help="comma-separated transform chains drawn per datapoint, e.g. "
                   "base,halfcube,wiggly-spiral (default: none)")
    p.add_argument("--train-store", nargs="+", default=None,
                   help="conditional store(s) to train on (mistgen.build_conditional_dataset) "
                   "instead of drawing batches")
    p.add_argument("--val-store", nargs="+", default=None,
                   help="conditional store(s) to validate on instead of drawn datapoints")
    p.add_argument("--n-range", type=int, nargs=2, default=(50, 1000))
    p.add_argument("--dim-range", type=int, nargs=2, default=(1, 16))
    for name, kind, default in (("steps", int, 1000), ("batch-size", int, 32),
                                ("max-cells", int, 120_000), ("lr", float, 3e-4),
                                ("log-weight", float, 0.5), ("val-count", int, 256),
                                ("eval-every", int, 250), ("seed", int, 0)):
        p.add_argument(f"--{name}", type=kind, default=default)
    p.add_argument("--no-anchor", dest="anchor", action="store_false",
                   help="a widened network's head predicts I(X;Y|Z) itself, not a correction")
    p.add_argument("--no-corrected-stat", dest="corrected_stat", action="store_false",
                   help="no bias-corrected Gaussian-copula statistic (feature and anchor)")
    p.add_argument("--threads", type=int, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    cfg = ConditionalTrainConfig(
        out=a.out, init=a.init, specs=a.specs.split(","), transforms=a.transforms.split(","),
        n_range=tuple(a.n_range),
        dim_range=tuple(a.dim_range), steps=a.steps, batch_size=a.batch_size,
        max_cells=a.max_cells, lr=a.lr, log_weight=a.log_weight, val_count=a.val_count,
        eval_every=a.eval_every, seed=a.seed, threads=a.threads, anchor=a.anchor,
        corrected_stat=a.corrected_stat, train_store=a.train_store, val_store=a.val_store)
    print(train_conditional(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
