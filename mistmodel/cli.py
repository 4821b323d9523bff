"""The ``mist`` command line.

    mist estimate data.csv --x a,b --y c          # columns by name (csv / parquet)
    mist estimate data.npy --x 0:3 --y 3,4        # columns by index or slice
    mist estimate data.csv --x 0 --y 1 --level 0.8 --json

Prints MIST's estimate of I(X;Y) in nats and MIST-QR's central interval at ``--level``.
``--checkpoint`` / ``--qr-checkpoint`` replace the checkpoints shipped in the package.

Column selections (``--x``, ``--y``): comma-separated items, each a column index
(``3``; negative counts from the end), a slice ``start:stop`` (stop excluded, like
Python), or - for csv/parquet files with a header row - a column name.  With a file of
exactly two columns both flags may be left out (X = column 0, Y = column 1).

A csv file has a header row when its first row is not all numbers.  Exit status: 0 on
success, 2 on bad input (the message says what is wrong).
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["main", "load_table", "select_columns"]


class InputError(ValueError):
    """A problem with the user's file or flags (reported without a traceback)."""


def load_table(path: str | Path) -> tuple[np.ndarray | None, "object | None"]:
    """Read a .npy, .csv or .parquet file: ``(array, None)`` or ``(None, DataFrame)``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"could not read {path} as a .npy array: {exc}") from None
        if arr.ndim == 1:
            raise InputError(f"{path} holds a 1-D array of shape {arr.shape}; "
                             "MIST needs a 2-D array (rows = observations, columns = variables)")
        if arr.ndim != 2:
            raise InputError(f"{path} holds an array of shape {arr.shape}; expected 2-D")
        return arr, None
    import pandas as pd
    if suffix == ".csv":
        try:
            raw = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True)
        except Exception as exc:
            raise InputError(f"could not read {path} as csv: {exc}") from None
        if raw.empty:
            raise InputError(f"{path} is empty")
        first = pd.to_numeric(raw.iloc[0], errors="coerce")
        has_header = bool(first.isna().any())
        frame = pd.read_csv(path, header=0 if has_header else None, skipinitialspace=True)
        return None, frame
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except ImportError as exc:
            raise InputError(f"reading parquet needs pyarrow or fastparquet: {exc}") from None
        except Exception as exc:
            raise InputError(f"could not read {path} as parquet: {exc}") from None
        return None, frame
    raise InputError(f"unsupported file type {suffix!r}: use .npy, .csv or .parquet")


def _parse_selection(spec: str, names: Sequence[str], ncols: int, flag: str) -> list[int]:
    cols: list[int] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            raise InputError(f"{flag}: empty item in {spec!r}")
        if item in names:
            cols.append(list(names).index(item))
            continue
        if ":" in item:
            a, _, b = item.partition(":")
            try:
                start = int(a) if a.strip() else 0
                stop = int(b) if b.strip() else ncols
            except ValueError:
                raise InputError(f"{flag}: bad slice {item!r} (use start:stop)") from None
            picked = list(range(ncols))[slice(start, stop)]
            if not picked:
                raise InputError(f"{flag}: slice {item!r} selects no columns of {ncols}")
            cols.extend(picked)
            continue
        try:
            k = int(item)
        except ValueError:
            known = ", ".join(map(str, names)) if names else "(no header: use indices)"
            raise InputError(f"{flag}: no column named {item!r}; columns: {known}") from None
        if not -ncols <= k < ncols:
            raise InputError(f"{flag}: column index {k} out of range for {ncols} columns")
        cols.append(k % ncols)
    return cols


def select_columns(arr: np.ndarray | None, frame, x_spec: str | None, y_spec: str | None
                   ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Pick the X and Y columns; returns arrays and the columns' labels."""
    if frame is not None:
        names = [str(c) for c in frame.columns]
        ncols = frame.shape[1]
    else:
        names, ncols = [], arr.shape[1]
    if x_spec is None or y_spec is None:
        if ncols == 2 and x_spec is None and y_spec is None:
            x_spec, y_spec = "0", "1"
        else:
            raise InputError(f"the file has {ncols} columns: choose them with --x and --y")
    xc = _parse_selection(x_spec, names, ncols, "--x")
    yc = _parse_selection(y_spec, names, ncols, "--y")
    overlap = sorted(set(xc) & set(yc))
    if overlap:
        raise InputError(f"--x and --y share columns {overlap}; X and Y must be disjoint")
    labels = names or [str(i) for i in range(ncols)]

    def pick(cols: list[int], flag: str) -> np.ndarray:
        if frame is not None:
            import pandas as pd
            sub = frame.iloc[:, cols]
            bad = [str(c) for c in sub.columns
                   if not (pd.api.types.is_numeric_dtype(sub[c])
                           or pd.api.types.is_bool_dtype(sub[c]))]
            if bad:
                raise InputError(f"{flag}: non-numeric column(s) {bad}")
            return sub.to_numpy(dtype=np.float64)
        try:
            return np.asarray(arr[:, cols], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{flag}: columns are not numeric: {exc}") from None

    return pick(xc, "--x"), pick(yc, "--y"), [labels[i] for i in xc], [labels[i] for i in yc]


def _estimate(args: argparse.Namespace) -> int:
    from .mist import MIST, default_checkpoint
    arr, frame = load_table(args.file)
    x, y, xl, yl = select_columns(arr, frame, args.x, args.y)
    point = MIST.load(args.checkpoint) if args.checkpoint else MIST.load()
    value = point.estimate(x, y)
    result = {"file": str(args.file), "n": int(x.shape[0]), "x_columns": xl, "y_columns": yl,
              "estimate": value, "units": "nats", "level": args.level,
              "lower": None, "upper": None}
    qr_path = args.qr_checkpoint
    if point.is_quantile and qr_path is None:
        qr = point
    else:
        qr_path = qr_path or default_checkpoint("mist_qr")
        qr = MIST.load(qr_path) if Path(qr_path).is_file() else None
    if qr is not None:
        if not qr.is_quantile:
            raise InputError(f"--qr-checkpoint {qr_path} is not a quantile (mist_qr) checkpoint")
        result["lower"], result["upper"] = qr.interval(x, y, level=args.level)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"I(X;Y) = {value:.4f} nats   (n = {result['n']}, dim_x = {x.shape[1]}, "
              f"dim_y = {y.shape[1]})")
        if result["lower"] is not None:
            print(f"{100 * args.level:g}% interval: [{result['lower']:.4f}, "
                  f"{result['upper']:.4f}] nats (MIST-QR)")
        else:
            print("no interval: no MIST-QR checkpoint available")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mist", description="MIST: mutual information estimates "
                                "from a network trained on samples with known MI.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("estimate", help="estimate I(X;Y) from a .npy, .csv or .parquet file")
    e.add_argument("file", help="data file: rows are observations")
    e.add_argument("--x", default=None, help="X columns: indices, start:stop slices or names")
    e.add_argument("--y", default=None, help="Y columns: indices, start:stop slices or names")
    e.add_argument("--checkpoint", default=None, help="MIST checkpoint (default: shipped)")
    e.add_argument("--qr-checkpoint", default=None,
                   help="MIST-QR checkpoint for the interval (default: shipped)")
    e.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "estimate":
        if not 0.0 < args.level < 1.0:
            print(f"mist: error: --level must lie strictly between 0 and 1; got {args.level}",
                  file=sys.stderr)
            return 2
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                code = _estimate(args)
            except (InputError, ValueError, FileNotFoundError, RuntimeError) as exc:
                print(f"mist: error: {exc}", file=sys.stderr)
                code = 2
        for w in caught:
            print(f"mist: warning ({w.category.__name__}): {w.message}", file=sys.stderr)
        return code
    return 2


if __name__ == "__main__":
    sys.exit(main())
