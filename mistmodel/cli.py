"""The ``mist`` command line.

    mist estimate data.csv --x a,b --y c          # columns by name (csv / parquet)
    mist estimate data.npy --x 0:3 --y 3,4        # columns by index or slice
    mist estimate data.csv --x 0 --y 1 --level 0.8 --json
    mist estimate data.csv --x a --y b --z c,d --estimator ksg   # I(X;Y|Z)
    mist matrix data.csv --out mi.nc --png mi.png          # MI of every pair of columns
    mist test data.csv --x a --y b                         # permutation test of independence
    mist test data.csv --x a --y b --z c --estimator ksg   # ... of independence given Z

Prints MIST's estimate of I(X;Y) in nats and MIST-QR's central interval at ``--level``
(labelled with the level actually computed; a level beyond the quantiles MIST-QR was
trained on is refused).  ``--checkpoint`` / ``--qr-checkpoint`` replace the checkpoints
shipped in the package; a path given must exist.  ``--estimator ksg`` or ``cca`` prints
that estimator's estimate instead (no interval).  In every command ``--estimator ksg`` is
``KSG(discrete="auto")``: columns with few distinct values
(:func:`mistmodel.estimators.ksg.discrete_columns`) are taken as discrete, by the mixed-KSG
estimator, and the output names them (``discrete_columns``; for ``matrix`` an attribute
of the file).  ``--discrete`` chooses KSG's setting: ``categories`` (the default,
``discrete="auto"``), ``numbers`` (``discrete=True``: Gao et al.'s rule on every column,
the values as numbers) or ``off`` (``discrete=False``: every column continuous, ties
broken by noise).  Messages that advise one of these settings name the flag too.

``--z`` conditions on more columns: the estimate is I(X;Y|Z), from MIST's conditional
network (the shipped ``mist_cmi``, or ``--checkpoint`` naming a conditional one), KSG
(Frenzel-Pompe) or CCA (Gaussian partial form); none of them gives an interval.

``mist matrix FILE`` estimates I(X_i;X_j) for every pair of the columns chosen with
``--columns`` (default: all) and writes the table (:func:`mistmodel.matrix.mi_matrix`) as a
netCDF file ``--out`` and, with ``--png``, its heatmap; ``--permutations P`` adds
permutation p-values.  An existing output file is replaced only with ``--force``; each
file is written to a temporary name beside it and then renamed, so a reader never sees a
half-written file.  A constant column is refused (name given): it has no MI with anything.

``mist test FILE`` tests whether X and Y are independent (or, with ``--z``, independent
given Z) with the estimator's MI as the statistic: a permutation test with an exact level
(:func:`mistmodel.independence.independence_test`), or given Z the local permutation test
with an approximate one (:func:`mistmodel.independence.conditional_independence_test`,
``--neighbours``). It prints the p-value, the statistic and the number of permutations.

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
import math
import os
import re
import secrets
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .cli_columns import (InputError, existing_file, new_file, open_table, select,
                          select_columns, select_conditioning)
from .caller_warnings import CrossCheckWarning, TiedDataWarning, recorded, silenced
from .estimators.base import constant_columns
from .tabular import ties_by_name

__all__ = ["main", "build_parser"]


ESTIMATORS = ("mist", "ksg", "cca")
# --discrete: KSG's setting, and how its messages spell each one
KSG_DISCRETE = {"categories": "auto", "numbers": True, "off": False}
KSG_FORMS = (("KSG() (discrete=False)", "off"), ("KSG(discrete='auto')", "categories"),
             ('KSG(discrete="auto")', "categories"), ("KSG(discrete=True)", "numbers"))


def _check_flags(args: argparse.Namespace) -> None:
    if args.z is not None and args.qr_checkpoint is not None:
        raise InputError("--qr-checkpoint has no use with --z: I(X;Y|Z) comes from the "
                         "conditional network (--checkpoint), without an interval")
    if args.z is not None and args.level is not None:
        raise InputError("--level has no use with --z: no estimator gives an interval "
                         "for I(X;Y|Z)")
    if args.level is not None and args.estimator != "mist":
        raise InputError(f"--level sets MIST-QR's interval; --estimator {args.estimator} "
                         "gives none")
    if args.neighbour_correction and args.z is not None:
        raise InputError("--neighbour-correction corrects MIST's I(X;Y) estimate; it has no "
                         "use with --z")
    if args.level is None:
        args.level = 0.9
    if not 0.0 < args.level < 1.0:
        raise InputError(f"--level must lie strictly between 0 and 1; got {args.level}")
    _check_checkpoints(args, ("--checkpoint", args.checkpoint),
                       ("--qr-checkpoint", args.qr_checkpoint))
    if args.estimator == "mist" and args.z is None:
        _check_level_on_the_grid(args)


def _check_level_on_the_grid(args: argparse.Namespace) -> None:
    """Refuse, before the estimate runs, a ``--level`` beyond the quantile grid of the
    MIST-QR that gives the interval (its card read from the file's header, without
    torch); a card that cannot be read here is left to the interval's own check."""
    from .shipped import default_checkpoint

    path = args.qr_checkpoint
    if path is None and args.checkpoint is not None and \
            _card_of(args.checkpoint).get("variant") == "mist_qr":
        path = args.checkpoint
    config = _card_of(path or default_checkpoint("mist_qr")).get("model_config") or {}
    tau_min = config.get("tau_min")
    if isinstance(tau_min, (int, float)) and args.level > 1 - 2 * tau_min + 1e-9:
        raise InputError(f"--level {args.level:g} needs MIST-QR's quantiles at "
                         f"{(1 - args.level) / 2:g} and {(1 + args.level) / 2:g}, but it was "
                         f"trained on quantiles from {tau_min:g} to {1 - tau_min:g}: its "
                         f"intervals go up to level {1 - 2 * tau_min:g}")


def _card_of(path: str | Path) -> dict[str, Any]:
    """A checkpoint's card from its safetensors header (no torch), or {} if unreadable."""
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="numpy") as f:
            card = json.loads((f.metadata() or {}).get("mist_card", "{}"))
    except Exception:                    # the load that follows reports what is wrong
        return {}
    return card if isinstance(card, dict) else {}


def _check_checkpoints(args: argparse.Namespace, *given: tuple[str, str | None]) -> None:
    if args.discrete is not None and args.estimator != "ksg":
        raise InputError(f"--discrete chooses KSG's setting; it has no use with --estimator "
                         f"{args.estimator} (add --estimator ksg)")
    if args.discrete is None:
        args.discrete = "categories"
    if args.neighbour_correction and args.estimator != "mist":
        raise InputError("--neighbour-correction corrects MIST's I(X;Y) estimate; it has no "
                         "use with --estimator ksg/cca")
    if getattr(args, "no_cross_check", False) and args.estimator != "mist":
        raise InputError("--no-cross-check turns off MIST's cross-check against KSG; it has "
                         f"no use with --estimator {args.estimator}")
    for flag, path in given:
        if path is None:
            continue
        if args.estimator != "mist":
            raise InputError(f"{flag} applies to --estimator mist only; got --estimator "
                             f"{args.estimator}")
        existing_file(path, flag)


def _refuse_conditional_checkpoint(mist, checkpoint: str | None) -> None:
    if mist.is_conditional:
        raise InputError(f"--checkpoint {checkpoint} is a conditional (mist_cmi) checkpoint: "
                         "it estimates I(X;Y|Z); pass --z, or give an I(X;Y) checkpoint")


def _plain_estimator(name: str, checkpoint: str | None = None, discrete: str = "categories",
                     cross_check: bool = True):
    """KSG (``discrete``: a key of :data:`KSG_DISCRETE`; by default ``discrete="auto"``, the
    mixed-KSG estimator on columns with few distinct values) or CCA; for ``mist``, the
    conditional network (``checkpoint``, or the shipped ``mist_cmi``), with its cross-check
    against KSG unless ``cross_check`` is False."""
    if name == "mist":
        from .mist import MIST
        cmi = (MIST.load(checkpoint, cross_check=cross_check) if checkpoint
               else MIST.load(variant="mist_cmi", cross_check=cross_check))
        if not cmi.is_conditional:
            raise InputError(f"--checkpoint {checkpoint} is not a conditional (mist_cmi) "
                             "checkpoint, so it cannot estimate I(X;Y|Z)")
        return cmi
    from .estimators import CCA, KSG
    return KSG(discrete=KSG_DISCRETE[discrete]) if name == "ksg" else CCA()


def _pair_estimator(args: argparse.Namespace):
    """The estimator of I(X;Y) that ``--estimator`` / ``--checkpoint`` name (MIST refuses a
    conditional checkpoint)."""
    if args.estimator != "mist":
        return _plain_estimator(args.estimator, discrete=args.discrete)
    from .mist import MIST
    estimator = MIST.load(args.checkpoint, neighbour_correction=args.neighbour_correction,
                          cross_check=not args.no_cross_check)
    _refuse_conditional_checkpoint(estimator, args.checkpoint)
    return estimator


def _estimate(args: argparse.Namespace) -> int:
    _check_flags(args)
    table = open_table(args.file, header=args.header)
    xc, yc = select(table, args.x, args.y, by=args.by)
    zc = select_conditioning(table, args.z, xc, yc, by=args.by) if args.z is not None else None
    x, y = table.read(xc, "--x"), table.read(yc, "--y")
    if zc is not None:
        return _estimate_plain(args, table, xc, yc, zc, x, y, table.read(zc, "--z"))
    if args.estimator != "mist":
        return _estimate_plain(args, table, xc, yc, None, x, y, None)
    dropped = {"x": [table.key(xc[i]) for i in constant_columns(x)],
               "y": [table.key(yc[i]) for i in constant_columns(y)]}
    result: dict[str, Any] = {
        "file": str(args.file), "n": int(x.shape[0]),
        "x_columns": [table.key(c) for c in xc], "y_columns": [table.key(c) for c in yc],
        "estimate": None, "units": "nats", "level": args.level, "lower": None, "upper": None,
        "interval_method": None, "dropped_constant_columns": dropped, "notes": []}

    from .mist import MIST, default_checkpoint   # torch: only once the input is known good
    point = _pair_estimator(args)
    sides = [("x", xc, x), ("y", yc, y)]
    with ties_by_name(point, _named_columns(table, sides)), _errors_by_name(table, sides):
        result["estimate"] = point.estimate(x, y)
    if args.neighbour_correction:
        result["neighbour_correction"] = point.last_info.get(
            "neighbour_correction", {"weight": 0.0, "reason": "a side is constant"})
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
            with silenced(TiedDataWarning, CrossCheckWarning):   # the estimate has warned
                lower, upper = qr.interval(x, y, level=args.level)
            info = qr.last_info
            result.update(lower=lower, upper=upper, level=info.get("level", args.level),
                          interval_method=info.get("interval_method"))
            if not lower <= result["estimate"] <= upper:
                corrected = (result.get("neighbour_correction") or {}).get("reason") == "applied"
                result["notes"].append(_outside_note(same_network=qr is point,
                                                     corrected=corrected))
    _print(result, x.shape[1], y.shape[1], args.json)
    return 0


def _estimate_plain(args, table, xc, yc, zc, x, y, z) -> int:
    """KSG's or CCA's I(X;Y), or I(X;Y|Z) when ``zc`` is given (also MIST's conditional
    network); no interval."""
    sides = [("x", xc, x), ("y", yc, y)] + ([("z", zc, z)] if zc is not None else [])
    dropped = {side: [table.key(cols[i]) for i in constant_columns(a)] for side, cols, a in sides}
    estimator = _plain_estimator(args.estimator, args.checkpoint, args.discrete,
                                 cross_check=not args.no_cross_check)
    if zc is not None and not getattr(estimator, "estimates_conditional", False):
        raise InputError(f"{estimator.name} in this installation has no conditional "
                         "estimator (estimate_conditional); I(X;Y|Z) is not available")
    with ties_by_name(estimator, _named_columns(table, sides)), _errors_by_name(table, sides):
        value = (estimator.estimate(x, y) if zc is None
                 else estimator.estimate_conditional(x, y, z))
    result: dict[str, Any] = {
        "file": str(args.file), "n": int(x.shape[0]), "estimator": estimator.name,
        "x_columns": [table.key(c) for c in xc], "y_columns": [table.key(c) for c in yc],
        "estimate": value, "units": "nats", "level": None, "lower": None, "upper": None,
        "interval_method": None, "dropped_constant_columns": dropped,
        "notes": [f"no interval: {estimator.name} gives none here; intervals come from "
                  "MIST-QR (--estimator mist without --z)"]}
    if zc is not None:
        result["z_columns"] = [table.key(c) for c in zc]
        result["conditional"] = True
    _note_discrete(args, table, sides, result)
    used = estimator.last_info.get("rows_used", x.shape[0])
    if used < x.shape[0]:
        result["rows_used"] = int(used)
        term = estimator.last_info.get("rows_used_in")
        result["notes"].append(f"KSG left out {x.shape[0] - used} of the {x.shape[0]} rows"
                               + (f" from {term}" if term else "")
                               + ": each is alone in its combination of discrete values")
    _print(result, x.shape[1], y.shape[1], args.json)
    return 0


@contextmanager
def _errors_by_name(table, sides) -> Iterator[None]:
    """An estimator's error about "x column j" (its j-th column of a side) as an
    :class:`InputError` naming the table's column (by header name where there is one)."""
    columns = {side: cols for side, cols, _ in sides}
    try:
        yield
    except ValueError as exc:
        flags = {side: f" (--{side})" for side in columns}
        raise InputError(_renamed(str(exc), table, columns, flags)) from None


SIDE_COLUMN = re.compile(r"\b([xyz]) column (\d+)\b")


def _renamed(text: str, table, columns: dict[str, list[int]],
             flags: dict[str, str] | None = None) -> str:
    """``text`` with each "x column j" (column j of the estimator's side x) named as the
    table's column ``columns[side][j]``, followed by ``flags[side]`` where given."""
    def named(match: re.Match) -> str:
        side, j = match.group(1), int(match.group(2))
        cols = columns.get(side, [])
        return (f"{table.label(cols[j])}{(flags or {}).get(side, '')}" if j < len(cols)
                else match.group(0))

    return SIDE_COLUMN.sub(named, text)


def _matrix_error(exc: ValueError, estimator, table, cols: list[int], values: np.ndarray
                  ) -> InputError:
    """An estimator's error about one pair of the matrix ("y column 0 ..."), naming the
    file's columns of the pair it comes from (found by estimating the pairs again, in
    :func:`~mistmodel.matrix.mi_matrix`'s order, until one fails with it)."""
    text = str(exc)
    if not SIDE_COLUMN.search(text):
        return InputError(text)
    pair = _failing_pair(estimator, values, table.keys(cols), text)
    if pair is None:
        return InputError(f"{text} (in one of the pairs of --columns)")
    i, j = pair
    named = _renamed(text, table, {"x": [cols[i]], "y": [cols[j]]})
    return InputError(f"the pair {table.key(cols[i])!r}, {table.key(cols[j])!r}: {named}")


def _failing_pair(estimator, values: np.ndarray, labels: list[str], text: str
                  ) -> tuple[int, int] | None:
    """The first pair ``(i, j)`` of columns, each in the order of its labels as
    :func:`~mistmodel.matrix.mi_matrix` takes it, whose estimate raises ``text``."""
    from .matrix import ordered_pairs
    for i, j in ordered_pairs(labels):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimator.estimate(values[:, [i]], values[:, [j]])
        except ValueError as again:
            if str(again) == text:
                return i, j
    return None


def _named_columns(table, sides) -> list[tuple[str, np.ndarray]]:
    """Each column of ``(side, columns, values)`` sides as ``(name, values)``, for
    :func:`~mistmodel.tabular.ties_by_name`."""
    return [(table.key(c), a[:, [i]]) for _, cols, a in sides for i, c in enumerate(cols)]


def _note_discrete(args: argparse.Namespace, table, sides, result: dict[str, Any]) -> None:
    """With ``--estimator ksg``: the columns it takes as discrete, into
    ``result["discrete_columns"]`` and a note (:func:`_discrete_columns`)."""
    found = _discrete_columns(args, table, sides)
    if found:
        result["discrete_columns"] = found
        result["notes"].append(_discrete_note(found))
    if args.estimator == "ksg":
        result["discrete"] = args.discrete
    if args.estimator == "ksg" and args.discrete == "numbers":
        result["notes"].append("KSG took every column's values as numbers (--discrete "
                               "numbers: the mixed-KSG estimator of Gao et al., for columns "
                               "that mix point masses with continuous values)")


def _discrete_columns(args: argparse.Namespace, table, sides) -> dict[str, list]:
    """With ``--estimator ksg --discrete categories`` (``KSG(discrete="auto")``, the
    default): the columns it takes as discrete (few distinct values,
    :func:`~mistmodel.estimators.ksg.discrete_columns`, among each side's non-constant
    columns), by name, for the sides that have any.  ``sides``: ``(side, columns,
    values)``."""
    if args.estimator != "ksg" or args.discrete != "categories":
        return {}
    from .estimators.ksg import discrete_columns

    found = {}
    for side, cols, a in sides:
        kept = np.setdiff1d(np.arange(len(cols)), constant_columns(a))
        flags = discrete_columns(a[:, kept]) if kept.size else []
        names = [table.key(cols[i]) for i, flag in zip(kept, flags) if flag]
        if names:
            found[side.lower()] = names
    return found


def _discrete_note(found: dict[str, list]) -> str:
    return ("KSG took as discrete (few distinct values; mixed-KSG estimator, the values as "
            "categories): ") + "; ".join(
        f"{side.upper() if len(side) == 1 else side} {', '.join(map(repr, names))}"
        for side, names in found.items())


def _test(args: argparse.Namespace) -> int:
    if args.permutations < 1:
        raise InputError(f"--permutations must be >= 1; got {args.permutations}")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0; got {args.seed}")
    if args.neighbours is not None and args.z is None:
        raise InputError("--neighbours has no use without --z: the test of independence "
                         "permutes all rows")
    if args.neighbours is not None and args.neighbours < 2:
        raise InputError(f"--neighbours must be >= 2 (1 would leave every row in place); got "
                         f"{args.neighbours}")
    _check_checkpoints(args, ("--checkpoint", args.checkpoint))
    if args.neighbour_correction and args.z is not None:
        raise InputError("--neighbour-correction corrects MIST's I(X;Y) estimate; it has no "
                         "use with --z")
    table = open_table(args.file, header=args.header)
    xc, yc = select(table, args.x, args.y, by=args.by)
    zc = select_conditioning(table, args.z, xc, yc, by=args.by) if args.z is not None else None
    sides = [("X", "--x", xc), ("Y", "--y", yc)] + ([("Z", "--z", zc)] if zc else [])
    data = {}
    for side, flag, cols in sides:
        data[side] = table.read(cols, flag)
        if constant_columns(data[side]).size == len(cols):
            raise InputError(f"every {side} column ({flag}) is constant: "
                             + ("it carries no information, so there is nothing to test"
                                if side != "Z" else "then X and Y given Z is X and Y; "
                                "leave out --z"))
    named_sides = [(side.lower(), cols, data[side]) for side, _, cols in sides]
    dropped = {side: [table.key(cols[i]) for i in constant_columns(a)]
               for side, cols, a in named_sides}
    from .independence import conditional_independence_test, independence_test
    estimator = (_pair_estimator(args) if zc is None
                 else _plain_estimator(args.estimator, args.checkpoint, args.discrete,
                                       cross_check=not args.no_cross_check))
    with ties_by_name(estimator, _named_columns(table, named_sides)), \
            _errors_by_name(table, named_sides):
        if zc is None:
            test = independence_test(estimator, data["X"], data["Y"], args.permutations,
                                     seed=args.seed)
            note = "exact level: under independence P(p <= alpha) <= alpha"
        else:
            neighbours = 5 if args.neighbours is None else args.neighbours
            test = conditional_independence_test(estimator, data["X"], data["Y"], data["Z"],
                                                 args.permutations, seed=args.seed,
                                                 neighbours=neighbours)
            note = (f"local permutations within {neighbours} Z-neighbours: the level is "
                    "approximate")
    result: dict[str, Any] = {
        "file": str(args.file), "n": int(data["X"].shape[0]),
        "test": "independence" if zc is None else "conditional independence",
        "estimator": test.estimator, "x_columns": [table.key(c) for c in xc],
        "y_columns": [table.key(c) for c in yc], "statistic": test.statistic,
        "units": "nats", "p_value": test.p_value, "n_permutations": test.n_permutations,
        "seed": args.seed, "dropped_constant_columns": dropped, "notes": [note]}
    if zc is not None:
        result["z_columns"] = [table.key(c) for c in zc]
    _note_discrete(args, table, [(side, cols, data[side]) for side, _, cols in sides], result)
    if args.json:
        print(_json(result))
        return 0
    given = " given Z" if zc is not None else ""
    what = "I(X;Y|Z)" if zc is not None else "I(X;Y)"
    print(f"X independent of Y{given}: p = {test.p_value:.4g}   ({test.n_permutations} "
          f"permutations; statistic {what} = {test.statistic:.4f} nats, {test.estimator}; "
          f"n = {result['n']})")
    _print_dropped(dropped)
    for line in result["notes"]:
        print(f"note: {line}")
    return 0


def _matrix(args: argparse.Namespace) -> int:
    if args.permutations < 0:
        raise InputError(f"--permutations must be >= 0; got {args.permutations}")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0; got {args.seed}")
    _check_checkpoints(args, ("--checkpoint", args.checkpoint))
    out = new_file(args.out, "--out", ".nc", args.force)
    png = new_file(args.png, "--png", ".png", args.force) if args.png else None
    if png is not None and png.resolve() == out.resolve():
        raise InputError("--out and --png name the same file")
    table = open_table(args.file, header=args.header)
    cols = select_columns(table, args.columns, by=args.by)
    values = table.read(cols, "--columns")
    if values.shape[0] < 2:
        raise InputError(f"{args.file} has {values.shape[0]} data "
                         f"row{'' if values.shape[0] == 1 else 's'}; an MI matrix needs at "
                         "least 2")
    constant = constant_columns(values)
    if constant.size:
        raise InputError(f"{table.label(cols[constant[0]])} is constant: it carries no "
                         "information about any other column; leave it out with --columns")

    import pandas as pd   # heavy imports: only once the input is known good
    from .matrix import mi_matrix
    estimator = _pair_estimator(args)
    frame = pd.DataFrame(values, columns=table.keys(cols))
    try:
        result = mi_matrix(frame, estimator=estimator, permutations=args.permutations,
                           seed=args.seed)
    except ValueError as exc:
        raise _matrix_error(exc, estimator, table, cols, values) from None
    result.attrs["source_file"] = str(args.file)
    discrete = _discrete_columns(args, table, [("columns", cols, values)])
    if args.estimator == "ksg":
        result.attrs["ksg_discrete"] = args.discrete
    if discrete:
        result.attrs["discrete_columns"] = json.dumps(discrete["columns"])
    _replace_atomically(args.force, (out, lambda tmp: result.to_netcdf(tmp)),
                        *([(png, lambda tmp: _heatmap(result, tmp))] if png is not None else []))
    mi = result["mi"] if args.permutations else result
    print(f"wrote {out}: I(X_i;X_j) of {len(cols)} columns ({len(cols) * (len(cols) - 1) // 2}"
          f" pairs, n = {values.shape[0]}, {mi.attrs['estimator']}, nats)"
          + (f" with p-values from {args.permutations} permutations" if args.permutations
             else ""))
    if png is not None:
        print(f"wrote {png}: heatmap")
    if discrete:
        print(f"note: {_discrete_note(discrete)}")
    return 0


def _heatmap(result, path: str) -> None:
    from matplotlib.figure import Figure

    from .matrix import figure_size, plot_mi_matrix
    mi = result["mi"] if "mi" in getattr(result, "data_vars", {}) else result
    fig = Figure(figsize=figure_size(mi.shape[0]), layout="constrained")
    plot_mi_matrix(result, ax=fig.add_subplot())
    fig.savefig(path, format="png", dpi=120)


def _replace_atomically(force: bool, *files: tuple[Path, Any]) -> None:
    """For each ``(path, write)``, ``write(tmp)`` to a temporary file beside the file
    ``path`` names (a link's target: the link stays), and only once all are written rename
    each into place, so that a failure leaves every old file as it was."""
    targets = [Path(os.path.realpath(path)) for path, _ in files]
    temps = [str(t.parent / f".{t.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
             for t in targets]
    try:
        for tmp, (_, write) in zip(temps, files):
            write(tmp)
        for target, (path, _) in zip(targets, files):
            if target.exists() and not force:
                raise InputError(f"{path}: the file appeared while it was being written; "
                                 "pass --force to replace it")
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.remove(tmp)


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


def _outside_note(same_network: bool, corrected: bool = False) -> str:
    """Why the interval does not contain the estimate."""
    if corrected:
        return ("the estimate lies outside the interval: the estimate is MIST's with the "
                "neighbour correction, the interval MIST-QR's, which is not corrected")
    if same_network:
        return ("the estimate lies outside the interval: MIST-QR's conformal factor for this "
                "level narrows its quantile interval past its median")
    return ("the estimate lies outside the interval: the estimate comes from MIST, the "
            "interval from MIST-QR, two separately trained networks that disagree here")


def _json(result: dict[str, Any]) -> str:
    """``result`` as strict JSON: a non-finite number (CCA's I(X;Y) of a column with an
    exact copy is infinite) becomes null, with a note naming it."""
    bad = [key for key, value in result.items()
           if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        result = {**result, **{key: None for key in bad},
                  "notes": [*result.get("notes", []), *(
                      f"{key} is {result[key]} (written as null)" for key in bad)]}
    return json.dumps(result, allow_nan=False)


def _print(result: dict[str, Any], dim_x: int, dim_y: int, as_json: bool) -> None:
    if as_json:
        print(_json(result))
        return
    what = "I(X;Y|Z)" if result.get("conditional") else "I(X;Y)"
    by = f", {result['estimator']}" if "estimator" in result else ""
    dim_z = f", dim_z = {len(result['z_columns'])}" if result.get("z_columns") else ""
    print(f"{what} = {result['estimate']:.4f} nats   (n = {result['n']}, dim_x = {dim_x}, "
          f"dim_y = {dim_y}{dim_z}{by})")
    fix = result.get("neighbour_correction")
    if fix is not None:
        copula = ("Gaussian" if fix.get("neighbour_nu") is None
                  else f"Student-t, nu = {fix['neighbour_nu']:g}")
        print("neighbour correction: " + (
            f"not applied: {fix['reason']}" if fix["reason"] != "applied" else
            f"weight {fix['weight']:.2f}; the neighbour ({copula} copula) has MI "
            f"{fix['neighbour_mi']:.4f}, MIST on its draws {fix['neighbour_estimate']:.4f}"))
    if result["lower"] is not None:
        print(f"{100 * result['level']:g}% interval: [{result['lower']:.4f}, "
              f"{result['upper']:.4f}] nats (MIST-QR)")
        if result["interval_method"]:
            print(f"interval method: {result['interval_method']}")
    _print_dropped(result["dropped_constant_columns"])
    for note in result["notes"]:
        print(f"note: {note}")


def _print_dropped(dropped: dict[str, list[str]]) -> None:
    """The constant columns left out, by side."""
    for side, names in dropped.items():
        if names:
            print(f"constant {side.upper()} columns left out (they carry no information): "
                  f"{', '.join(map(repr, names))}")


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
    _sample_flags(e, z_help="condition on these columns: I(X;Y|Z) (MIST's conditional "
                  "network, KSG or CCA; no interval)",
                  estimator_help="mist (default, with MIST-QR interval), ksg (mixed KSG on "
                  "columns with few distinct values) or cca")
    e.add_argument("--qr-checkpoint", action=_Once,
                   help="MIST-QR checkpoint for the interval (default: shipped)")
    e.add_argument("--level", action=_Once, type=float, default=None,
                   help="interval level (default 0.9; not with --z)")
    e.add_argument("--neighbour-correction", action="store_true",
                   help="correct MIST's estimate by its error on a Gaussian or Student-t "
                   "copula fitted to the sample, or below 20 rows per column on the sample "
                   "with its Y rows shuffled (docs/mist.md#the-neighbour-correction)")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    t = sub.add_parser("test", help="permutation test of X independent of Y (given Z with "
                       "--z) on a .npy, .csv or .parquet file")
    _sample_flags(t, z_help="test independence given these columns (local permutations; "
                  "approximate level)",
                  estimator_help="the statistic: mist (default; given Z its conditional "
                  "network), ksg (mixed KSG on columns with few distinct values) or cca")
    t.add_argument("--permutations", action=_Once, type=int, default=199,
                   help="permutations (default 199; the smallest p-value is 1 / (1 + P))")
    t.add_argument("--neighbours", action=_Once, type=int, default=None,
                   help="with --z: Z-neighbours each row's x is drawn from (default 5)")
    t.add_argument("--seed", action=_Once, type=int, default=0,
                   help="seed of the permutations (default 0)")
    t.add_argument("--neighbour-correction", action="store_true",
                   help="the statistic is MIST with its neighbour correction (no --z)")
    t.add_argument("--json", action="store_true", help="print one JSON object")

    m = sub.add_parser("matrix", help="MI of every pair of columns of a .npy, .csv or "
                       ".parquet file, written as netCDF (and a PNG heatmap)")
    m.add_argument("file", help="data file: rows are observations")
    m.add_argument("--columns", action=_Once,
                   help="columns to use: indices, start:stop slices or names (default: all)")
    _table_flags(m, "--columns")
    m.add_argument("--estimator", action=_Once, choices=ESTIMATORS, default="mist",
                   help="mist (default), ksg (mixed KSG on columns with few distinct values) "
                   "or cca")
    _discrete_flag(m)
    m.add_argument("--checkpoint", action=_Once, help="MIST checkpoint (default: shipped)")
    _cross_check_flag(m)
    m.add_argument("--permutations", action=_Once, type=int, default=0,
                   help="permutations for independence p-values (default 0: none)")
    m.add_argument("--seed", action=_Once, type=int, default=0,
                   help="seed of the permutations (default 0)")
    m.add_argument("--out", action=_Once, required=True, help="netCDF file to write (.nc)")
    m.add_argument("--png", action=_Once, help="heatmap to write (.png)")
    m.add_argument("--neighbour-correction", action="store_true",
                   help="MIST with its neighbour correction")
    m.add_argument("--force", action="store_true", help="replace existing output files")
    return p


def _sample_flags(parser: argparse.ArgumentParser, z_help: str, estimator_help: str) -> None:
    """FILE, --x/--y/--z, the table flags, --estimator and --checkpoint."""
    parser.add_argument("file", help="data file: rows are observations")
    parser.add_argument("--x", action=_Once, help="X columns: indices, start:stop slices or "
                        "names")
    parser.add_argument("--y", action=_Once, help="Y columns: indices, start:stop slices or "
                        "names")
    parser.add_argument("--z", action=_Once, help=z_help)
    _table_flags(parser, "--x/--y/--z")
    parser.add_argument("--estimator", action=_Once, choices=ESTIMATORS, default="mist",
                        help=estimator_help)
    _discrete_flag(parser)
    parser.add_argument("--checkpoint", action=_Once, help="MIST checkpoint (default: "
                        "shipped)")
    _cross_check_flag(parser)


def _discrete_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--discrete", action=_Once, choices=tuple(KSG_DISCRETE), default=None,
                        help="with --estimator ksg: columns with few distinct values taken as "
                        "categories (default; KSG(discrete='auto')), every column's values "
                        "as numbers (KSG(discrete=True)) or every column as continuous, "
                        "ties broken by noise (off; KSG())")


def _on_the_command_line(text: str) -> str:
    """``text`` with the ``--discrete`` flag of each KSG setting it advises, and without
    advice that only Python can follow."""
    text = text.replace("use CCA or KSG (mistmodel.estimators), or load MIST with "
                        "out_of_range='warn' to get the estimate anyway",
                        "or use --estimator cca or ksg (from Python, "
                        "MIST.load(out_of_range='warn') answers anyway)")
    named = {}
    for form, flag in KSG_FORMS:
        if form in text:
            named.setdefault(flag, form)
    if not named:
        return text
    return text.rstrip() + ("" if text.rstrip().endswith((".", "?", "!")) else ".") + \
        " On the command line: " + "; ".join(
        f"{form} is --estimator ksg --discrete {flag}" for flag, form in named.items()) + "."


def _cross_check_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cross-check", action="store_true",
                        help="MIST: skip its cross-check against KSG on 500 rows (faster; no "
                        "CrossCheckWarning where KSG reads clearly more than MIST)")


def _table_flags(parser: argparse.ArgumentParser, items: str) -> None:
    """--by-name / --by-index and --header / --no-header."""
    by = parser.add_mutually_exclusive_group()
    by.add_argument("--by-name", dest="by", action="store_const", const="name",
                    help=f"read every {items} item as a column name")
    by.add_argument("--by-index", dest="by", action="store_const", const="index",
                    help=f"read every {items} item as a column index or slice")
    head = parser.add_mutually_exclusive_group()
    head.add_argument("--header", dest="header", action="store_const", const=True,
                      help="csv: the first row names the columns")
    head.add_argument("--no-header", dest="header", action="store_const", const=False,
                      help="csv: the first row is data")


# the column flags, whose values may start with "-" (negative indices, counted from the end)
COLUMN_FLAGS = ("--x", "--y", "--z", "--columns")


def _attach_negative_columns(argv: Sequence[str]) -> list[str]:
    """``--y -2:`` as ``--y=-2:``: argparse would take a value like ``-2:`` or ``-2,-1``
    for an option (it lets only plain negative numbers through)."""
    out: list[str] = []
    for token in argv:
        if out and out[-1] in COLUMN_FLAGS and re.fullmatch(r"-\d[\d:,\-]*", token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_attach_negative_columns(argv))
    command = {"estimate": _estimate, "matrix": _matrix, "test": _test}[args.command]
    with recorded() as caught:       # under -W / PYTHONWARNINGS: an error filter stops it
        try:
            code = command(args)
        except (InputError, ValueError, OSError, RuntimeError, NotImplementedError,
                Warning) as exc:
            turned = (f"{type(exc).__name__}, an error under -W or PYTHONWARNINGS: "
                      if isinstance(exc, Warning) else "")
            print(f"mist: error: {turned}{_on_the_command_line(str(exc))}", file=sys.stderr)
            code = 2
    seen: set[tuple[type, str]] = set()
    for w in caught:
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            print(f"mist: warning ({w.category.__name__}): "
                  f"{_on_the_command_line(str(w.message))}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
