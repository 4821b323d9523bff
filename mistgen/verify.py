"""``verify_store(path)``: read a whole store and list everything that is wrong with it.

Checks: the group attributes and the index arrays agree; every array's own metadata file
matches the consolidated copy readers use; every chunk file exists and is a regular file
(Zarr reads a directory in its place as fill values); every chunk passes its checksum and
decodes (a shard's data array too when a chunk of its index is lost); the index locates
every datapoint; every shard holds the values the index locates; every datapoint's labels
are ones a build writes, and its MI label equals the closed form recomputed from its spec,
parameters and dims (which catches labels moved between datapoints, whose checksums still
hold); in a conditional store, whose loadings are not recorded, both labels (I(X;Y|Z) and
I(X;Y)) and the parameters are recomputed from its spec, dims and seed. One shard is read
at a time, so memory stays flat. For a store built by ``build_meta_dataset`` or
``build_conditional_dataset``, the attributes' seed, split and design must give every
datapoint its recorded spec, n, dims and seed (a store that records a build's seed and
priors but no design has lost it; a warped store is checked through its labels, its
datapoints being its base store's, warped); with ``regenerate=True`` every datapoint is
also drawn again and compared value by value. A path that is not a mistgen store at all
raises :class:`~mistgen.StoreError`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import zarr

from .conditional import conditional_truth
from .conditional_design import design_from_attrs, make_conditional_plan
from .dataset import MetaDataset
from .design import make_design, make_plan
from .errors import MistgenError, SpecError, StoreError
from .integrity import chunk_damage
from .spec import parse_spec
from .store import (
    CONDITIONAL_INDEX_FIELDS, FORMAT_FIELDS, INDEX_FIELDS, SHARD_GROUP, is_store, shard_name,
)
from .user_families import FamilyFileError

#: Relative tolerance between a stored MI label and its recomputed closed form.
MI_TOLERANCE = 1e-9
#: Attributes a build records beside ``design`` (``mistgen.build.store_attrs``): a store
#: that holds them was built from a design, and must still record it.
BUILD_RECORDS = ("seed", "priors")


@dataclass
class VerifyReport:
    """What ``verify_store`` found: ``ok`` when ``problems`` is empty."""

    path: Path
    problems: list[str] = field(default_factory=list)
    datapoints_checked: int = 0
    shards_checked: int = 0
    #: checks asked for that this store cannot have (not damage)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        notes = [f"  note: {n}" for n in self.notes]
        if self.ok:
            return "\n".join([f"{self.path}: OK ({self.datapoints_checked} datapoints in "
                              f"{self.shards_checked} shards checked)", *notes])
        lines = [f"{self.path}: DAMAGED ({len(self.problems)} problem(s))"]
        return "\n".join(lines + [f"  - {p}" for p in self.problems] + notes)


def verify_store(path: str | os.PathLike, regenerate: bool = False) -> VerifyReport:
    """Check every array and chunk of the store at ``path``; damage is reported, not raised.
    A path that is not a mistgen store at all (no such path, a file, an empty directory, a
    directory of other files) raises :class:`~mistgen.StoreError`; a store whose specs name
    a family or transform not registered in this process (a user file not loaded) raises
    :class:`~mistgen.SpecError`: it cannot be checked here."""
    report = VerifyReport(Path(path))
    why_not_store = _not_a_store(report.path)
    if why_not_store:
        raise StoreError(f"{report.path} is not a mistgen store ({why_not_store})")
    try:
        ds = MetaDataset(path)
    except StoreError as exc:
        report.problems.append(str(exc))
        report.problems.extend(_damage_without_opening(report.path))
        return report
    unknown = _unregistered_specs(ds)
    if unknown:
        raise SpecError(
            f"cannot verify {ds.path}: its specs {', '.join(map(repr, unknown))} name a family "
            "or transform not registered in this process, so their labels cannot be "
            "recomputed. A user family or transform is registered by loading its file: "
            f"MISTGEN_FAMILY_FILES=my_family.py mistgen verify {path} (or the store's "
            "attribute mistgen.specs is damaged)")
    report.problems.extend(_metadata_problems(ds))
    plan, why_not = _plan_of(ds)
    if why_not:
        report.problems.append(why_not)
    elif plan is None and regenerate:    # asked for, but this store has no plan to redraw
        report.notes.append(
            "datapoints not drawn again: a warped store's come from its base store's draws "
            "and its flows (verify the base store with --regenerate)" if "warp" in ds.meta
            else "datapoints not drawn again: the store has no mistgen.design attribute to "
                 "rebuild its plan from")
    damage = ds.damaged
    for (name, k), (file, kind) in sorted(damage.items()):
        lo, hi = ds.shard_bounds(k)
        report.problems.append(f"{ds.path}: array {name!r}, datapoints {lo}-{hi - 1}: "
                               f"{_chunk_damage_text(file, kind)}")
    damaged = {k for _, k in damage}
    for k in range(ds.num_shards):
        lo, hi = ds.shard_bounds(k)
        if k in damaged:    # labels lost: what is left of the shard is still read
            report.problems.extend(_partial_shard_problems(ds, k, damage))
            continue
        try:
            _check_shard_column(ds, k)
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


def _not_a_store(path: Path) -> str | None:
    """Why ``path`` is not a mistgen store at all, or ``None`` for a store, damaged or not:
    a directory whose zarr.json carries the mistgen attributes, or that holds a store's
    arrays (whatever happened to its zarr.json)."""
    if not os.path.lexists(path):
        return "no such file or directory"
    if not path.exists():
        return "a symbolic link to nothing"
    if not path.is_dir():
        return "a file, not a store's directory" if path.is_file() else "not a directory"
    if is_store(path):
        return None
    try:
        entries = os.listdir(path)
    except OSError as exc:
        return f"cannot be listed ({exc.strerror})"
    if not entries:
        return "an empty directory"
    arrays = (SHARD_GROUP, *CONDITIONAL_INDEX_FIELDS)
    if any((path / name / "zarr.json").is_file() for name in arrays if name in entries):
        return None
    return ("a directory holding neither a zarr.json with mistgen attributes nor any of a "
            "store's arrays")


def _chunk_damage_text(file: Path, kind: str) -> str:
    """What is wrong with a chunk file, naming it."""
    if kind == "missing":
        return f"chunk file missing ({file})"
    return f"chunk {file} is {kind}, not a chunk file (it would read as fill values)"


def _check_shard_column(ds: MetaDataset, k: int) -> None:
    """Array ``shard`` must hold ``k`` for every datapoint of shard ``k``."""
    lo, hi = ds.shard_bounds(k)
    shard_column = ds.read_column("shard", lo, hi)
    if not (shard_column == k).all():
        raise StoreError(f"{ds.path}: array 'shard', datapoints {lo}-{hi - 1}: holds shard "
                         f"numbers {sorted(set(shard_column.tolist()))}, expected {k}")


def _partial_shard_problems(ds: MetaDataset, k: int, damaged: Mapping) -> list[str]:
    """Shard ``k``, some of whose chunks are lost (``damaged``: (array, shard) pairs,
    reported already): its ``shard`` column and its data array, read and sized against the
    index, wherever they are left."""
    problems = []
    if ("shard", k) not in damaged:
        try:
            _check_shard_column(ds, k)
        except StoreError as exc:
            problems.append(str(exc))
    if (shard_name(k), k) not in damaged:
        try:
            ds._shard_values(k)
        except StoreError as exc:
            problems.append(str(exc))
    return problems


def _unregistered_specs(ds: MetaDataset) -> list[str]:
    """The store's I(X;Y) specs whose family or transforms are not registered here (a user
    file not loaded)."""
    if ds.conditional:
        return []
    unknown = []
    for spec in ds.meta.get("specs") or []:
        try:
            parse_spec(spec)
        except FamilyFileError:
            raise            # a user family file that does not load: say so, not the store
        except SpecError:
            unknown.append(spec)
    return unknown


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
    if ds.conditional:
        return _conditional_label_problems(ds, lo, samples)
    problems = []
    for i, s in enumerate(samples, start=lo):
        try:
            family = parse_spec(s.spec).family
            params = dict(s.params)
            if "warp" in ds.meta:          # a warped datapoint's record of its warp
                params.pop("warp", None)
            mi = family.mutual_information(family.check_params(params), s.dim_x, s.dim_y)
        except (MistgenError, KeyError, TypeError, ValueError, IndexError) as exc:
            problems.append(f"{ds.path}: array 'params', datapoint {i}: parameters "
                            f"{s.params} do not define an MI ({exc})")
            continue
        problems.extend(_label_differs(ds, i, "mi", s.mi, mi, "the MI of its spec and "
                                                               "parameters"))
    return problems


def _label_differs(ds: MetaDataset, i: int, name: str, label: float, truth: float,
                   what: str) -> list[str]:
    if not abs(truth - label) <= MI_TOLERANCE * max(1.0, abs(truth)):  # NaN: differs
        return [f"{ds.path}: array {name!r}, datapoint {i}: label {label!r} differs from "
                f"{float(truth)!r}, {what}"]
    return []


def _conditional_label_problems(ds: MetaDataset, lo: int, samples) -> list[str]:
    problems = []
    what = "recomputed from its spec, dims and seed"
    for i, s in enumerate(samples, start=lo):
        try:
            cmi, mi, params = conditional_truth(s.spec, s.dim_x, s.dim_y, s.dim_z, s.seed)
        except (MistgenError, ValueError, np.linalg.LinAlgError) as exc:
            problems.append(f"{ds.path}: array 'spec', datapoint {i}: {s.spec!r} with dims "
                            f"{(s.dim_x, s.dim_y, s.dim_z)} does not define a CMI ({exc})")
            continue
        problems.extend(_label_differs(ds, i, "cmi", s.cmi, cmi, f"the CMI {what}"))
        problems.extend(_label_differs(ds, i, "mi", s.mi, mi, f"the MI {what}"))
        if s.params != params:
            problems.append(f"{ds.path}: array 'params', datapoint {i}: {s.params} differ "
                            f"from {params}, {what}")
    return problems


def _plan_of(ds: MetaDataset):
    """The plan that built ``ds``, or why it cannot be rebuilt. ``None`` for a warped store
    (its datapoints are its base store's, warped) and for a store written by ``write_store``
    from a plan of its own, which records no build (:data:`BUILD_RECORDS`) nor design."""
    meta = ds.meta
    if "warp" in meta:
        return None, None
    built = [key for key in BUILD_RECORDS if key in meta]
    if "design" not in meta:
        if built:
            return None, (f"{ds.path}: attribute mistgen.design is missing, but the store "
                          f"records the {' and '.join(built)} of a build from a design; its "
                          "datapoints cannot be checked against the plan that built them")
        return None, None
    d = meta["design"]
    if not isinstance(d, dict):
        if built:
            return None, (f"{ds.path}: attribute mistgen.design must be a dict (the design "
                          f"the store was built from), got {d!r:.80}")
        return None, None
    try:
        if ds.conditional:
            plan = make_conditional_plan(design_from_attrs(meta["specs"], d), meta.get("seed"),
                                         meta["split"], ds.shard_size)
        else:
            args = {key: d[key] for key in ("dim_range", "dim_y_range")}
            if d.get("kind") == "grid":
                args.update(n_grid=d["n_grid"], dim_grid=d["dim_grid"], repeats=d["repeats"])
            else:
                args.update(count=d["count"], n_range=d["n_range"])
            plan = make_plan(make_design(meta["specs"], **args), meta.get("seed"),
                             meta["split"], meta.get("priors") or None, ds.shard_size)
    except (MistgenError, KeyError, TypeError, ValueError) as exc:
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
    groups = ("x", "y", "z") if ds.conditional else ("x", "y")
    names = ("spec", "n", *(f"dim_{g}" for g in groups), "seed")
    for i, s in enumerate(samples, start=lo):
        expected = plan.address(i)
        found = tuple(getattr(s, name) for name in names)
        if found != expected:
            problems.append(
                f"{ds.path}: datapoint {i}: index holds ({', '.join(names)}) = {found}, but "
                f"attributes seed/split/design give {expected}")
            continue
        if regenerate:
            fresh = plan.datapoint(i)
            dtype = s.x.dtype
            if fresh.params != s.params:
                problems.append(f"{ds.path}: array 'params', datapoint {i}: {s.params} differ "
                                f"from {fresh.params}, drawn again from its seed and priors")
            elif not all(np.array_equal(getattr(fresh, g).astype(dtype), getattr(s, g))
                         for g in groups):
                problems.append(f"{ds.path}: array {shard_name(i // ds.shard_size)!r}, "
                                f"datapoint {i}: values differ from the datapoint drawn again "
                                "from its seed")
    return problems


def _damage_without_opening(path: Path) -> list[str]:
    """Lost chunk files of a store that does not open, and its data arrays that do not
    decode, when its shard count is readable."""
    try:
        meta = json.loads((path / "zarr.json").read_text())["attributes"]["mistgen"]
        num_shards = meta["num_shards"]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return []
    if not isinstance(num_shards, int) or isinstance(num_shards, bool):
        return []
    store_format = meta.get("format") if isinstance(meta, dict) else None
    fields = FORMAT_FIELDS.get(store_format, INDEX_FIELDS) if isinstance(store_format, str) \
        else INDEX_FIELDS
    damage = chunk_damage(path, num_shards, fields)
    problems = [f"{path}: array {name!r}, chunk {k}: {_chunk_damage_text(file, kind)}"
                for (name, k), (file, kind) in sorted(damage.items())]
    for k in range(num_shards):
        if (shard_name(k), k) not in damage:
            problems.extend(_unreadable_data(path, k))
    return problems


def _unreadable_data(path: Path, k: int) -> list[str]:
    """The data array of shard ``k`` of a store that does not open, if it does not decode
    (its size cannot be checked without the index)."""
    name = shard_name(k)
    try:
        zarr.open_array(str(path / name), mode="r")[:]
    except Exception as exc:    # unreadable metadata or chunk of any kind
        return [f"{path}: array {name!r}: cannot be read ({exc})"]
    return []
