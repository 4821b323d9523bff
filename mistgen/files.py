"""Files that appear whole or not at all."""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator


def partial_name() -> str:
    """The mark of a file being written: ``partial-<pid>-<random>``, so that two writers of
    one path, in two processes or two threads of one, never share a temporary file."""
    return f"partial-{os.getpid()}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path``, with its suffix (so writers that go by it still
    do), that replaces ``path`` when the block ends; removed if the block raises."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{partial_name()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
