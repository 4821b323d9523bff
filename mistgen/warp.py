"""Warp a meta-dataset store to a modality: ``X' = f_X(s_X(X))``, ``Y' = f_Y(s_Y(Y))``.

Why every label stays exact
---------------------------
``I(X; Y) = I(g(X); h(Y))`` for any injective measurable ``g`` acting on X alone and ``h``
acting on Y alone. Both stages of the warp are such maps, and neither looks at the sample:

1. ``s`` is a *fixed* standardisation, a function of the datapoint's spec and parameters
   (its label metadata) only, never of its values. With ``standardise="marginal"``
   (default) it undoes the spec's transforms (each invertible, see
   ``mistgen.transforms``) and sends every coordinate through ``Phi^-1(F(.))`` with ``F``
   the family's exact marginal CDF: standard normal for the normal families (unit-diagonal
   structures), Student-t with the datapoint's ``nu`` for the Student families, U(0, 1)
   for additive-noise X and the trapezoidal law of ``U(0,1) + U(-eps_j, eps_j)`` for its
   Y. Each is strictly increasing, so every warped coordinate is marginally N(0, 1) before
   the flow and, after it, distributed as the flow's model of the modality. The family
   keeps only its dependence structure (its copula), which is all MI depends on.
   A family without a known marginal falls back to ``asinh`` of the stored values (also
   what ``standardise="asinh"`` uses for every datapoint); the kind used is recorded.
2. ``f`` is the modality's fitted flow run from noise to data (``ModalityFlow.to_data``),
   a bijection of R^d (monotone splines inside ``[-tail_bound, tail_bound]``, identity
   outside, in every layer).

A sample that depends on its own values (e.g. z-scoring by its sample mean) is not a
fixed map of X and is deliberately not used.

Checks on every datapoint
-------------------------
The warp is run in float64 and inverted (``s^-1(f^-1(f(s(v))))``); the round-trip error
``max |v_back - v| / max(1, |v|)`` over both sides must be at most ``tolerance``
(default 1e-6) and the warped values finite and within ``max_abs`` (default 100)
standard deviations of the modality's mean. A datapoint that fails is regenerated with
``mistgen.sample`` from the same spec, n and dims and the next seeds
(``seed + 1, seed + 2, ...``), deterministically, up to ``max_regenerations`` times.

Each warped datapoint's ``params`` gain a ``"warp"`` entry: ``{"modality",
"standardise", "roundtrip_error", "regenerated" (0 if the base datapoint was used),
"base_seed"}``; ``seed``, ``mi`` and the other params are those of the sample actually
warped, so ``mistgen.sample(spec, n, dim_x, dim_y, seed)`` rebuilds its base sample.
The warped store has the base store's layout, count, shard size and specs; its split is
``"<split>@<modality>"`` and ``meta["warp"]`` records the base store, the flows (with
their SHA-256) and the settings.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.special import ndtr, ndtri, stdtr, stdtrit

from .errors import MistgenError, StoreError
from .files import atomic_output
from .flows import ModalityFlows, load_flows, torch_threads
from .modality import store_dims_problem
from .sampling import Sample, sample
from .spec import parse_spec
from .merges import MERGED_SHARE, merges_values

STANDARDISE = ("marginal", "asinh")
DEFAULT_TOLERANCE = 1e-6
# the round trip of values stored in float32 is checked to this tolerance at least: float32
# resolves about 6e-8 of a value, and the flow's slope scales that in the noise space
FLOAT32_TOLERANCE = 1e-4
DEFAULT_MAX_ABS = 100.0
DEFAULT_MAX_REGENERATIONS = 100


class WarpError(MistgenError):
    """A store cannot be warped with these flows (dims, settings, repeated failures)."""


# -- the fixed standardisation ----------------------------------------------------

def _gauss_from_cdf_lower(p_lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Phi^-1 of a CDF value given as its smaller tail: ``p_lower`` = min(F, 1 - F)."""
    z = ndtri(p_lower)
    return np.where(upper, -z, z)


def _uniform_to_gauss(v):
    upper = v > 0.5
    return _gauss_from_cdf_lower(np.where(upper, 1.0 - v, v), upper)


def _gauss_to_uniform(u):
    return np.where(u > 0, 1.0 - ndtr(-u), ndtr(u))


def _trap_lower_cdf(y, eps):
    """CDF of U(0,1) + U(-eps, eps) at ``y <= 1/2`` (per column ``eps``)."""
    quad = np.square(np.maximum(y + eps, 0.0)) / (4 * eps)
    lin = np.where(eps <= 0.5, y, (2 * y + 2 * eps - 1) / (4 * eps))
    knee = np.where(eps <= 0.5, eps, 1 - eps)
    return np.where(y < knee, quad, lin)


def _trap_lower_quantile(p, eps):
    """Inverse of ``_trap_lower_cdf`` for ``p <= 1/2``."""
    knee_p = np.minimum(eps, 1 / (4 * eps))
    quad = -eps + 2 * np.sqrt(eps * p)
    lin = np.where(eps <= 0.5, p, 2 * eps * p + 0.5 - eps)
    return np.where(p < knee_p, quad, lin)


def _trap_to_gauss(y, eps):
    upper = y > 0.5
    return _gauss_from_cdf_lower(_trap_lower_cdf(np.where(upper, 1.0 - y, y), eps), upper)


def _gauss_to_trap(u, eps):
    upper = u > 0
    y = _trap_lower_quantile(ndtr(np.where(upper, -u, u)), eps)
    return np.where(upper, 1.0 - y, y)


def _student_to_gauss(v, nu):
    upper = v > 0
    return _gauss_from_cdf_lower(stdtr(nu, -np.abs(v)), upper)


def _gauss_to_student(u, nu):
    t = -stdtrit(nu, ndtr(-np.abs(u)))  # >= 0
    return np.where(u > 0, t, -t)


class Standardiser:
    """The fixed, invertible per-side map ``s`` of one datapoint (see the module docs)."""

    def __init__(self, spec: str, params: Mapping[str, Any], dim_x: int, dim_y: int,
                 kind: str = "marginal"):
        if kind not in STANDARDISE:
            raise WarpError(f"standardise must be one of {STANDARDISE}, got {kind!r}")
        self.parsed = parse_spec(spec)
        self.dims = {"x": dim_x, "y": dim_y}
        self.law = None
        if kind == "marginal":
            self.law = self._marginal_law(params, dim_x, dim_y)
        self.kind = "asinh" if self.law is None else "marginal"

    def _marginal_law(self, params, dim_x, dim_y):
        from .families.additive import AdditiveNoise
        from .families.gaussian import GaussianFamily
        from .families.student import StudentFamily

        family = self.parsed.family
        if isinstance(family, (GaussianFamily, StudentFamily)):
            scale = np.sqrt(np.diag(family.matrix(params, dim_x, dim_y)))
            scales = {"x": scale[:dim_x], "y": scale[dim_x:]}
            if isinstance(family, StudentFamily):
                return ("student", scales, float(params["nu"]))
            return ("normal", scales, None)
        if isinstance(family, AdditiveNoise):
            return ("additive", None, np.asarray(params["epsilon"], dtype=np.float64))
        return None

    def forward(self, v: np.ndarray, side: str) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        if self.law is None:
            return np.arcsinh(v)
        for t in reversed(self.parsed.transforms):
            v = t.inverse(v, side)
        kind, scales, extra = self.law
        if kind == "normal":
            return v / scales[side]
        if kind == "student":
            return _student_to_gauss(v / scales[side], extra)
        return _uniform_to_gauss(v) if side == "x" else _trap_to_gauss(v, extra)

    def inverse(self, u: np.ndarray, side: str) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        if self.law is None:
            return np.sinh(u)
        kind, scales, extra = self.law
        if kind == "normal":
            v = u * scales[side]
        elif kind == "student":
            v = _gauss_to_student(u, extra) * scales[side]
        else:
            v = _gauss_to_uniform(u) if side == "x" else _gauss_to_trap(u, extra)
        for t in self.parsed.transforms:
            v = t.forward(v, side)
        return v


# -- warping samples ----------------------------------------------------------------

@dataclass
class WarpResult:
    x: np.ndarray
    y: np.ndarray
    error: float  #: round-trip error (relative, see module docs); inf if not computable
    problem: str | None  #: why the datapoint fails the checks, None if it passes
    standardise: str


def checked_tolerance(tolerance: float, dtype: str) -> float:
    """The round-trip tolerance a warp to ``dtype`` is checked to."""
    return tolerance if dtype == "float64" else max(tolerance, FLOAT32_TOLERANCE)


def _relative_error(back: np.ndarray, v: np.ndarray) -> float:
    if v.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.abs(back - v) / np.maximum(1.0, np.abs(v))
    return float(np.max(e)) if np.isfinite(e).all() else float("inf")


def warp_batch(samples: Sequence[Sample], flows: ModalityFlows, *, standardise: str = "marginal",
               tolerance: float = DEFAULT_TOLERANCE,
               max_abs: float = DEFAULT_MAX_ABS, dtype: str = "float64") -> list[WarpResult]:
    """Warp several samples with one flow call per side; checks each (no regeneration).

    The round trip is checked on the values as they will be stored (``dtype``): a column
    whose spread float32 cannot resolve around its mean (5.2e6 + 3 z) is no invertible map
    of the sample once stored, and fails the check (to :data:`FLOAT32_TOLERANCE` at least
    in float32).  Rows are independent through the flows, so a sample's result does not
    depend on the other samples of the batch.
    """
    tolerance = checked_tolerance(tolerance, dtype)
    stds, us, ok = [], [], []
    for s in samples:
        if s.dim_x != flows.dim_x or s.dim_y != flows.dim_y:
            raise WarpError(
                f"sample ({s.spec}, seed {s.seed}) has dim_x={s.dim_x}, dim_y={s.dim_y}; the "
                f"flows of modality {flows.name!r} need dim_x={flows.dim_x}, dim_y={flows.dim_y}"
            )
        st = Standardiser(s.spec, s.params, s.dim_x, s.dim_y, standardise)
        with np.errstate(all="ignore"):
            ux, uy = st.forward(s.x, "x"), st.forward(s.y, "y")
        stds.append(st)
        us.append((ux, uy))
        ok.append(bool(np.isfinite(ux).all() and np.isfinite(uy).all()))
    take = [i for i, good in enumerate(ok) if good]
    out: list[WarpResult | None] = [None] * len(samples)
    for i, good in enumerate(ok):
        if not good:
            s = samples[i]
            out[i] = WarpResult(np.full(s.x.shape, np.nan), np.full(s.y.shape, np.nan),
                                float("inf"), "standardised values are not finite",
                                stds[i].kind)
    if take:
        sides = {}
        for side, k, flow in (("x", 0, flows.x), ("y", 1, flows.y)):
            u = np.concatenate([us[i][k] for i in take], axis=0)
            z = flow.to_data(u)
            stored = z.astype(dtype).astype(np.float64)
            with np.errstate(all="ignore"):
                back = flow.to_noise(np.where(np.isfinite(stored), stored, 0.0))
                zs = np.abs((z - flow.mean) / flow.std)
            sides[side] = (z, back, zs)
        start = {"x": 0, "y": 0}
        for i in take:
            s, st = samples[i], stds[i]
            parts, errors, problem = {}, [], None
            for side, v in (("x", s.x), ("y", s.y)):
                z, back, zs = sides[side]
                lo = start[side]
                hi = lo + v.shape[0]
                start[side] = hi
                zi, bi, zsi = z[lo:hi], back[lo:hi], zs[lo:hi]
                parts[side] = zi
                if not np.isfinite(zi).all():
                    problem = problem or f"warped {side} is not finite"
                    errors.append(float("inf"))
                    continue
                if zsi.max(initial=0.0) > max_abs:
                    problem = problem or (f"warped {side} reaches {zsi.max():.3g} standard "
                                          f"deviations from the modality's mean (> {max_abs})")
                with np.errstate(all="ignore"):
                    errors.append(_relative_error(st.inverse(bi, side), np.asarray(v, np.float64)))
            error = max(errors)
            if problem is None and not error <= tolerance:
                problem = f"round-trip error {error:.3g} > tolerance {tolerance:g}"
            both = np.concatenate([parts["x"], parts["y"]], axis=1)
            if problem is None and merges_values(both, both.astype(dtype)):
                problem = (f"stored as {dtype}, the warped values merge in more than "
                           f"{MERGED_SHARE:.0%} of a column's rows")
            out[i] = WarpResult(parts["x"], parts["y"], error, problem, st.kind)
    return out  # type: ignore[return-value]


def _record(s: Sample, r: WarpResult, modality: str, regenerated: int, base_seed: int,
            dtype: str | None) -> Sample:
    params = dict(s.params)
    params["warp"] = {"modality": modality, "standardise": r.standardise,
                      "roundtrip_error": r.error, "regenerated": regenerated,
                      "base_seed": base_seed}
    x, y = r.x, r.y
    if dtype is not None:
        x, y = x.astype(dtype), y.astype(dtype)
    return Sample(x=x, y=y, mi=s.mi, params=params, spec=s.spec, seed=s.seed)


def _regenerate(s: Sample, flows: ModalityFlows, modality: str, priors, dtype: str, kw) -> Sample:
    first: str | None = None
    for j in range(1, kw["max_regenerations"] + 1):
        seed = (int(s.seed) + j) % 2**63
        fresh = sample(s.spec, s.n, s.dim_x, s.dim_y, seed, priors=priors)
        # as the base store would have held it
        fresh = Sample(x=fresh.x.astype(dtype), y=fresh.y.astype(dtype), mi=fresh.mi,
                       params=fresh.params, spec=fresh.spec, seed=fresh.seed)
        r = warp_batch([fresh], flows, standardise=kw["standardise"],
                       tolerance=kw["tolerance"], max_abs=kw["max_abs"],
                       dtype=kw.get("dtype", "float64"))[0]
        if r.problem is None:
            return _record(fresh, r, modality, j, int(s.seed), None)
        first = first or r.problem
    if first and "merge" in first:
        advice = ("a column of the modality is finer than the store's dtype resolves: centre "
                  "it, or warp into float64 stores (dtype='float64')")
    else:
        advice = "check the flows or raise tolerance / max_abs"
    raise WarpError(
        f"datapoint ({s.spec}, n={s.n}, seed {s.seed}) failed the warp checks and so did "
        f"{kw['max_regenerations']} regenerations (first problem: {first}); {advice}"
    )


def warp_sample(s: Sample, flows: ModalityFlows, *, modality: str | None = None,
                standardise: str = "marginal", tolerance: float = DEFAULT_TOLERANCE,
                max_abs: float = DEFAULT_MAX_ABS,
                max_regenerations: int = DEFAULT_MAX_REGENERATIONS,
                priors: Mapping[str, Any] | None = None, dtype: str = "float64") -> Sample:
    """Warp one sample (regenerating it from the next seeds if it fails the checks)."""
    kw = dict(standardise=standardise, tolerance=tolerance, max_abs=max_abs,
              max_regenerations=max_regenerations, dtype=dtype)
    name = modality or flows.name
    r = warp_batch([s], flows, standardise=standardise, tolerance=tolerance, max_abs=max_abs,
                   dtype=dtype)[0]
    if r.problem is None:
        return _record(s, r, name, 0, int(s.seed), None)
    return _regenerate(s, flows, name, priors, dtype, kw)


# -- warping a store ------------------------------------------------------------------

@dataclass
class WarpPlan:
    """The ``write_store`` plan of a warped store: datapoint i = warp(base datapoint i).

    Picklable: it carries the flows as bytes and the base store's path. Shard ``k`` is
    warped as one batch (the first ``datapoint`` call of a shard computes all of it), with
    torch limited to one thread, so a datapoint's bytes depend only on its address.
    """

    base_path: str
    flows_blob: bytes
    modality: str
    count: int
    shard_size: int
    base_dtype: str
    priors: Mapping[str, Any]
    standardise: str = "marginal"
    tolerance: float = DEFAULT_TOLERANCE
    max_abs: float = DEFAULT_MAX_ABS
    max_regenerations: int = DEFAULT_MAX_REGENERATIONS
    dtype: str = "float32"             # of the warped store's values
    _state: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_state"] = {}
        return d

    @property
    def num_shards(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_bounds(self, k: int) -> tuple[int, int]:
        return k * self.shard_size, min((k + 1) * self.shard_size, self.count)

    def _flows(self) -> ModalityFlows:
        if "flows" not in self._state:
            self._state["flows"] = ModalityFlows.from_bytes(self.flows_blob, "warp plan flows")
        return self._state["flows"]

    def _base(self):
        if "base" not in self._state:
            from .dataset import MetaDataset

            self._state["base"] = MetaDataset(self.base_path)
        return self._state["base"]

    def warp_shard(self, k: int) -> list[Sample]:
        flows = self._flows()
        base = self._base().shard(k)
        kw = dict(standardise=self.standardise, tolerance=self.tolerance, max_abs=self.max_abs,
                  max_regenerations=self.max_regenerations, dtype=self.dtype)
        with torch_threads(1):
            results = warp_batch(base, flows, standardise=self.standardise,
                                 tolerance=self.tolerance, max_abs=self.max_abs,
                                 dtype=self.dtype)
            out = []
            for s, r in zip(base, results):
                if r.problem is None:
                    out.append(_record(s, r, self.modality, 0, int(s.seed), None))
                else:
                    out.append(_regenerate(s, flows, self.modality, self.priors,
                                           self.base_dtype, kw))
        return out

    def datapoint(self, i: int) -> Sample:
        k = i // self.shard_size
        cached = self._state.get("shard")
        if cached is None or cached[0] != k:
            self._state["shard"] = cached = (k, self.warp_shard(k))
        return cached[1][i - k * self.shard_size]


def warped_store_path(base_path: str | os.PathLike, modality: str) -> Path:
    """``<dir>/<name>@<modality>.zarr`` beside a base store ``<dir>/<name>.zarr``."""
    base_path = Path(base_path)
    stem = base_path.name[:-5] if base_path.name.endswith(".zarr") else base_path.name
    return base_path.with_name(f"{stem}@{modality}.zarr")


def warp_store(
    base,
    flows,
    path: str | os.PathLike | None = None,
    *,
    modality: str | None = None,
    standardise: str = "marginal",
    tolerance: float = DEFAULT_TOLERANCE,
    max_abs: float = DEFAULT_MAX_ABS,
    max_regenerations: int = DEFAULT_MAX_REGENERATIONS,
    dtype: str | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool = True,
    config: Mapping[str, Any] | None = None,
):
    """Warp the store ``base`` with a modality's ``flows`` into a new store; return it opened.

    base : a ``MetaDataset`` or the path of one; its datapoints must have the flows' dims.
    flows : ``ModalityFlows`` or the path of a flow file (``fit_modality(..., path=...)``).
    path : destination; default ``<dir>/<name>@<modality>.zarr`` beside the base store
        ``<dir>/<name>.zarr``.
    modality : name used in the split and the records (default: the flows' modality name).
    standardise, tolerance, max_abs, max_regenerations : see the module documentation.
    dtype : of the stored samples (default: the base store's).
    overwrite, workers, scheduler, progress : as for ``build_meta_dataset``.
    config : recorded in the store's ``config`` attribute (merged over the base's).
    """
    from . import __version__
    from .build import write_store
    from .dataset import MetaDataset
    from .design import SPLIT_NAME
    from .store import DTYPES

    ds = base if isinstance(base, MetaDataset) else MetaDataset(base)
    if ds.conditional:
        raise MistgenError(f"{ds.path} is a conditional (X, Y, Z) store; modality flows warp "
                           "(X, Y) stores")
    if isinstance(flows, ModalityFlows):
        blob, flows_path = flows.to_bytes(), None
    else:
        flows_path = str(flows)
        flows = load_flows(flows)
        blob = Path(flows_path).read_bytes()
    name = modality or flows.name
    if not name or not SPLIT_NAME.match(name) or "@" in name:
        raise WarpError(f"modality name must be letters, digits and _.+- only, got {name!r}")
    if "warp" in ds.meta:
        raise WarpError(f"{ds.path} is already a warped store ({ds.split}); warp its base store")
    if standardise not in STANDARDISE:
        raise WarpError(f"standardise must be one of {STANDARDISE}, got {standardise!r}")
    if not (tolerance > 0 and max_abs > 0):
        raise WarpError("tolerance and max_abs must be > 0")
    if isinstance(max_regenerations, bool) or not isinstance(max_regenerations, int) \
            or max_regenerations < 0:
        raise WarpError(f"max_regenerations must be an integer >= 0, got {max_regenerations!r}")
    dtype = dtype or ds.meta.get("dtype", "float32")
    if dtype not in DTYPES:
        raise WarpError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    problem = store_dims_problem(ds, flows.dim_x, flows.dim_y, name)
    if problem:
        raise WarpError(problem)
    split = f"{ds.split}@{name}"
    path = Path(path) if path is not None else warped_store_path(ds.path, name)
    if path.resolve() == ds.path.resolve():
        raise StoreError("the warped store cannot replace its own base store")
    plan = WarpPlan(
        base_path=str(ds.path), flows_blob=blob, modality=name, count=len(ds),
        shard_size=ds.shard_size, base_dtype=ds.meta.get("dtype", "float32"),
        priors=ds.meta.get("priors", {}), standardise=standardise, tolerance=float(tolerance),
        max_abs=float(max_abs), max_regenerations=max_regenerations, dtype=dtype,
    )
    meta = dict(ds.meta)
    meta.update({
        "split": split, "dtype": dtype, "complete": False, "version": __version__,
        "warp": {
            "modality": name, "base_split": ds.split, "base_path": str(ds.path),
            "base_version": ds.meta.get("version"),
            "flows_path": flows_path, "flows_sha256": hashlib.sha256(blob).hexdigest(),
            "flows": flows.describe(), "standardise": standardise,
            "tolerance": float(checked_tolerance(tolerance, dtype)),
            "tolerance_kind": "max |v_back - v| / max(1, |v|)",
            "max_abs": float(max_abs), "max_regenerations": max_regenerations,
            "precision": "float64",
        },
    })
    attrs = {"mistgen": meta, "config": {**ds.config, **dict(config or {})}}
    return write_store(path, plan, attrs, dtype=dtype, overwrite=overwrite, workers=workers,
                       scheduler=scheduler, progress=progress, desc=f"warp {split}")


def warp_summary(ds) -> dict[str, Any]:
    """Regenerations and round-trip errors of a warped store, read from its params."""
    from .dataset import MetaDataset

    ds = ds if isinstance(ds, MetaDataset) else MetaDataset(ds)
    if "warp" not in ds.meta:
        raise WarpError(f"{ds.path} is not a warped store")
    params = ds.index["params"]
    errors, regen = [], []
    for lo in range(0, len(ds), ds.shard_size):
        for p in params[lo: lo + ds.shard_size].values:
            w = json.loads(p)["warp"]
            errors.append(w["roundtrip_error"])
            regen.append(w["regenerated"])
    errors, regen = np.asarray(errors), np.asarray(regen)
    return {
        "modality": ds.meta["warp"]["modality"], "datapoints": len(ds),
        "regenerated_datapoints": int((regen > 0).sum()),
        "regenerations": int(regen.sum()),
        "max_roundtrip_error": float(errors.max()) if errors.size else 0.0,
        "median_roundtrip_error": float(np.median(errors)) if errors.size else 0.0,
        "tolerance": ds.meta["warp"]["tolerance"],
    }


# -- comparing with the modality and drawing -------------------------------------------

def marginal_ks(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two-sample Kolmogorov-Smirnov statistic per column of ``a`` (rows, d) vs ``b``."""
    from scipy.stats import ks_2samp

    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"column counts differ: {a.shape[1]} vs {b.shape[1]}")
    return np.array([ks_2samp(a[:, j], b[:, j]).statistic for j in range(a.shape[1])])


def store_marginal_ks(ds, modality, max_datapoints: int = 40,
                      standardize: bool = False) -> np.ndarray:
    """Per-column KS statistic between a store's pooled samples and the modality's data.

    Pools ``[x | y]`` rows of up to ``max_datapoints`` evenly spaced datapoints of ``ds``
    (base or warped; dims must match the modality). ``standardize`` compares shapes only
    (each side z-scored by its own column means and deviations). Small is close.
    """
    count = len(ds)
    if count == 0:
        raise WarpError("the store is empty")
    picks = np.unique(np.linspace(0, count - 1, min(max_datapoints, count)).round().astype(int))
    pooled = np.vstack([np.hstack([ds[int(i)].x, ds[int(i)].y]) for i in picks])
    data = np.hstack([modality.x, modality.y])
    if pooled.shape[1] != data.shape[1]:
        raise WarpError(f"the store has {pooled.shape[1]} columns, the modality {data.shape[1]}")
    if standardize:
        pooled = (pooled - pooled.mean(0)) / pooled.std(0)
        data = (data - data.mean(0)) / data.std(0)
    return marginal_ks(pooled, data)


def plot_warped_samples(warped, modality, path: str | os.PathLike, *,
                        indices: Sequence[int] | None = None, count: int = 3, base=None,
                        title: str | None = None) -> Path:
    """PNG: the modality's real data beside a few warped samples (and their base samples).

    warped : a warped ``MetaDataset`` (or a list of ``Sample``); modality : the
    ``Modality``; base : optionally the base store, to add each sample before warping.
    Rows show the X plane (first two X columns, or a histogram for one column), the Y
    plane, and X[0] against Y[0]. Warped panels share the real data's axis limits.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if indices is None:
        total = len(warped)
        indices = np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist()
    picks = [(int(i), warped[int(i)]) for i in indices]
    columns: list[tuple[str, np.ndarray, np.ndarray, str]] = [
        (f"{modality.name}: real data\n{modality.rows} rows", modality.x, modality.y, "C3")]
    for i, s in picks:
        w = s.params.get("warp", {})
        extra = f", regen {w['regenerated']}" if w.get("regenerated") else ""
        if base is not None:
            b = base[i] if not w.get("regenerated") else None
            if b is not None:
                columns.append((f"#{i} before warping\n{b.spec}", b.x, b.y, "0.5"))
        columns.append((f"#{i} warped, n={s.n}\n{s.spec}\nMI={s.mi:.3f}{extra}", s.x, s.y, "C0"))
    rows = [("X", "x"), ("Y", "y"), ("X[0] vs Y[0]", "xy")]
    fig = Figure(figsize=(2.6 * len(columns), 7.4))   # without pyplot: the caller's
    FigureCanvasAgg(fig)                               # backend stays as it was
    axes = fig.subplots(len(rows), len(columns), squeeze=False)

    def lims(a):
        lo, hi = np.quantile(a, [0.0, 1.0])
        pad = 0.15 * (hi - lo)
        return lo - pad, hi + pad

    ref = {"x": modality.x, "y": modality.y}
    for c, (label, x, y, color) in enumerate(columns):
        is_base = color == "0.5"
        for r, (rlabel, what) in enumerate(rows):
            ax = axes[r, c]
            if r == 0:
                ax.set_title(label, fontsize=7)
            if what == "xy":
                a, b = x[:, 0], y[:, 0]
                ref_a, ref_b = ref["x"][:, 0], ref["y"][:, 0]
                names = ("X[0]", "Y[0]") if is_base else (
                    f"X[0] {modality.x_names[0]}", f"Y[0] {modality.y_names[0]}")
            else:
                v = x if what == "x" else y
                rv = ref[what]
                nm = modality.x_names if what == "x" else modality.y_names
                if is_base:
                    nm = ("",) * len(nm)
                if v.shape[1] == 1:
                    ax.hist(v[:, 0], bins=30, color=color, alpha=0.8)
                    if not is_base:
                        ax.set_xlim(*lims(rv[:, 0]))
                    ax.set_xlabel(f"{what.upper()}[0] {nm[0]}", fontsize=7)
                    ax.tick_params(labelsize=6)
                    continue
                a, b, ref_a, ref_b = v[:, 0], v[:, 1], rv[:, 0], rv[:, 1]
                names = (f"{what.upper()}[0] {nm[0]}", f"{what.upper()}[1] {nm[1]}")
            ax.scatter(a, b, s=4, alpha=0.6, color=color, linewidths=0)
            if not is_base:
                ax.set_xlim(*lims(ref_a))
                ax.set_ylim(*lims(ref_b))
            ax.set_xlabel(names[0], fontsize=7)
            ax.set_ylabel(names[1], fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle(title or f"Samples warped to modality {modality.name!r} beside its real data",
                 fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    return path
