"""Send a rule's output and any traceback to its log file."""
from __future__ import annotations

import contextlib
import traceback
from typing import Iterator


@contextlib.contextmanager
def log_to(path: str) -> Iterator[None]:
    with open(path, "w") as log, contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
        try:
            yield
        except BaseException:
            traceback.print_exc(file=log)
            raise
