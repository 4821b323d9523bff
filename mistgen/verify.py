"""``verify_store(path)``: read a whole store and list everything that is wrong with it.

Checks: the group attributes and the index arrays agree; every array's own metadata file
matches the consolidated copy readers use; every chunk file exists; every chunk passes its
checksum and decodes; the index locates every datapoint; every shard holds the values the
index locates; every datapoint's labels are ones a build writes, and its MI label equals
the closed form recomputed from its spec, parameters and dims (which catches labels moved
between datapoints, whose checksums still hold). One shard is read at a time, so memory
stays flat. For a store built by ``build_meta_dataset``, the attributes' seed, split and
design must give every datapoint its recorded spec, n, dims and seed; with
``regenerate=True`` every datapoint is also drawn again and compared value by value.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dataset import MetaDataset
from .design import make_design, make_plan
from .errors import MistgenError, StoreError
from .integrity import missing_chunks
from .spec import parse_spec
from .store import SHARD_GROUP, shard_name

#: Relative tolerance between a stored MI label and its recomputed closed form.
MI_TOLERANCE = 1e-9


@dataclass
class VerifyReport:
    """What ``verify_store`` found: ``ok`` when ``problems`` is empty."""

    path: Path
    problems: list[str] = field(default_factory=list)
    datapoints_checked: int = 0
    shards_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        if self.ok:
            return (f"{self.path}: OK ({self.datapoints_checked} datapoints in "
                    f"{self.shards_checked} shards checked)")
        lines = [f"{self.path}: DAMAGED ({len(self.problems)} problem(s))"]
        return "\n".join(lines + [f"  - {p}" for p in self.problems])


def verify_store(path: str | os.PathLike, regenerate: bool = False) -> VerifyReport:
    """Check every array and chunk of the store at ``path``; damage is reported, not raised."""
    report = VerifyReport(Path(path))
    try:
        ds = MetaDataset(path)
    except StoreError as exc:
        report.problems.append(str(exc))
        report.problems.extend(_missing_without_opening(report.path))
        return report
    report.problems.extend(_metadata_problems(ds))
    plan, why_not = _plan_of(ds)
    if why_not:
        report.problems.append(why_not)
    damaged = set()
    for name, k in sorted(ds.missing):
        lo, hi = ds.shard_bounds(k)
        report.problems.append(f"{ds.path}: array {name!r}, datapoints {lo}-{hi - 1}: "
                               "chunk file missing")
        damaged.add(k)
    for k in sorted(set(range(ds.num_shards)) - damaged):
        lo, hi = ds.shard_bounds(k)
        try:
            shard_column = ds.read_column("shard", lo, hi)
            if not (shard_column == k).all():
                raise StoreError(f"{ds.path}: array 'shard', datapoints {lo}-{hi - 1}: "
                                 f"holds shard numbers {sorted(set(shard_column.tolist()))}, "
                                 f"expected {k}")
            samples = ds.shard(k)
        except StoreError as exc:
            report.problems.append(str(exc))
            continue
        report.problems.extend(_label_problems(ds, lo, samples))
        if plan is not None:
            report.problems.extend(_address_problems(ds, plan, lo, samples, regenerate))
        report.shards_checked += 1
        report.datapoints_checked += hi - lo
    try:
        entries = set(os.listdir(ds.path / SHARD_GROUP))
    except OSError as exc:   # the missing shards themselves are reported above
        report.problems.append(f"{ds.path / SHARD_GROUP}: cannot be listed ({exc.strerror})")
        entries = set()
    extra = sorted(entries - {"zarr.json"} - {f"{k:05d}" for k in range(ds.num_shards)})
    if extra:
        report.problems.append(f"{ds.path / SHARD_GROUP}: unexpected entries {extra[:5]}")
    return report


def _metadata_problems(ds: MetaDataset) -> list[str]:
    """Array metadata files that differ from (or lack) their consolidated copy; dtype."""
    root = json.loads((ds.path / "zarr.json").read_text())
    consolidated = (root.get("consolidated_metadata") or {}).get("metadata")
    if not consolidated:
        return [f"{ds.path}/zarr.json: consolidated metadata is missing"]
    problems = []
    arrays = {name: e for name, e in consolidated.items() if e.get("node_type") == "array"}
    for name, entry in sorted(arrays.items()):
        file = ds.path / name / "zarr.json"
        try:
            own = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"{file}: metadata of array {name!r} unreadable ({exc})")
            continue
        if own != entry:
            problems.append(f"{file}: metadata of array {name!r} differs from the copy in "
                            f"{ds.path / 'zarr.json'}")
        if name.startswith(f"{SHARD_GROUP}/") and entry.get("data_type") != ds.meta.get("dtype"):
            problems.append(f"{ds.path}: array {name!r} holds {entry.get('data_type')}, but "
                            f"attribute mistgen.dtype says {ds.meta.get('dtype')!r}")
    return problems


def _label_problems(ds: MetaDataset, lo: int, samples) -> list[str]:
    """Datapoints whose MI label is not the closed form of their own parameters."""
    problems = []
    for i, s in enumerate(samples, start=lo):
        try:
            mi = parse_spec(s.spec).family.mutual_information(s.params, s.dim_x, s.dim_y)
        except (MistgenError, KeyError, TypeError, ValueError, IndexError) as exc:
            problems.append(f"{ds.path}: array 'params', datapoint {i}: parameters "
                            f"{s.params} do not define an MI ({exc})")
            continue
        if abs(mi - s.mi) > MI_TOLERANCE * max(1.0, abs(mi)):
            problems.append(f"{ds.path}: array 'mi', datapoint {i}: label {s.mi!r} differs "
                            f"from {float(mi)!r}, the MI of its spec and parameters")
    return problems


def _plan_of(ds: MetaDataset):
    """The plan that built ``ds`` (``None`` for warped stores), or why it cannot be rebuilt."""
    meta = ds.meta
    if "warp" in meta or not isinstance(meta.get("design"), dict):
        return None, None
    d = meta["design"]
    try:
        args = {key: d[key] for key in ("dim_range", "dim_y_range")}
        if d.get("kind") == "grid":
            args.update(n_grid=d["n_grid"], dim_grid=d["dim_grid"], repeats=d["repeats"])
        else:
            args.update(count=d["count"], n_range=d["n_range"])
        plan = make_plan(make_design(meta["specs"], **args), meta.get("seed"), meta["split"],
                         meta.get("priors") or None, ds.shard_size)
    except (MistgenError, KeyError, TypeError) as exc:
        return None, (f"{ds.path}: attributes mistgen.design/seed/split do not define a plan "
                      f"({exc})")
    if plan.count != len(ds):
        return None, (f"{ds.path}: attribute mistgen.design holds {plan.count} datapoints, "
                      f"the store {len(ds)}")
    return plan, None


def _address_problems(ds: MetaDataset, plan, lo: int, samples, regenerate: bool) -> list[str]:
    """Datapoints that the recorded seed, split and design do not give (or, when
    ``regenerate``, whose values differ from a fresh draw)."""
    problems = []
    for i, s in enumerate(samples, start=lo):
        expected = plan.address(i)
        if (s.spec, s.n, s.dim_x, s.dim_y, s.seed) != expected:
            problems.append(
                f"{ds.path}: datapoint {i}: index holds (spec, n, dim_x, dim_y, seed) = "
                f"{(s.spec, s.n, s.dim_x, s.dim_y, s.seed)}, but attributes seed/split/design "
                f"give {expected}")
            continue
        if regenerate:
            fresh = plan.datapoint(i)
            dtype = s.x.dtype
            if fresh.params != s.params:
                problems.append(f"{ds.path}: array 'params', datapoint {i}: {s.params} differ "
                                f"from {fresh.params}, drawn again from its seed and priors")
            elif not (np.array_equal(fresh.x.astype(dtype), s.x)
                      and np.array_equal(fresh.y.astype(dtype), s.y)):
                problems.append(f"{ds.path}: array {shard_name(i // ds.shard_size)!r}, "
                                f"datapoint {i}: values differ from the datapoint drawn again "
                                "from its seed")
    return problems


def _missing_without_opening(path: Path) -> list[str]:
    """Missing chunk files of a store that does not open, when its shard count is readable."""
    try:
        num_shards = json.loads((path / "zarr.json").read_text())["attributes"]["mistgen"][
            "num_shards"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(num_shards, int) or isinstance(num_shards, bool):
        return []
    return [f"{path}: array {name!r}, chunk {k}: chunk file missing"
            for name, k in sorted(missing_chunks(path, num_shards))]
