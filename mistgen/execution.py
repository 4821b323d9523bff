"""Run one task per shard with Dask: locally by default, or on a cluster.

``workers=1`` (or a single shard) runs in-process. Otherwise a ``dask.distributed``
``LocalCluster`` of single-threaded worker processes is started, or an existing
scheduler is used when ``scheduler`` is an address such as ``"tcp://host:8786"``
(the workers must then see the same filesystem as the output path).
Results are identical whichever way tasks run: each depends only on its shard index.
"""
from __future__ import annotations

import ast
import inspect
import logging
import numbers
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from .errors import MistgenError


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def run_tasks(
    fn: Callable[[int], Any],
    keys: Sequence[int],
    *,
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool = True,
    desc: str = "shards",
) -> list[Any]:
    """``[fn(k) for k in keys]``, computed in parallel; results in key order."""
    workers = check_workers(len(keys), workers, scheduler)
    bar = tqdm(total=len(keys), desc=desc, unit="shard", disable=not progress)
    try:
        if scheduler is None and (workers == 1 or len(keys) <= 1):
            results = []
            for k in keys:
                results.append(fn(k))
                bar.update()
            return results
        return _run_distributed(fn, keys, workers, scheduler, bar)
    finally:
        bar.close()


def check_workers(tasks: int, workers: int | None, scheduler: Any = None) -> int:
    """The number of local workers for ``tasks`` tasks (``None``: one per core), refused
    now, before anything is written, where :func:`run_tasks` could not start them: fewer
    than 1, or worker processes started from unguarded script code
    (:func:`check_main_guard`)."""
    if workers is None:
        workers = default_workers()
    elif isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise MistgenError(f"workers must be an integer >= 1, got {workers!r}")
    workers = int(workers)
    if scheduler is None and workers > 1 and tasks > 1:
        check_main_guard()
    return workers


def check_main_guard() -> None:
    """Refuse to start local worker processes from unguarded top-level script code.

    Local workers are started with ``spawn``, which runs the main script (or the module
    run with ``python -m``, unless it is a package's ``__main__``) again in every worker;
    a build call at the script's top level would then start a cluster inside each worker,
    and Dask reports that as hundreds of lines of tracebacks. This finds the line of the
    main script that is running now and checks that it sits under
    ``if __name__ == "__main__":``.
    """
    import dask

    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if dask.config.get("distributed.worker.multiprocessing-method", "spawn") == "fork":
        return  # forked workers do not run the script again
    spec = getattr(main, "__spec__", None)
    if script is None or (spec is not None and spec.name.split(".")[-1] == "__main__"):
        return  # interactive, or a package's __main__: spawn does not re-run this code
    frame = inspect.currentframe()
    while frame is not None and not (frame.f_globals is vars(main)
                                     and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(script).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return
    if not any(_is_main_guard(node) and node.lineno <= line <= node.end_lineno
               for node in tree.body):
        raise MistgenError(
            f"{script}, line {line}: building with several local workers starts worker "
            f"processes that run this script again, so the call must sit under "
            f"'if __name__ == \"__main__\":' (or pass workers=1)"
        )


def _is_main_guard(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__"
                    for c in node.test.comparators))


def _run_distributed(fn, keys, workers, scheduler, bar) -> list[Any]:
    from distributed import Client, LocalCluster, as_completed

    with ExitStack() as stack:
        if isinstance(scheduler, Client):
            client = scheduler
        elif scheduler is None:
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR,
            ))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(scheduler))
        futures = {client.submit(fn, k, pure=False): i for i, k in enumerate(keys)}
        results: list[Any] = [None] * len(keys)
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        except BaseException:
            client.cancel(list(futures))
            raise
        return results
