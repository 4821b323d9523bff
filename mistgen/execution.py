"""Run one task per shard with Dask: locally by default, or on a cluster.

``workers=1`` (or a single shard) runs in-process. Otherwise a ``dask.distributed``
``LocalCluster`` of single-threaded worker processes is started, or an existing
scheduler is used when ``scheduler`` is an address such as ``"tcp://host:8786"``
(the workers must then see the same filesystem as the output path).
Results are identical whichever way tasks run: each depends only on its shard index.
"""
from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm


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
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
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
