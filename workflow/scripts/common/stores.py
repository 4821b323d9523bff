"""Where the study's stores live and what ``mistgen`` builds each of them from.

A split of the config is one store per family (``data/meta/<split>/<family>.zarr``), or,
with ``combined: true``, one store holding all its families in turn
(``data/meta/<split>/all.zarr``; ``count`` is then the store's total).  Datapoint ``i`` of
a store is a pure function of (``seed``, ``address``, ``i``): the split's ``seed`` (else
the config's), and its ``address`` (else ``<split>.<family>``, or ``<split>`` for a
combined store).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

COMBINED = "all"   # the store name of a combined split
DESIGN_KEYS = ("n_range", "dim_range", "dim_y_range", "dim_grid", "repeats")
DIM_KEYS = ("dim_range", "dim_y_range", "dim_grid")


def base_split(split: str) -> str:
    """The config split behind a store split (``train@bc`` is ``train`` warped)."""
    return split.split("@")[0]


def families_of(config: Mapping[str, Any], split: str) -> list[str]:
    """The family specs of a split (a warped split ``name@modality`` has its base's)."""
    entry = config["splits"][base_split(split)]["families"]
    return list(config["families"][entry] if isinstance(entry, str) else entry)


def store_names(config: Mapping[str, Any], split: str) -> list[str]:
    """The stores of a split: its families, or the one combined store."""
    if config["splits"][base_split(split)]["combined"]:
        return [COMBINED]
    return families_of(config, split)


def store_path(split: str, name: str) -> str:
    return f"data/meta/{split}/{name}.zarr"


def split_stores(config: Mapping[str, Any], split: str) -> list[str]:
    return [store_path(split, name) for name in store_names(config, split)]


def n_grid(value: Any) -> list[int]:
    """A list of sample sizes, or ``{start, stop, num}`` for evenly spaced integers."""
    if isinstance(value, Mapping):
        grid = np.linspace(value["start"], value["stop"], value["num"])
        return [int(round(v)) for v in grid]
    return [int(v) for v in value]


def store_recipe(config: Mapping[str, Any], split: str, name: str) -> dict[str, Any]:
    """Keyword arguments of ``mistgen.build_meta_dataset`` for store ``name`` of ``split``
    (a base split; warping is a separate step)."""
    entry = config["splits"][split]
    specs = families_of(config, split) if name == COMBINED else [name]
    recipe: dict[str, Any] = {
        "specs": specs,
        "seed": entry.get("seed", config["seed"]),
        "split": entry.get("address", split if name == COMBINED else f"{split}.{name}"),
        "shard_size": entry.get("shard_size", config["shard_size"]),
        "priors": store_priors(config, specs, entry.get("priors")),
    }
    recipe.update({k: entry[k] for k in DESIGN_KEYS if k in entry})
    if "n_grid" in entry:
        recipe["n_grid"] = n_grid(entry["n_grid"])
    else:
        recipe["count"] = entry["count"]
    return recipe


def store_split_config(config: Mapping[str, Any], split: str, name: str) -> dict[str, Any]:
    """The split entry a store records with its data (the generate rule's ``split_config``
    parameter, whose change reruns the rule), less what does not make that store: the
    priors (:func:`store_recipe` holds those of its families), its ``role`` (a label), and,
    for one family's store, the split's families, so that adding a family to the split
    builds the new store and leaves the others be."""
    skip = {"priors", "role"} if name == COMBINED else {"priors", "role", "families"}
    return {k: v for k, v in config["splits"][split].items() if k not in skip}


def modality_base_recipe(config: Mapping[str, Any], split: str, name: str) -> dict[str, Any]:
    """:func:`store_recipe` less the split's dims: a modality's base store takes the
    modality's dims, so the split's do not make it (and a change of them rebuilds
    nothing)."""
    return {k: v for k, v in store_recipe(config, split, name).items() if k not in DIM_KEYS}


def store_priors(config: Mapping[str, Any], specs: list[str],
                 split_priors: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The prior overrides for the families of ``specs`` only (None if none), so that an
    override rebuilds just the stores that draw from its family: the config's ``priors``,
    then the split's own ``priors`` over them, parameter by parameter."""
    from mistgen import parse_spec

    families = {parse_spec(spec).family.name for spec in specs}
    used: dict[str, dict[str, Any]] = {}
    for overrides in (config["priors"] or {}, split_priors or {}):
        for name, prior in overrides.items():
            if name in families and prior:
                used.setdefault(name, {}).update({k: list(v) for k, v in prior.items()})
    return used or None


CONDITIONAL_DESIGN_KEYS = ("count", "n_range", "n_grid", "repeats", "dim_range", "dim_y_range",
                           "dim_z_range", "dim_grid")


def conditional_store_path(name: str) -> str:
    return f"data/conditional/{name}.zarr"


def conditional_store_recipe(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Keyword arguments of ``mistgen.build_conditional_dataset`` for the
    ``conditional_splits`` entry ``name`` (its address is ``conditional.<name>``)."""
    entry = config["conditional_splits"][name]
    return {"specs": list(entry["specs"]), "seed": entry.get("seed", config["seed"]),
            "split": f"conditional.{name}",
            "shard_size": entry.get("shard_size", config["shard_size"]),
            **{k: entry[k] for k in CONDITIONAL_DESIGN_KEYS if k in entry}}
