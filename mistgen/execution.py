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
import time
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
    """Whether ``node`` is ``if __name__ == "__main__":`` (either operand order), alone or
    as one operand of an ``and``."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return any(_is_main_test(value) for value in test.values)
    return _is_main_test(test)


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` or ``"__main__" == __name__``."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    operands = (test.left, test.comparators[0])
    return (any(isinstance(o, ast.Name) and o.id == "__name__" for o in operands)
            and any(isinstance(o, ast.Constant) and o.value == "__main__" for o in operands))


def _run_distributed(fn, keys, workers, scheduler, bar) -> list[Any]:
    from distributed import Client, LocalCluster, as_completed

    with ExitStack() as stack:
        external = scheduler is not None
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
            if external:
                wait_until_stopped(client, [f.key for f in futures])
            raise
        return results


#: States of a worker's task in which it neither runs nor will start again.
_SETTLED = frozenset({"memory", "error", "released", "forgotten"})


def wait_until_stopped(client: Any, keys: Sequence[Any], poll_s: float = 0.1) -> None:
    """Return once no worker of ``client`` holds a task of ``keys`` that may still run.

    Cancelling a future does not stop its task where a worker already runs it: the task
    goes on, and may write, after the cancelled future reports done. A failed build on a
    scheduler it does not own calls this before it removes its partial store, so that no
    task writes into the store after it is removed. A worker (or scheduler) that cannot be
    reached is not waited for."""
    wanted = frozenset(keys)
    while True:
        try:
            held = client.run(_unsettled_keys, wanted, on_error="ignore")
        except Exception:  # the scheduler is gone: no task of it can be waited for
            return
        if not any(held.values()):
            return
        time.sleep(poll_s)


def _unsettled_keys(keys: frozenset, dask_worker: Any = None) -> list:
    """The tasks of ``keys`` that ``dask_worker`` runs or may still run."""
    tasks = getattr(dask_worker, "state", dask_worker).tasks
    return [key for key in keys if key in tasks and tasks[key].state not in _SETTLED]
