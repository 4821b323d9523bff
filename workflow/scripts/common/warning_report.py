"""Warnings of a study run reported once per kind, under the caller's warning filters.

A benchmark runs hundreds of samples, and an estimator may warn about many of them in the
same terms. :func:`warnings_reported` gathers the warnings of a store's samples and writes
one line per kind (category and message with its numbers left out): how many samples
raised it, and the first message; also when a sample raises an error.  The warning filters
in force outside (``-W``, ``PYTHONWARNINGS``) still apply
(:func:`mistmodel.caller_warnings.recorded`): a warning they ignore is not reported, and one
they turn into an error stops the run where it is issued.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Callable, Iterator

from tqdm.auto import tqdm

from mistmodel.caller_warnings import recorded


@contextmanager
def warnings_reported(where: str, samples: int) -> Iterator[Callable]:
    """Yield a context manager to run each sample in (``each_sample(k)`` for a call that
    reads k samples at once, whose warnings count for all k); at the end, also after an
    error, write one line per kind of warning the samples raised (category and message
    with its numbers left out) through ``tqdm.write``: how many of the ``samples`` raised
    it, and its first message."""
    kinds: dict[tuple, list] = {}               # kind: [samples, first message]

    @contextmanager
    def each_sample(count: int = 1) -> Iterator[None]:
        with recorded() as caught:
            try:
                yield
            finally:
                seen = {}
                for w in caught:
                    seen.setdefault((w.category, re.sub(r"\d+(\.\d+)?", "#", str(w.message))),
                                    str(w.message))
                for kind, first in seen.items():
                    kinds.setdefault(kind, [0, first])[0] += count

    try:
        yield each_sample
    finally:
        for (category, _), (count, first) in kinds.items():
            tqdm.write(f"warning ({where}): {count} of {samples} samples warned "
                       f"({category.__name__}); the first: {first}")
