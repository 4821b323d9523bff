"""Turn a split entry of the study config into ``build_meta_dataset`` arguments."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .errors import MistgenError

KEYS = {"families", "count", "n_range", "dim_range", "dim_y_range", "n_grid", "dim_grid",
        "repeats", "shard_size", "role"}


def n_grid(value: Any) -> list[int]:
    """A list of sample sizes, or ``{start, stop, num}`` for evenly spaced integers."""
    if isinstance(value, Mapping):
        grid = np.linspace(value["start"], value["stop"], value["num"])
        return [int(round(v)) for v in grid]
    return [int(v) for v in value]


def store_arguments(split: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for one family's store of a split (``count`` is per family)."""
    unknown = set(split) - KEYS
    if unknown:
        raise MistgenError(f"unknown split setting(s): {', '.join(sorted(unknown))}")
    args: dict[str, Any] = {}
    for key in ("n_range", "dim_range", "dim_y_range", "dim_grid", "repeats", "shard_size"):
        if split.get(key) is not None:
            args[key] = split[key]
    if split.get("n_grid") is not None:
        args["n_grid"] = n_grid(split["n_grid"])
    else:
        args["count"] = split["count"]
    return args
