"""Normalizing flows (nflows) fitted to a modality's X columns and to its Y columns.

Each side gets its own flow, fitted by maximum likelihood on that side's columns jointly:
``noise = T(standardise(data))`` with a standard normal base. ``T`` is a stack of
rational-quadratic spline transforms, all fast in both directions (no autoregressive
layers, whose inverse would cost one pass per dimension):

- an elementwise spline (``PiecewiseRationalQuadraticCDF``, identity at start), then
- ``num_layers`` coupling layers (``PiecewiseRationalQuadraticCouplingTransform``) with
  alternating masks, each conditioned by a small residual network;
- for a 1-D side, ``num_layers`` elementwise splines instead of the couplings.

Splines use ``tails="linear"``: inside ``[-tail_bound, tail_bound]`` (in standard units of
the data and of the noise) each layer is a monotone spline, outside it is the identity, so
every layer is a bijection of the whole real line. The data is z-scored per column with its
own mean and standard deviation first (recorded with the flow).

``ModalityFlow.to_data`` (noise -> data, the flow's inverse) is the map that warps a
base sample; ``to_noise`` is its inverse. Both run in float64. A fitted pair is saved as
one file (``torch.save`` of the state dicts plus the settings as JSON, loaded with
``weights_only=True``) and a readable ``.json`` sidecar with the settings and fit history.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import MistgenError
from .files import atomic_output

FLOWS_FORMAT = "mistgen-modality-flows/1"


class FlowError(MistgenError):
    """Bad flow settings, an unreadable flow file, or data a flow cannot take."""


@dataclass(frozen=True)
class FlowSettings:
    """How a side's flow is built and fitted (all recorded with the flow).

    num_layers: coupling layers (elementwise spline layers for a 1-D side).
    hidden_features, num_blocks: width and depth of each coupling's residual network.
    num_bins: spline bins per layer; tail_bound: spline interval in standard units.
    max_steps, batch_size, learning_rate, weight_decay: Adam with a cosine schedule.
    validation_fraction, eval_every, patience: a held-out part of the rows is scored every
    ``eval_every`` steps; the best state is kept and fitting stops after ``patience``
    scores without improvement.
    seed: initial weights, the validation split and the batches.
    """

    num_layers: int = 2
    hidden_features: int = 16
    num_blocks: int = 1
    num_bins: int = 8
    tail_bound: float = 6.0
    max_steps: int = 2000
    batch_size: int = 512
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    validation_fraction: float = 0.2
    eval_every: int = 20
    patience: int = 15
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: "FlowSettings | Mapping[str, Any] | None" = None,
                     **overrides: Any) -> "FlowSettings":
        """Settings from a mapping (e.g. a config's ``flow:`` entry), validated."""
        if isinstance(values, FlowSettings):
            values = dataclasses.asdict(values)
        merged = dict(values or {})
        merged.update(overrides)
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - set(names))
        if unknown:
            raise FlowError(f"unknown flow setting(s) {unknown}; known: {sorted(names)}")
        out = {}
        for key, value in merged.items():
            want = names[key].type
            if want == "int":
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise FlowError(f"flow setting {key} must be an integer, got {value!r}")
                value = int(value)
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                    raise FlowError(f"flow setting {key} must be a number, got {value!r}")
                value = float(value)
            out[key] = value
        s = cls(**out)
        s.check()
        return s

    def check(self) -> None:
        positive = ["num_layers", "hidden_features", "num_blocks", "max_steps", "batch_size",
                    "eval_every", "patience", "learning_rate", "tail_bound"]
        for key in positive:
            if not getattr(self, key) > 0:
                raise FlowError(f"flow setting {key} must be > 0, got {getattr(self, key)!r}")
        if self.num_bins < 2:
            raise FlowError(f"flow setting num_bins must be >= 2, got {self.num_bins}")
        if not 0 < self.validation_fraction < 0.5:
            raise FlowError("flow setting validation_fraction must be in (0, 0.5), got "
                            f"{self.validation_fraction}")
        if self.weight_decay < 0 or self.seed < 0:
            raise FlowError("flow settings weight_decay and seed must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def build_transform(dim: int, settings: FlowSettings):
    """The nflows transform (data -> noise, in standard units) for a ``dim``-D side."""
    from nflows.nn.nets import ResidualNet
    from nflows.transforms import CompositeTransform
    from nflows.transforms.coupling import PiecewiseRationalQuadraticCouplingTransform
    from nflows.transforms.nonlinearities import PiecewiseRationalQuadraticCDF

    def elementwise():
        return PiecewiseRationalQuadraticCDF(
            shape=[dim], num_bins=settings.num_bins, tails="linear",
            tail_bound=settings.tail_bound, identity_init=True,
        )

    if dim == 1:
        return CompositeTransform([elementwise() for _ in range(settings.num_layers)])

    def net(in_features, out_features):
        return ResidualNet(in_features, out_features, hidden_features=settings.hidden_features,
                           num_blocks=settings.num_blocks)

    layers = [elementwise()]
    for layer in range(settings.num_layers):
        mask = (torch.arange(dim) + layer) % 2  # 1: transformed, 0: conditioning
        layers.append(PiecewiseRationalQuadraticCouplingTransform(
            mask=mask, transform_net_create_fn=net, num_bins=settings.num_bins,
            tails="linear", tail_bound=settings.tail_bound,
        ))
    return CompositeTransform(layers)


class ModalityFlow:
    """A fitted flow for one side: ``to_data(noise)`` and its inverse ``to_noise(data)``.

    The maps run with ``threads`` torch threads (default 1: these small networks gain
    nothing from more, and one thread makes results independent of the machine's load).
    """

    threads: int = 1

    def __init__(self, dim: int, settings: FlowSettings, mean: np.ndarray, std: np.ndarray,
                 state_dict: Mapping[str, torch.Tensor], *, names: list[str] | None = None,
                 history: Mapping[str, Any] | None = None):
        self.dim = int(dim)
        self.settings = settings
        self.mean = np.asarray(mean, dtype=np.float64).reshape(self.dim)
        self.std = np.asarray(std, dtype=np.float64).reshape(self.dim)
        self.names = list(names) if names is not None else [str(j) for j in range(self.dim)]
        self.history = dict(history or {})
        # the weights come from the file: the draws of a fresh initialisation are the
        # caller's torch generator's, and are not to be used up here
        with torch.random.fork_rng(devices=[]):
            self.transform = build_transform(self.dim, settings).double()
        try:
            self.transform.load_state_dict(dict(state_dict))
        except RuntimeError as exc:
            raise FlowError(f"flow weights do not match its settings: {exc}") from exc
        self.transform.eval()
        for p in self.transform.parameters():
            p.requires_grad_(False)

    # -- maps --------------------------------------------------------------------
    def _check(self, a: np.ndarray, what: str) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise FlowError(f"{what} must have shape (rows, {self.dim}), got {a.shape}")
        return a

    def to_data(self, noise: np.ndarray) -> np.ndarray:
        """Noise-space (standard normal) rows -> modality-space rows (float64)."""
        z = torch.from_numpy(np.ascontiguousarray(self._check(noise, "noise")))
        with torch.no_grad(), torch_threads(self.threads):
            u, _ = self.transform.inverse(z)
        return u.numpy() * self.std + self.mean

    def to_noise(self, data: np.ndarray) -> np.ndarray:
        """Modality-space rows -> noise-space rows (float64); the inverse of ``to_data``."""
        u = (self._check(data, "data") - self.mean) / self.std
        with torch.no_grad(), torch_threads(self.threads):
            z, _ = self.transform(torch.from_numpy(np.ascontiguousarray(u)))
        return z.numpy()

    def log_prob(self, data: np.ndarray) -> np.ndarray:
        """Log density of the fitted model at each row, in the data's own units."""
        u = (self._check(data, "data") - self.mean) / self.std
        with torch.no_grad(), torch_threads(self.threads):
            z, logdet = self.transform(torch.from_numpy(np.ascontiguousarray(u)))
        base = -0.5 * (z.numpy() ** 2).sum(axis=1) - 0.5 * self.dim * np.log(2 * np.pi)
        return base + logdet.numpy() - np.log(self.std).sum()

    def sample(self, rows: int, seed: int = 0) -> np.ndarray:
        """``rows`` draws from the fitted model."""
        return self.to_data(np.random.default_rng(seed).standard_normal((rows, self.dim)))

    # -- persistence ---------------------------------------------------------------
    def payload(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "settings": json.dumps(self.settings.to_dict(), sort_keys=True),
            "names": json.dumps(self.names),
            "mean": torch.from_numpy(self.mean.copy()),
            "std": torch.from_numpy(self.std.copy()),
            "state_dict": {k: v.detach().clone() for k, v in self.transform.state_dict().items()},
            "history": json.dumps(self.history, sort_keys=True),
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> "ModalityFlow":
        try:
            settings = FlowSettings.from_mapping(json.loads(p["settings"]))
            return cls(int(p["dim"]), settings, p["mean"].numpy(), p["std"].numpy(),
                       p["state_dict"], names=json.loads(p["names"]),
                       history=json.loads(p["history"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FlowError(f"malformed flow record: {exc!r}") from exc

    def __repr__(self) -> str:
        return (f"ModalityFlow(dim={self.dim}, names={self.names}, "
                f"layers={self.settings.num_layers})")


# the fewest rows a flow is fitted on
MIN_FIT_ROWS = 10


def fit_flow(data: np.ndarray, settings: FlowSettings | Mapping[str, Any] | None = None, *,
             names: list[str] | None = None, progress: bool = False,
             desc: str = "flow") -> ModalityFlow:
    """Fit a flow to ``data`` (rows, dim) by maximum likelihood; deterministic given settings
    (and torch's default dtype, in which the initial weights are drawn; the fit runs in
    float32 either way).
    ``progress``: a bar over the step budget, with the validation loss and how many
    evaluations it has not improved (the fit stops early at ``patience``)."""
    settings = FlowSettings.from_mapping(settings)
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < MIN_FIT_ROWS or data.shape[1] < 1:
        raise FlowError(f"fit_flow needs a (rows >= {MIN_FIT_ROWS}, dim >= 1) array, got "
                        f"{data.shape}")
    if not np.isfinite(data).all():
        raise FlowError("fit_flow: data holds NaN or inf")
    mean, std = data.mean(axis=0), data.std(axis=0)
    if not (std > 0).all():
        raise FlowError(f"fit_flow: column(s) {np.flatnonzero(std <= 0).tolist()} are constant")
    dim = data.shape[1]
    u = (data - mean) / std
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(u.shape[0])
    n_val = max(1, int(round(settings.validation_fraction * u.shape[0])))
    val_t = torch.from_numpy(u[order[:n_val]].astype(np.float32))
    train = u[order[n_val:]]
    train_t = torch.from_numpy(train.astype(np.float32))
    batch = min(settings.batch_size, train.shape[0])
    with torch_threads(1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        transform = build_transform(dim, settings).float()   # float32 whatever the default
        params = list(transform.parameters())
        opt = torch.optim.Adam(params, lr=settings.learning_rate,
                               weight_decay=settings.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, settings.max_steps)
        const = 0.5 * dim * np.log(2 * np.pi)

        def nll(x: torch.Tensor) -> torch.Tensor:
            z, logdet = transform(x)
            return (0.5 * (z ** 2).sum(dim=1) + const - logdet).mean()

        best = (float("inf"), 0, copy.deepcopy(transform.state_dict()))
        stale, step, train_loss = 0, 0, float("nan")
        bar = tqdm(total=settings.max_steps, desc=desc, unit="step", disable=not progress)
        for step in range(1, settings.max_steps + 1):
            bar.update()
            transform.train()
            if batch < train.shape[0]:
                idx = torch.from_numpy(rng.choice(train.shape[0], size=batch, replace=False))
                xb = train_t[idx]
            else:
                xb = train_t
            loss = nll(xb)
            if not torch.isfinite(loss):
                raise FlowError(
                    f"fit_flow: the loss became {loss.item()} at step {step}; try a smaller "
                    "learning_rate or a larger tail_bound"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            sched.step()
            train_loss = loss.item()
            if step % settings.eval_every == 0 or step == settings.max_steps:
                transform.eval()
                with torch.no_grad():
                    val = nll(val_t).item()
                if val < best[0] - 1e-6:
                    best, stale = (val, step, copy.deepcopy(transform.state_dict())), 0
                else:
                    stale += 1
                bar.set_postfix(val_nll=f"{val:.3f}", stale=f"{stale}/{settings.patience}")
                if stale >= settings.patience:
                    break
        bar.close()
    log_scale = float(np.log(std).sum())
    # no wall time here: the flows' bytes (and the warped stores that record their digest)
    # depend on the settings and the data alone
    history = {
        "rows": int(data.shape[0]), "train_rows": int(train.shape[0]), "val_rows": n_val,
        "steps": step, "best_step": best[1],
        "val_nll": best[0] + log_scale, "last_train_nll": train_loss + log_scale,
        "nll_units": "nats per row, data units",
    }
    return ModalityFlow(dim, settings, mean, std, best[2], names=names, history=history)


class ModalityFlows:
    """The X-side and Y-side flows of one modality."""

    def __init__(self, x: ModalityFlow, y: ModalityFlow, modality: Mapping[str, Any]):
        self.x, self.y = x, y
        self.modality = dict(modality)

    @property
    def name(self) -> str:
        return str(self.modality.get("name", ""))

    @property
    def dim_x(self) -> int:
        return self.x.dim

    @property
    def dim_y(self) -> int:
        return self.y.dim

    def to_data(self, noise_x: np.ndarray, noise_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x.to_data(noise_x), self.y.to_data(noise_y)

    def to_noise(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x.to_noise(x), self.y.to_noise(y)

    def describe(self) -> dict[str, Any]:
        return {
            "format": FLOWS_FORMAT, "modality": self.modality,
            "x": {"dim": self.x.dim, "names": self.x.names, "settings": self.x.settings.to_dict(),
                  "history": self.x.history},
            "y": {"dim": self.y.dim, "names": self.y.names, "settings": self.y.settings.to_dict(),
                  "history": self.y.history},
        }

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save({"format": FLOWS_FORMAT, "modality": json.dumps(self.modality, sort_keys=True),
                    "x": self.x.payload(), "y": self.y.payload()}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, where: str = "<bytes>") -> "ModalityFlows":
        try:
            p = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise FlowError(f"{where} is not a readable flow file: {exc}") from exc
        if not isinstance(p, dict) or p.get("format") != FLOWS_FORMAT:
            got = p.get("format") if isinstance(p, dict) else type(p).__name__
            raise FlowError(f"{where} has format {got!r}, expected {FLOWS_FORMAT!r}")
        try:
            return cls(ModalityFlow.from_payload(p["x"]), ModalityFlow.from_payload(p["y"]),
                       json.loads(p["modality"]))
        except (KeyError, TypeError, ValueError) as exc:
            what = str(exc) if isinstance(exc, FlowError) else f"{type(exc).__name__}: {exc}"
            raise FlowError(f"{where} is not a complete flow file ({what})") from exc

    def save(self, path: str | os.PathLike) -> Path:
        """Write the flows to ``path`` (``.pt``) and a ``.json`` sidecar, each atomically.
        A ``.json`` already at the sidecar's path that is not a flows description (a
        user's file) is refused, not replaced."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            raise FlowError(f"{path}: flows are saved as a .pt file (a .json describes them)")
        sidecar = path.with_suffix(".json")
        if sidecar.exists() and not _is_flows_description(sidecar):
            raise FlowError(f"{sidecar} exists and is not a flows description; refusing to "
                            "replace it: save the flows under another name")
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, blob in ((path, self.to_bytes()),
                             (path.with_suffix(".json"),
                              (json.dumps(self.describe(), indent=2) + "\n").encode())):
            with atomic_output(target) as tmp:
                tmp.write_bytes(blob)
        return path

    def __repr__(self) -> str:
        return f"ModalityFlows({self.name!r}, dim_x={self.dim_x}, dim_y={self.dim_y})"


def _is_flows_description(path: Path) -> bool:
    """Whether ``path`` is a sidecar :meth:`ModalityFlows.save` wrote (its keys)."""
    try:
        described = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(described, dict) and described.get("format") == FLOWS_FORMAT


def save_flows(flows: ModalityFlows, path: str | os.PathLike) -> Path:
    """Save a modality's flows (see :meth:`ModalityFlows.save`)."""
    return flows.save(path)


def load_flows(path: str | os.PathLike) -> ModalityFlows:
    """Load flows written by :func:`save_flows` / :func:`fit_modality`."""
    path = Path(path)
    if not path.is_file():
        raise FlowError(f"flow file {str(path)!r} does not exist")
    return ModalityFlows.from_bytes(path.read_bytes(), where=str(path))


def fit_modality(modality, settings: FlowSettings | Mapping[str, Any] | None = None,
                 path: str | os.PathLike | None = None, progress: bool = False) -> ModalityFlows:
    """Fit the X-side and Y-side flows of a :class:`mistgen.modality.Modality`.

    Settings are the defaults, updated by the modality's own ``flow`` entry, updated by
    ``settings``. The Y flow uses ``seed + 1``. Saved to ``path`` when given.
    """
    merged = dict(getattr(modality, "flow", {}) or {})
    if isinstance(settings, FlowSettings):
        merged.update(settings.to_dict())
    elif settings is not None:
        merged.update(settings)
    s = FlowSettings.from_mapping(merged)
    fx = fit_flow(modality.x, s, names=list(modality.x_names), progress=progress,
                  desc=f"{modality.name}: X flow")
    fy = fit_flow(modality.y, dataclasses.replace(s, seed=s.seed + 1),
                  names=list(modality.y_names), progress=progress, desc=f"{modality.name}: Y flow")
    flows = ModalityFlows(fx, fy, modality.describe())
    if path is not None:
        flows.save(path)
    return flows


def fit_modality_from_config(name: str, entry: Mapping[str, Any], path: str | os.PathLike,
                             base_dir: str | os.PathLike | None = None,
                             progress: bool = True) -> ModalityFlows:
    """Read ``modalities.<name>`` of a config, fit its flows and save them to ``path``."""
    from .modality import modality_from_config

    return fit_modality(modality_from_config(name, entry, base_dir), path=path,
                        progress=progress)
