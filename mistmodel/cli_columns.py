"""The ``mist`` command line's input: a data file's columns, the user's column selection,
and the selected columns as float arrays.

Everything here needs numpy only (pandas for csv bodies and parquet files), so a wrong
file name, flag or column is reported before the estimators and torch are imported.

A csv file's first row is its header when ``header`` says so; left to this module
(``header=None``) it is a header when it holds a token that is not a number, and data when
every token is a number.  Two kinds of first row could be either, and are refused with a
message asking for ``--header`` or ``--no-header``: whole numbers only above rows holding
decimals, and text only above columns that hold text below it (numbers elsewhere).  A first row reading ``0, 1, ..., k-1`` (or ``1, ..., k``) above whole
numbers is read as data with a warning.  Lines of white space are skipped, as pandas
skips them; a first line of empty fields only (``,``) is refused.
"""
from __future__ import annotations

import csv
import math
import numbers
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Sequence

import numpy as np

from .caller_warnings import warn
from .estimators.base import check_exact_float64, refuse_durations

__all__ = ["InputError", "HeaderWarning", "Table", "existing_file", "new_file", "open_table",
           "select", "select_conditioning", "select_columns"]

SUFFIXES = {".npy": "npy", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
NPY_MAGIC = b"\x93NUMPY"     # how every .npy file starts
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")   # a .npz archive is a zip file
PEEK_ROWS = 200          # rows below the first one read to decide whether it is a header
_INTEGER = re.compile(r"[+-]?\d+")
# cells that mark a missing value (pandas' defaults, and common stand-ins)
MISSING_MARKERS = frozenset({"#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                             "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None",
                             "n/a", "nan", "null", "-", "?", "."})


class InputError(ValueError):
    """A problem with the user's file or flags (reported without a traceback)."""


class HeaderWarning(UserWarning):
    """A csv file's first row was read as data although it looks like column numbers."""


@dataclass
class Table:
    """A data file's shape and column names, read without loading its body."""

    path: Path
    kind: str                       # "npy", "csv" or "parquet"
    ncols: int
    names: list[str] | None         # header names; None when the file has none
    _array: np.ndarray | None = None
    _frame: object | None = None

    def label(self, col: int) -> str:
        """How messages name a column: ``column 'income'`` (``column 'income[4]'`` where the
        header repeats the name), or ``column 3`` without a header."""
        if self.names is not None and self.names[col]:
            return f"column {self.key(col)!r}"
        return f"column {col}"

    def key(self, col: int) -> str:
        """A column's name in the output: its header name, else its index, with ``[index]``
        added where another column of the file would have the same (a header that repeats
        a name, or an unnamed column whose index is another's name), so that every output
        tells the columns apart."""
        base = self._bases[col]
        return f"{base}[{col}]" if self._base_counts[base] > 1 else base

    @cached_property
    def _bases(self) -> list[str]:
        """Every column's header name, else its index."""
        return [n if n else str(c) for c, n in enumerate(self.names or [None] * self.ncols)]

    @cached_property
    def _base_counts(self) -> Counter:
        return Counter(self._bases)

    def keys(self, cols: list[int]) -> list[str]:
        """The columns' names in a table of them (:meth:`key`)."""
        return [self.key(c) for c in cols]

    def read(self, cols: list[int], flag: str) -> np.ndarray:
        """The columns ``cols`` as a float64 array; a non-numeric column or a NaN/inf value
        is an :class:`InputError` naming the column (by header name) and the row.  A .npy
        file of complex numbers is refused, and one of floats wider than float64
        (``longdouble``) unless every value read is a float64 value."""
        if self.kind == "npy":
            data = self._array[:, cols]
            if data.dtype == object or not (np.issubdtype(data.dtype, np.number)
                                            or data.dtype == np.bool_):
                raise InputError(f"{flag}: {self.path} holds non-numeric values "
                                 f"(dtype {data.dtype})")
            if np.iscomplexobj(data):
                raise InputError(f"{flag}: {self.path} holds complex values (dtype "
                                 f"{data.dtype}); MIST needs real ones")
            self._check_exact(data, cols, flag)
            with np.errstate(over="ignore"):       # beyond float64's range: refused below
                out = np.asarray(data, dtype=np.float64)
            self._check_rounding(data, out, cols, flag)
        else:
            out = self._numeric_columns(self._body(cols), cols, flag)
        _check_finite(out, [self.label(c) for c in cols], flag, self.names is not None)
        return out

    # ------------------------------------------------------------------ internals
    def _body(self, cols: list[int]):
        if self._frame is None:
            import pandas as pd
            _check_row_lengths(self.path, self.ncols)
            try:
                with warnings.catch_warnings():
                    # a row longer than the header: an error, not a silently cut row
                    warnings.simplefilter("error", pd.errors.ParserWarning)
                    self._frame = pd.read_csv(
                        self.path, header=0 if self.names is not None else None,
                        index_col=False, skipinitialspace=True, encoding="utf-8-sig")
            except Exception as exc:
                why = str(exc).strip()
                raise InputError(f"could not read {self.path} as csv: {why}") from None
        return self._frame.iloc[:, cols]

    def _numeric_columns(self, frame, cols: list[int], flag: str) -> np.ndarray:
        columns = [self._numeric_column(frame.iloc[:, pos], col, flag)
                   for pos, col in enumerate(cols)]
        return np.column_stack(columns) if columns else np.empty((len(frame), 0))

    def _numeric_column(self, series, col: int, flag: str) -> np.ndarray:
        """One column as float64: numbers as pandas holds them, checked by
        :meth:`_check_exact`, else the cells one by one (:meth:`_exact_floats`)."""
        import pandas as pd
        try:
            refuse_durations(series.dtype, f"{flag}: {self.label(col)} in {self.path}")
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            self._check_exact(series.to_numpy().reshape(-1, 1), [col], flag)
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        return self._exact_floats(series, col, flag)

    def _exact_floats(self, series, col: int, flag: str) -> np.ndarray:
        """A column pandas could not hold as numbers (integers beyond int64/uint64, decimals,
        mixed types) as float64, refusing a cell that is no number, a value beyond float64's
        range, and distinct values that float64 would merge."""
        what = f"{flag}: {self.label(col)} in {self.path}"
        values = [_exact_number(v) for v in series.tolist()]
        for row, value in enumerate(values):
            if value is _NOT_A_NUMBER:
                raise InputError(f"{flag}: non-numeric {self.label(col)} in {self.path} "
                                 f"(first non-number {series.iloc[row]!r} at data row {row}, "
                                 "counting from 0)")
        out = np.array([math.nan if v is None else float(v) for v in values])
        _refuse_overflow(values, out, what)
        _refuse_merged(values, out, what)
        return out

    def _check_rounding(self, data: np.ndarray, out: np.ndarray, cols: list[int],
                        flag: str) -> None:
        """Refuse floats wider than float64 (``longdouble``, such as float128) unless every
        value of the columns read is a float64 value: converting them rounds the others,
        which can merge distinct values or turn huge ones into inf."""
        if data.dtype.kind != "f" or data.dtype.itemsize <= 8:
            return
        lost = (out.astype(data.dtype) != data) & ~np.isnan(data)
        if not lost.any():
            return
        col = int(np.flatnonzero(lost.any(axis=0))[0])
        row = int(np.flatnonzero(lost[:, col])[0])
        raise InputError(
            f"{flag}: {self.path} holds {data.dtype} values (extended precision), which "
            f"MIST reads as float64, and {int(lost.sum())} of the values read are not "
            f"float64 values: {self.label(cols[col])} holds {data[row, col]!s} at data row "
            f"{row} (counting from 0), which float64 rounds to {float(out[row, col])!r}. "
            "Convert the array to float64 if that rounding is acceptable "
            "(np.save(path, a.astype(np.float64)))")

    def _check_exact(self, data: np.ndarray, cols: list[int], flag: str) -> None:
        """:func:`check_exact_float64` as an :class:`InputError` naming the column."""
        try:
            check_exact_float64(data, lambda j: f"{flag}: {self.label(cols[j])} in {self.path}")
        except ValueError as exc:
            raise InputError(str(exc)) from None


_NOT_A_NUMBER = object()


def _exact_number(value) -> Decimal | None | object:
    """A cell of a column pandas holds as objects, as an exact :class:`~decimal.Decimal`;
    None for a missing cell, :data:`_NOT_A_NUMBER` for anything that is no real number."""
    if isinstance(value, str):
        text = value.strip()
        if "_" in text:                   # Decimal reads "1_000"; pandas does not
            return _NOT_A_NUMBER
        try:
            value = Decimal(text)
        except InvalidOperation:
            return _NOT_A_NUMBER
    elif isinstance(value, (numbers.Integral, np.bool_)):
        value = Decimal(int(value))
    elif isinstance(value, numbers.Real) and not isinstance(value, Decimal):
        value = Decimal(float(value))
    elif value is None or not isinstance(value, Decimal):
        return None if _missing(value) else _NOT_A_NUMBER
    return None if value.is_nan() else value


def _missing(value) -> bool:
    import pandas as pd
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _refuse_overflow(values: list, floats: np.ndarray, what: str) -> None:
    """Refuse a finite value that float64 cannot hold (it would become inf)."""
    for row, (value, x) in enumerate(zip(values, floats)):
        if value is not None and value.is_finite() and not math.isfinite(x):
            raise InputError(f"{what} holds {_shortened(str(value))} at data row {row} "
                             "(counting from 0), beyond float64's range (magnitudes up to "
                             "about 1.8e308)")


def _shortened(text: str, width: int = 30) -> str:
    return text if len(text) <= width else f"{text[:width - 6]}... ({len(text)} characters)"


def _refuse_merged(values: list, floats: np.ndarray, what: str) -> None:
    """Refuse a column whose distinct values float64 merges, as
    :func:`~mistmodel.estimators.base.check_exact_float64` refuses integers beyond 2**53."""
    exact = [v for v in values if v is not None and v.is_finite()]
    before = len(set(exact))
    after = np.unique(floats[np.isfinite(floats)]).size
    if after == before:
        return
    merged = f"converting it merges {before - after} of its {before} distinct values"
    if all(v == v.to_integral_value() for v in exact):
        raise InputError(
            f"{what} holds integers beyond 2**53 (from {int(min(exact))} to "
            f"{int(max(exact))}), which float64 cannot tell apart: {merged}. Subtract an "
            "offset (such as its minimum) first, or pass it as float if its precision is not "
            "needed.")
    raise InputError(f"{what} holds numbers with more significant digits than float64 keeps "
                     f"(about 16), which it cannot tell apart: {merged}. Subtract an offset "
                     "(such as its minimum) or round the column first.")


def _check_finite(data: np.ndarray, labels: list[str], flag: str, has_header: bool) -> None:
    bad = ~np.isfinite(data)
    if not bad.any():
        return
    cols = np.flatnonzero(bad.any(axis=0))
    col = int(cols[0])
    row = int(np.flatnonzero(bad[:, col])[0])
    value = data[row, col]
    if np.isnan(value):
        kind = "NaN (or an empty or missing cell)"
    else:
        kind = "inf" if value > 0 else "-inf"
    more = f"; {len(cols)} selected columns have such values" if len(cols) > 1 else ""
    after = " below the header" if has_header else ""
    raise InputError(f"{flag}: {labels[col]} contains {kind} (first at data row {row}, "
                     f"counting from 0{after}){more}")


# ---------------------------------------------------------------------- opening a file
def existing_file(path: str | Path, flag: str = "") -> Path:
    """``path`` if it is a regular file, else an :class:`InputError` saying what it is
    (``flag``: the option that gave it, for the message)."""
    path = Path(path)
    if path.is_file():
        return path
    given = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise InputError(f"{given}: is a directory, not a file")
    if path.exists():
        raise InputError(f"{given}: not a regular file")
    raise InputError(f"{given}: no such file" if flag else f"no such file: {path}")


def new_file(path: str | Path, flag: str, suffix: str, force: bool) -> Path:
    """``path`` as an output file: named ``*suffix``, in a directory that exists, and not
    an existing file unless ``force``."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise InputError(f"{flag} {path}: the file name must end in {suffix}")
    if not path.parent.is_dir():
        raise InputError(f"{flag} {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a directory")
    if path.exists() and not force:
        raise InputError(f"{flag} {path}: the file exists; pass --force to replace it")
    return path


def open_table(path: str | Path, header: bool | None = None) -> Table:
    """Read a file's column names and shape (a .npy file is memory-mapped).

    ``header``: csv only - True, False or None (decide from the first rows).
    """
    path = existing_file(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"unsupported file type {path.suffix!r} ({path}): "
                         "use .npy, .csv or .parquet")
    if header is not None and kind != "csv":
        flag = "--header" if header else "--no-header"
        raise InputError(f"{flag} applies to csv files only; {path} is a {kind} file")
    if kind == "npy":
        return _open_npy(path)
    if kind == "csv":
        return _open_csv(path, header)
    return _open_parquet(path)


def _open_npy(path: Path) -> Table:
    _refuse_other_formats(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        if "Python objects" in str(exc) or "allow_pickle" in str(exc):
            raise InputError(f"could not read {path} as a .npy array: it holds Python "
                             "objects (dtype object), which are not loaded (unpickling can run "
                             "code); save a numeric array") from None
        raise InputError(f"could not read {path} as a .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"could not read {path} as a .npy array: numpy read it as a "
                         f"{type(arr).__name__}")
    if arr.ndim == 1:
        raise InputError(f"{path} holds a 1-D array of shape {arr.shape}; "
                         "MIST needs a 2-D array (rows = observations, columns = variables)")
    if arr.ndim != 2:
        raise InputError(f"{path} holds an array of shape {arr.shape}; expected 2-D")
    try:
        refuse_durations(arr.dtype, str(path))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return Table(path, "npy", arr.shape[1], None, _array=arr)


def _refuse_other_formats(path: Path) -> None:
    """Refuse a file named ``*.npy`` that does not start as the .npy format does."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(NPY_MAGIC))
    except OSError as exc:
        raise InputError(f"could not read {path}: {exc}") from None
    if start == NPY_MAGIC:
        return
    if start.startswith(ZIP_MAGIC):
        raise InputError(f"{path} is a .npz archive (a zip file of arrays), not a .npy file: "
                         "save the one array to use with np.save")
    raise InputError(f"{path} is not a .npy file: it does not start with the .npy format's "
                     "magic bytes (\\x93NUMPY)")


def _open_parquet(path: Path) -> Table:
    import pandas as pd
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise InputError(f"reading parquet needs pyarrow or fastparquet: {exc}") from None
    except Exception as exc:
        raise InputError(f"could not read {path} as parquet: {exc}") from None
    return Table(path, "parquet", frame.shape[1], [str(c) for c in frame.columns], _frame=frame)


def _open_csv(path: Path, header: bool | None) -> Table:
    lines, rows = _first_rows(path)
    if not rows:
        raise InputError(f"{path} is empty")
    first, body = rows[0], rows[1:]
    if not any(token.strip() for token in first):
        raise InputError(f"{path}: its first line (line {lines[0]}) holds only empty fields "
                         f"({','.join(first)!r}): remove it (a header row names the columns, "
                         "a data row holds values)")
    if len(first) == 1 and any(sep in first[0] for sep in (";", "\t")):
        raise InputError(f"{path} reads as a single column; mist reads comma-separated "
                         "files only (its first line holds ';' or a tab)")
    for line, row in zip(lines[1:], body):
        if len(row) != len(first):
            raise InputError(f"{path}: line {line} has {len(row)} fields, the first line "
                             f"{len(first)}")
    if header is None:
        header = _first_row_is_header(path, first, body)
    if header and not body:
        raise InputError(f"{path} has a header row but no data rows")
    names = [token.strip() for token in first] if header else None
    return Table(path, "csv", len(first), names)


def _first_rows(path: Path, limit: int | None = PEEK_ROWS
                ) -> tuple[list[int], list[list[str]]]:
    """The first rows of a csv file (``limit`` + 1 of them; None: all), as strings, and
    their line numbers.  Like pandas, this skips only lines of white space: a line of
    empty fields such as ``,`` is a row."""
    lines: list[int] = []
    rows: list[list[str]] = []
    last: list[str] = [""]
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(_remembered(f, last), skipinitialspace=True)
            for row in reader:
                if last[0].strip():
                    lines.append(reader.line_num)
                    rows.append(row)
                    if limit is not None and len(rows) > limit:
                        break
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise InputError(f"could not read {path} as csv: {exc}") from None
    return lines, rows


def _remembered(lines, last: list[str]):
    """``lines``, each kept in ``last[0]`` as it is read (the line that ended a row)."""
    for line in lines:
        last[0] = line
        yield line


def _check_row_lengths(path: Path, fields: int) -> None:
    """Every non-blank row of a csv file has ``fields`` fields (pandas would fill a short
    row with missing values, and a short row in a column not read would pass)."""
    lines, rows = _first_rows(path, limit=None)
    for line, row in zip(lines, rows):
        if len(row) != fields:
            raise InputError(f"{path}: line {line} has {len(row)} fields, the first line "
                             f"{fields}")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _first_row_is_header(path: Path, first: list[str], body: list[list[str]]) -> bool:
    tokens = [t.strip() for t in first]
    shown = ", ".join(tokens[:6]) + (", ..." if len(tokens) > 6 else "")
    ask = "Pass --header if it names the columns, --no-header if it is data"
    # a missing-value marker is no word: "1.5,NA,2.25" is a row of data
    words = {i for i, t in enumerate(tokens) if t and not _is_number(t)
             and t not in MISSING_MARKERS}
    if words:
        text_columns = {i for row in body for i, t in enumerate(row)
                        if t.strip() and not _is_number(t.strip())}
        if len(words) < sum(1 for t in tokens if t) and words <= text_columns:
            raise InputError(
                f"cannot tell whether the first row of {path} ({shown}) is a header: it holds "
                "text only in columns that hold text below it, and numbers elsewhere. " + ask)
        return True
    filled = [t for t in tokens if t and t not in MISSING_MARKERS]
    if not filled or not all(_INTEGER.fullmatch(t) for t in filled):
        return False
    body_tokens = [t.strip() for row in body for t in row if t.strip()]
    if any(_is_number(t) and not _INTEGER.fullmatch(t) for t in body_tokens):
        raise InputError(
            f"cannot tell whether the first row of {path} ({shown}) is a header: it holds "
            "whole numbers only, while the rows below hold decimals. " + ask)
    values = [int(t) for t in tokens] if len(filled) == len(tokens) else []
    if len(values) >= 2 and values in (list(range(len(values))), list(range(1, len(values) + 1))):
        warn(f"the first row of {path} ({shown}) reads like column numbers; it is read as "
             "data. Pass --header if it names the columns (--no-header silences this)",
             HeaderWarning)
    return False


# ---------------------------------------------------------------------- selections
def select(table: Table, x_spec: str | None, y_spec: str | None, by: str | None = None
           ) -> tuple[list[int], list[int]]:
    """Resolve ``--x``/``--y`` to column indices; ``by``: "name", "index" or None (either,
    refusing an item that is a name of one column and the index of another)."""
    if by == "name" and table.names is None:
        raise InputError(f"--by-name needs column names, but {table.path} has no header row")
    if x_spec is None or y_spec is None:
        if table.ncols == 2 and x_spec is None and y_spec is None:
            return [0], [1]
        raise InputError(f"{table.path} has {table.ncols} columns: choose them with --x and --y")
    xc = _resolve(x_spec, table, "--x", by)
    yc = _resolve(y_spec, table, "--y", by)
    shared = [c for c in xc if c in yc]
    if shared:
        raise InputError(f"--x and --y share columns {_listed(table, shared)}; "
                         "X and Y must be disjoint")
    return xc, yc


def select_conditioning(table: Table, z_spec: str, xc: list[int], yc: list[int],
                        by: str | None = None) -> list[int]:
    """Resolve ``--z`` to column indices, disjoint from the X and Y columns."""
    zc = _resolve(z_spec, table, "--z", by)
    for flag, cols in (("--x", xc), ("--y", yc)):
        shared = [c for c in zc if c in cols]
        if shared:
            raise InputError(f"--z and {flag} share columns {_listed(table, shared)}; "
                             "Z must be disjoint from X and Y")
    return zc


def select_columns(table: Table, spec: str | None, by: str | None = None) -> list[int]:
    """Resolve ``--columns`` (every column when None); at least two are needed."""
    if by == "name" and table.names is None:
        raise InputError(f"--by-name needs column names, but {table.path} has no header row")
    cols = list(range(table.ncols)) if spec is None else _resolve(spec, table, "--columns", by)
    if len(cols) < 2:
        raise InputError(f"an MI matrix needs at least two columns; {table.path} "
                         f"{'has' if spec is None else 'selects'} {len(cols)}")
    return cols


def _listed(table: Table, cols: Sequence[int]) -> str:
    return ", ".join(table.label(c).removeprefix("column ") for c in cols)


def _resolve(spec: str, table: Table, flag: str, by: str | None) -> list[int]:
    cols: list[int] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            raise InputError(f"{flag}: empty item in {spec!r}")
        for col in _resolve_item(item, table, flag, by):
            if col in cols:
                raise InputError(f"{flag} selects {table.label(col)} twice (in {spec!r}); "
                                 "each column may be chosen once")
            cols.append(col)
    return cols


def _resolve_item(item: str, table: Table, flag: str, by: str | None) -> list[int]:
    named = _by_name(item, table, flag) if by != "index" else None
    if by == "name":
        if named is None:
            raise InputError(f"{flag}: no column named {item!r}; columns: {_known(table)}")
        return named
    positional = _by_position(item, table.ncols, flag, strict=named is None)
    if by == "index" and positional is None:
        raise InputError(f"{flag}: {item!r} is not a column index or start:stop slice "
                         "(--by-index)")
    if named is not None and positional is not None and named != positional:
        raise InputError(
            f"{flag}: {item!r} is ambiguous: the header names column {named[0]} {item!r}, "
            f"and as an index it selects {_listed(table, positional)}; say which with "
            "--by-name or --by-index")
    if named is not None:
        return named
    if positional is None:
        raise InputError(f"{flag}: no column named {item!r}; columns: {_known(table)}")
    return positional


def _by_name(item: str, table: Table, flag: str) -> list[int] | None:
    if table.names is None:
        return None
    hits = [i for i, name in enumerate(table.names) if name == item]
    if len(hits) > 1:
        raise InputError(f"{flag}: the header of {table.path} names {len(hits)} columns "
                         f"{item!r} (indices {hits}); select them by index")
    return hits or None


def _by_position(item: str, ncols: int, flag: str, strict: bool) -> list[int] | None:
    """Columns an index or ``start:stop`` slice selects; None if ``item`` is neither (or,
    unless ``strict``, if it is out of range: then it may still be a name)."""
    if ":" in item:
        a, _, b = item.partition(":")
        try:
            start = int(a) if a.strip() else 0
            stop = int(b) if b.strip() else ncols
        except ValueError:
            if strict:
                raise InputError(f"{flag}: bad slice {item!r} (use start:stop)") from None
            return None
        picked = list(range(ncols))[slice(start, stop)]
        if not picked:
            if strict:
                raise InputError(f"{flag}: slice {item!r} selects no columns of {ncols}")
            return None
        return picked
    if not _INTEGER.fullmatch(item):
        return None
    k = int(item)
    if not -ncols <= k < ncols:
        if strict:
            raise InputError(f"{flag}: column index {k} out of range for {ncols} columns")
        return None
    return [k % ncols]


def _known(table: Table) -> str:
    if table.names is None:
        return f"(no header: use indices 0..{table.ncols - 1})"
    shown = ", ".join(table.names[:20])
    return shown + (f", ... ({table.ncols} in all)" if table.ncols > 20 else "")
