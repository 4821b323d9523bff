"""The ``mist`` command line.

    mist estimate data.csv --x a,b --y c          # columns by name (csv / parquet)
    mist estimate data.npy --x 0:3 --y 3,4        # columns by index or slice
    mist estimate data.csv --x 0 --y 1 --level 0.8 --json

Prints MIST's estimate of I(X;Y) in nats and MIST-QR's central interval at ``--level``
(labelled with the level actually computed; a level beyond the quantiles MIST-QR was
trained on is refused).  ``--checkpoint`` / ``--qr-checkpoint`` replace the checkpoints
shipped in the package; a path given must exist.

Column selections (``--x``, ``--y``): comma-separated items, each a column index
(``3``; negative counts from the end), a slice ``start:stop`` (stop excluded, like
Python), or - for csv/parquet files with a header row - a column name.  An item that
names one column and is the index of another is refused unless ``--by-name`` or
``--by-index`` says how to read the items; a column chosen twice, or in both X and Y, is
refused.  With a file of exactly two columns both flags may be left out (X = column 0,
Y = column 1).

A csv file has a header row when its first row holds a token that is not a number;
``--header`` / ``--no-header`` say it explicitly (see :mod:`mistmodel.cli_columns` for the
rows that are refused as ambiguous).  Constant columns carry no information and are left
out; the output names them.  When every column of one side is constant, I(X;Y) = 0
exactly and the interval is [0, 0].

Files, flags and columns are checked before torch and the estimators are imported, so a
mistake is reported at once.  Exit status: 0 on success, 2 on bad input (the message says
what is wrong).  Each warning is printed once, on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from .cli_columns import InputError, existing_file, open_table, select
from .estimators.base import constant_columns

__all__ = ["main", "build_parser"]


def _check_flags(args: argparse.Namespace) -> None:
    if not 0.0 < args.level < 1.0:
        raise InputError(f"--level must lie strictly between 0 and 1; got {args.level}")
    for flag, path in (("--checkpoint", args.checkpoint), ("--qr-checkpoint", args.qr_checkpoint)):
        if path is not None:
            existing_file(path, flag)


def _estimate(args: argparse.Namespace) -> int:
    _check_flags(args)
    table = open_table(args.file, header=args.header)
    xc, yc = select(table, args.x, args.y, by=args.by)
    x, y = table.read(xc, "--x"), table.read(yc, "--y")
    dropped = {"x": [table.key(xc[i]) for i in constant_columns(x)],
               "y": [table.key(yc[i]) for i in constant_columns(y)]}
    result: dict[str, Any] = {
        "file": str(args.file), "n": int(x.shape[0]),
        "x_columns": [table.key(c) for c in xc], "y_columns": [table.key(c) for c in yc],
        "estimate": None, "units": "nats", "level": args.level, "lower": None, "upper": None,
        "interval_method": None, "dropped_constant_columns": dropped, "notes": []}

    from .mist import MIST, default_checkpoint   # torch: only once the input is known good
    point = MIST.load(args.checkpoint) if args.checkpoint else MIST.load()
    result["estimate"] = point.estimate(x, y)
    constant_side = [side for side, cols in (("X", xc), ("Y", yc))
                     if len(dropped[side.lower()]) == len(cols)]
    if constant_side:
        result["lower"] = result["upper"] = 0.0
        result["notes"].append(f"every {constant_side[0]} column is constant, so I(X;Y) = 0 "
                               "exactly and the interval is [0, 0]")
    else:
        qr = _quantile_model(MIST, point, args.qr_checkpoint, default_checkpoint("mist_qr"))
        if qr is None:
            result["notes"].append("no interval: no MIST-QR checkpoint available")
        else:
            lower, upper = qr.interval(x, y, level=args.level)
            info = qr.last_info
            result.update(lower=lower, upper=upper, level=info.get("level", args.level),
                          interval_method=info.get("interval_method"))
            if not lower <= result["estimate"] <= upper:
                result["notes"].append(_outside_note(same_network=qr is point))
    _print(result, x.shape[1], y.shape[1], args.json)
    return 0


def _quantile_model(MIST, point, qr_path: str | None, default: Path):
    """The MIST-QR model giving the interval, or None when there is none."""
    if qr_path is None and point.is_quantile:
        return point
    if qr_path is None and not default.is_file():
        return None
    qr = MIST.load(qr_path or default)
    if not qr.is_quantile:
        raise InputError(f"--qr-checkpoint {qr_path} is not a quantile (mist_qr) checkpoint")
    return qr


def _outside_note(same_network: bool) -> str:
    """Why the interval does not contain the estimate."""
    if same_network:
        return ("the estimate lies outside the interval: MIST-QR's conformal factor for this "
                "level narrows its quantile interval past its median")
    return ("the estimate lies outside the interval: the estimate comes from MIST, the "
            "interval from MIST-QR, two separately trained networks that disagree here")


def _print(result: dict[str, Any], dim_x: int, dim_y: int, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    print(f"I(X;Y) = {result['estimate']:.4f} nats   (n = {result['n']}, dim_x = {dim_x}, "
          f"dim_y = {dim_y})")
    if result["lower"] is not None:
        print(f"{100 * result['level']:g}% interval: [{result['lower']:.4f}, "
              f"{result['upper']:.4f}] nats (MIST-QR)")
        if result["interval_method"]:
            print(f"interval method: {result['interval_method']}")
    for side in ("x", "y"):
        if result["dropped_constant_columns"][side]:
            names = ", ".join(map(repr, result["dropped_constant_columns"][side]))
            print(f"constant {side.upper()} columns left out (they carry no information): "
                  f"{names}")
    for note in result["notes"]:
        print(f"note: {note}")


class _Once(argparse.Action):
    """Store an option's value, refusing the option given twice (argparse keeps the last)."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("given_once", set())
        if self.dest in given:
            parser.error(f"{option_string} given twice")
        given.add(self.dest)
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mist", description="MIST: mutual information estimates "
                                "from a network trained on samples with known MI.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("estimate", help="estimate I(X;Y) from a .npy, .csv or .parquet file")
    e.add_argument("file", help="data file: rows are observations")
    e.add_argument("--x", action=_Once, help="X columns: indices, start:stop slices or names")
    e.add_argument("--y", action=_Once, help="Y columns: indices, start:stop slices or names")
    by = e.add_mutually_exclusive_group()
    by.add_argument("--by-name", dest="by", action="store_const", const="name",
                    help="read every --x/--y item as a column name")
    by.add_argument("--by-index", dest="by", action="store_const", const="index",
                    help="read every --x/--y item as a column index or slice")
    head = e.add_mutually_exclusive_group()
    head.add_argument("--header", dest="header", action="store_const", const=True,
                      help="csv: the first row names the columns")
    head.add_argument("--no-header", dest="header", action="store_const", const=False,
                      help="csv: the first row is data")
    e.add_argument("--checkpoint", action=_Once, help="MIST checkpoint (default: shipped)")
    e.add_argument("--qr-checkpoint", action=_Once,
                   help="MIST-QR checkpoint for the interval (default: shipped)")
    e.add_argument("--level", action=_Once, type=float, default=0.9,
                   help="interval level (default 0.9)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "estimate":
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = _estimate(args)
        except (InputError, ValueError, FileNotFoundError, RuntimeError) as exc:
            print(f"mist: error: {exc}", file=sys.stderr)
            code = 2
    seen: set[tuple[type, str]] = set()
    for w in caught:
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            print(f"mist: warning ({w.category.__name__}): {w.message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
