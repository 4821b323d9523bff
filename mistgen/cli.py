"""The ``mistgen`` command (also ``python -m mistgen``).

    mistgen verify [--regenerate] PATH [PATH ...]
        check whole stores; exit 0 when all are intact, 1 when any is damaged, 2 on a usage
        error (a path that does not exist, a path that is not a mistgen store at all, a
        store of a user family whose file is not loaded: MISTGEN_FAMILY_FILES).
        --regenerate also draws every datapoint again and compares its values.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mistgen", description="mistgen meta-dataset tools")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify", help="check every chunk of one or more stores and print what is wrong")
    verify.add_argument("--regenerate", action="store_true",
                        help="also draw every datapoint again from its seed and compare values")
    verify.add_argument("paths", nargs="+", metavar="PATH", help="a store written by mistgen")
    args = parser.parse_args(argv)

    from .errors import MistgenError
    from .verify import verify_store

    damaged = failed = 0
    for path in args.paths:
        if not os.path.lexists(path):
            print(f"mistgen verify: error: {path}: no such file or directory", file=sys.stderr)
            failed += 1
            continue
        try:
            report = verify_store(path, regenerate=args.regenerate)
        except MistgenError as exc:
            print(f"mistgen verify: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(report, flush=True)
        damaged += not report.ok
    return 2 if failed else 1 if damaged else 0


if __name__ == "__main__":
    sys.exit(main())
