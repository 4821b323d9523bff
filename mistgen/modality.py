"""A data modality: a table of real observations and which of its columns are X and Y.

A modality is named by a data file (``.npy`` or ``.csv``, one row per observation) and
two disjoint lists of columns. It fixes the dimensions of everything warped to it:
``dim_x = len(x_columns)`` and ``dim_y = len(y_columns)``. Flows are fitted to the X
columns jointly and to the Y columns jointly (see :mod:`mistgen.flows`), and a base
meta-dataset is warped to the modality only if its datapoints have exactly these dims
(:func:`build_modality_base` builds one that does).

In a study config::

    modalities:
      breast_cancer:
        path: mistgen/modalities/breast_cancer.npy
        x_columns: [0, 1]
        y_columns: [2, 3]
        flow: {num_layers: 4, hidden_features: 32}   # optional, see FlowSettings

Columns are 0-based integers, or header names for a ``.csv`` whose first line is a header.
Every problem with the data (missing file, unreadable or non-numeric cells, NaN or inf,
too few rows, constant or nearly discrete columns, bad or overlapping columns) raises a
:class:`ModalityError` that names it.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import MistgenError, warn_caller
from .merges import merges_values

#: Shipped example modalities: name -> data file in ``mistgen/modalities``.
EXAMPLES_DIR = Path(__file__).resolve().parent / "modalities"
DATA_SUFFIXES = (".npy", ".csv")
DEFAULT_MIN_ROWS = 100
DEFAULT_MIN_UNIQUE = 20
CONFIG_KEYS = frozenset({"path", "x_columns", "y_columns", "flow", "min_rows", "min_unique"})


class ModalityError(MistgenError):
    """Modality data or its description is unusable (the message says why)."""


class ModalityWarning(UserWarning):
    """A modality column that loads but may not warp as hoped (an ID, or values float32
    cannot tell apart)."""


@dataclass(frozen=True, eq=False)
class Modality:
    """Observations of a target modality, split into an X part and a Y part."""

    name: str
    x: np.ndarray  #: (rows, dim_x) float64
    y: np.ndarray  #: (rows, dim_y) float64
    path: str
    x_columns: tuple[Any, ...]
    y_columns: tuple[Any, ...]
    x_names: tuple[str, ...]
    y_names: tuple[str, ...]
    sha256: str
    flow: Mapping[str, Any] = field(default_factory=dict)  #: flow setting overrides

    @property
    def dim_x(self) -> int:
        return self.x.shape[1]

    @property
    def dim_y(self) -> int:
        return self.y.shape[1]

    @property
    def rows(self) -> int:
        return self.x.shape[0]

    def describe(self) -> dict[str, Any]:
        """JSON-ready provenance: file, digest, columns, dims, rows."""
        return {
            "name": self.name, "path": self.path, "sha256": self.sha256, "rows": self.rows,
            "dim_x": self.dim_x, "dim_y": self.dim_y,
            "x_columns": list(self.x_columns), "y_columns": list(self.y_columns),
            "x_names": list(self.x_names), "y_names": list(self.y_names),
        }

    def __repr__(self) -> str:
        return (f"Modality({self.name!r}, rows={self.rows}, dim_x={self.dim_x}, "
                f"dim_y={self.dim_y}, path={self.path!r})")


# -- reading ---------------------------------------------------------------------

def read_table(path: str | os.PathLike) -> tuple[np.ndarray, list[str] | None]:
    """Read a ``.npy`` or ``.csv`` table as float64 (rows, columns) and its header if any.

    A 1-D ``.npy`` array is one column. A ``.csv`` may start with one header line; every
    other cell must parse as a number (``nan``/``inf`` parse, and are rejected later).
    """
    path = Path(path)
    if not path.is_file():
        raise ModalityError(f"modality data file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise ModalityError(
            f"modality data file {str(path)!r}: unsupported type {suffix or '(none)'!r}; "
            f"use one of {', '.join(DATA_SUFFIXES)} with one row per observation"
        )
    if suffix == ".npy":
        try:
            table = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ModalityError(f"cannot read {str(path)!r} as a .npy array: {exc}") from exc
        if not isinstance(table, np.ndarray):       # a .npz archive under a .npy name
            raise ModalityError(f"{str(path)!r} is an .npz archive, not a .npy array")
        if table.dtype.kind not in "biuf":
            raise ModalityError(
                f"{str(path)!r} holds {table.dtype} values; modality data must be numeric"
            )
        if table.ndim == 1:
            table = table[:, None]
        if table.ndim != 2:
            raise ModalityError(
                f"{str(path)!r} has shape {table.shape}; modality data must be a 2-D array "
                "with one row per observation and one column per variable"
            )
        return table.astype(np.float64), None
    return _read_csv(path)


# cells that mark a missing value, not a name: a first row with them and numbers is data
MISSING_MARKERS = frozenset({"", "#N/A", "#NA", "<NA>", "N/A", "NA", "NULL", "NaN", "None",
                             "n/a", "nan", "null", "-", "?", "."})


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    with open(path, newline="", encoding="utf-8-sig") as fh:   # a byte-order mark is no name
        lines = [row for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    if not lines:
        raise ModalityError(f"{str(path)!r} is empty")
    header = None
    first = [c.strip() for c in lines[0]]
    # a header holds a name; a first row of numbers and missing-value markers is data, and
    # its missing values are reported below like any other row's
    if any(c not in MISSING_MARKERS and not _is_number(c) for c in first) or \
            not any(_is_number(c) for c in first):
        header = first
        lines = lines[1:]
    width = len(header) if header is not None else len(lines[0]) if lines else 0
    values = np.empty((len(lines), width), dtype=np.float64)
    for r, row in enumerate(lines):
        line_no = r + (2 if header is not None else 1)
        if len(row) != width:
            raise ModalityError(
                f"{str(path)!r} line {line_no} has {len(row)} fields, expected {width}"
            )
        for c, cell in enumerate(row):
            try:
                values[r, c] = float(cell)
            except ValueError:
                raise ModalityError(
                    f"{str(path)!r} line {line_no}, column {c}: {cell!r} is not a number"
                ) from None
    return values, header


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resolve_columns(which: str, columns: Any, width: int, header: list[str] | None) -> list[int]:
    if isinstance(columns, (str, bytes)) or not isinstance(columns, Sequence) or not columns:
        raise ModalityError(f"{which} must be a non-empty list of columns, got {columns!r}")
    out = []
    for c in columns:
        if isinstance(c, str):
            if header is None:
                raise ModalityError(
                    f"{which}: column {c!r} is a name, but the data file has no header; "
                    "use 0-based column numbers"
                )
            if c not in header:
                raise ModalityError(f"{which}: no column named {c!r}; columns are {header}")
            out.append(header.index(c))
        elif isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise ModalityError(f"{which}: columns must be integers or names, got {c!r}")
        elif not 0 <= c < width:
            raise ModalityError(
                f"{which}: column {int(c)} is out of range; the data has {width} columns "
                f"(0..{width - 1})"
            )
        else:
            out.append(int(c))
    if len(set(out)) != len(out):
        raise ModalityError(f"{which} names a column twice: {list(columns)!r}")
    return out


def check_values(values: np.ndarray, names: Sequence[str], where: str, *, min_rows: int,
                 min_unique: int) -> None:
    """Raise ``ModalityError`` for NaN/inf, too few rows, constant or near-discrete columns."""
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        cols = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
        raise ModalityError(
            f"{where}: {rows.size} rows hold NaN or inf (first rows, 0-based: "
            f"{rows[:5].tolist()}; columns {cols}); remove or impute them first"
        )
    if values.shape[0] < min_rows:
        raise ModalityError(
            f"{where}: {values.shape[0]} rows, but fitting a flow needs at least {min_rows} "
            "observations (min_rows)"
        )
    for j, name in enumerate(names):
        distinct = np.unique(values[:, j]).size
        if distinct == 1:
            raise ModalityError(
                f"{where}: column {name} is constant ({float(values[0, j])!r}); a constant column "
                "has no distribution to fit - drop it"
            )
        if distinct < min_unique:
            raise ModalityError(
                f"{where}: column {name} has only {distinct} distinct values; flows model "
                f"continuous data (need at least {min_unique} distinct values, min_unique)"
            )
        column = values[:, j]
        if merges_values(column[:, None], column[:, None].astype(np.float32)):
            warn_caller(
                f"{where}: column {name} spreads {float(column.std()):.3g} around "
                f"{float(column.mean()):.6g}, finer than float32 resolves there: warped into "
                "a float32 store its values merge or fail the round trip. Centre the column "
                "first, or warp into float64 stores (dtype='float64').", ModalityWarning)
        steps = np.diff(column)
        if distinct == len(column) and np.all(column == np.round(column)) and \
                steps.size and np.all(steps == steps[0]):
            warn_caller(
                f"{where}: column {name} counts up by {float(steps[0]):g} from row to row, "
                "like a row ID: it carries no dependence to learn from; drop it if it is one.",
                ModalityWarning)


def load_modality(
    path: str | os.PathLike,
    x_columns: Sequence[int | str],
    y_columns: Sequence[int | str],
    *,
    name: str | None = None,
    flow: Mapping[str, Any] | None = None,
    min_rows: int = DEFAULT_MIN_ROWS,
    min_unique: int = DEFAULT_MIN_UNIQUE,
    column_names: Sequence[str] | None = None,
) -> Modality:
    """Read and validate a modality's data file.

    ``x_columns`` and ``y_columns`` are disjoint lists of 0-based column numbers (or header
    names of a ``.csv``); they fix ``dim_x`` and ``dim_y``. ``flow`` holds flow setting
    overrides kept with the modality (see :class:`mistgen.flows.FlowSettings`).
    ``column_names`` names the columns of a file without a header (or replaces its header).
    """
    path = Path(path)
    table, header = read_table(path)
    if column_names is not None:
        if len(column_names) != table.shape[1]:
            raise ModalityError(
                f"column_names has {len(column_names)} names but {path} has "
                f"{table.shape[1]} columns"
            )
        header = [str(c) for c in column_names]
    where = f"modality {name or path.stem!r} ({path})"
    xc = _resolve_columns("x_columns", x_columns, table.shape[1], header)
    yc = _resolve_columns("y_columns", y_columns, table.shape[1], header)
    shared = sorted(set(xc) & set(yc))
    if shared:
        raise ModalityError(
            f"{where}: x_columns and y_columns share column(s) {shared}; X and Y must be "
            "different variables"
        )
    label = (lambda j: repr(header[j])) if header is not None else (lambda j: str(j))
    names_x = [label(j) for j in xc]
    names_y = [label(j) for j in yc]
    from .flows import MIN_FIT_ROWS

    for k, v, low in (("min_rows", min_rows, MIN_FIT_ROWS), ("min_unique", min_unique, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ModalityError(f"{k} must be an integer >= {low}, got {v!r}")
    check_values(table[:, xc + yc], names_x + names_y, where, min_rows=int(min_rows),
                 min_unique=int(min_unique))
    if flow is not None and not isinstance(flow, Mapping):
        raise ModalityError(f"{where}: flow settings must be a mapping, got {flow!r}")
    return Modality(
        name=name or path.stem, x=np.ascontiguousarray(table[:, xc]),
        y=np.ascontiguousarray(table[:, yc]), path=str(path),
        x_columns=tuple(_plain(c) for c in x_columns),
        y_columns=tuple(_plain(c) for c in y_columns),
        x_names=tuple(header[j] if header else str(j) for j in xc),
        y_names=tuple(header[j] if header else str(j) for j in yc),
        sha256=_file_digest(path), flow=dict(flow or {}),
    )


def _plain(column: Any) -> int | str:
    return column if isinstance(column, str) else int(column)


def modality_from_config(name: str, entry: Mapping[str, Any],
                         base_dir: str | os.PathLike | None = None) -> Modality:
    """A modality from one entry of a config's ``modalities`` mapping.

    Keys: ``path`` (relative paths are taken from ``base_dir``, default the working
    directory), ``x_columns``, ``y_columns``, and optionally ``flow`` (flow settings),
    ``min_rows``, ``min_unique``.
    """
    if not isinstance(entry, Mapping):
        raise ModalityError(f"modalities.{name} must be a mapping, got {entry!r}")
    unknown = sorted(set(entry) - CONFIG_KEYS)
    if unknown:
        raise ModalityError(
            f"modalities.{name}: unknown key(s) {unknown}; allowed: {sorted(CONFIG_KEYS)}"
        )
    missing = [k for k in ("path", "x_columns", "y_columns") if k not in entry]
    if missing:
        raise ModalityError(f"modalities.{name}: missing required key(s) {missing}")
    if not isinstance(entry["path"], (str, os.PathLike)):
        raise ModalityError(f"modalities.{name}.path must be a file path, got {entry['path']!r}")
    path = Path(entry["path"])
    if not path.is_absolute():
        path = Path(base_dir or ".") / path
    return load_modality(
        path, entry["x_columns"], entry["y_columns"], name=name, flow=entry.get("flow"),
        min_rows=entry.get("min_rows", DEFAULT_MIN_ROWS),
        min_unique=entry.get("min_unique", DEFAULT_MIN_UNIQUE),
    )


def example_modalities() -> list[str]:
    """Names of the modalities shipped in ``mistgen/modalities``."""
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.json")
                  if (EXAMPLES_DIR / f"{p.stem}.npy").is_file())


def example_modality(name: str = "breast_cancer") -> Modality:
    """A shipped example modality, with the columns its provenance file suggests."""
    meta_path = EXAMPLES_DIR / f"{name}.json"
    if not meta_path.is_file():
        raise ModalityError(
            f"no shipped modality {name!r}; shipped: {', '.join(example_modalities()) or 'none'}"
        )
    meta = json.loads(meta_path.read_text())
    return load_modality(EXAMPLES_DIR / meta["file"], meta["x_columns"], meta["y_columns"],
                         name=name, column_names=meta.get("columns"))


# -- base stores with the modality's dims ----------------------------------------

def check_store_dims(ds, modality: Modality) -> None:
    """Raise ``ModalityError`` unless every datapoint of ``ds`` has the modality's dims."""
    problem = store_dims_problem(ds, modality.dim_x, modality.dim_y, modality.name)
    if problem:
        raise ModalityError(problem)


def store_dims_problem(ds, dim_x: int, dim_y: int, name: str) -> str | None:
    """Why the datapoints of ``ds`` do not all have dims (dim_x, dim_y), or ``None``."""
    from .dataset import MetaDataset

    if not isinstance(ds, MetaDataset):
        raise TypeError(f"expected a MetaDataset, got {type(ds).__name__}")
    index = ds.index
    dx, dy = index["dim_x"].values, index["dim_y"].values
    wrong = np.flatnonzero((dx != dim_x) | (dy != dim_y))
    if not wrong.size:
        return None
    i = int(wrong[0])
    return (
        f"{ds.path}: {wrong.size} of {len(ds)} datapoints do not have the dims of modality "
        f"{name!r} (dim_x={dim_x}, dim_y={dim_y}); e.g. datapoint {i} has "
        f"dim_x={int(dx[i])}, dim_y={int(dy[i])}. Build the base store with "
        "mistgen.modality.build_modality_base (dims fixed to the modality's)"
    )


def build_modality_base(path: str | os.PathLike, modality: Modality, specs: Sequence[str],
                        count: int | None = None, **kwargs: Any):
    """``mistgen.build_meta_dataset`` with dim_x and dim_y fixed to the modality's.

    Every other keyword (``n_range``, ``n_grid``, ``repeats``, ``seed``, ``split``,
    ``shard_size``, ``priors``, ``workers``, ...) is passed through; ``dim_range``,
    ``dim_y_range`` and ``dim_grid`` are set here and may not be given.
    """
    from .build import build_meta_dataset

    clash = sorted({"dim_range", "dim_y_range", "dim_grid"} & set(kwargs))
    if clash:
        raise ModalityError(
            f"build_modality_base fixes the dims from modality {modality.name!r}; do not pass "
            f"{clash}"
        )
    return build_meta_dataset(
        path, specs, count, dim_range=(modality.dim_x, modality.dim_x),
        dim_y_range=(modality.dim_y, modality.dim_y), **kwargs,
    )
