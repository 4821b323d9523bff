"""The study's own families: family files named in the config, and a check of their MI.

``family_files`` in the config lists Python files (relative to the workflow's directory)
whose classes register families or transforms (see ``mistgen.user_families``). The
Snakefile calls :func:`use_family_files` when it is parsed: the files are loaded there (so
the config checks know their names) and named in ``MISTGEN_FAMILY_FILES``, which every job
the workflow starts, and every Dask worker a job starts, inherits and loads on its first
spec. :func:`check_family_mi` compares a family's exact MI with a large-n KSG estimate.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from mistgen.registry import FAMILY_FILES_ENV, family_files_from_env
from mistgen.user_families import FamilyFileError, defining_file, load_family_files

from .checks import ConfigError
from .stores import conditional_store_recipe, store_recipe


def family_file_paths(config: Mapping[str, Any], base_dir: str | Path) -> list[str]:
    """The config's family files as absolute paths (relative ones from ``base_dir``)."""
    return [str(Path(p) if Path(p).is_absolute() else Path(base_dir) / p)
            for p in config.get("family_files", [])]


def use_family_files(config: Mapping[str, Any], base_dir: str | Path) -> list[str]:
    """Load the config's family files here and name them for every process started from
    here; returns the family and transform names they registered (a file that cannot be
    loaded raises :class:`ConfigError` naming it)."""
    paths = family_file_paths(config, base_dir)
    try:
        names = load_family_files(paths)
    except FamilyFileError as exc:
        raise ConfigError(f"the study config cannot run:\n  family_files: {exc}") from None
    exported = list(dict.fromkeys(family_files_from_env() + paths))
    if exported:
        os.environ[FAMILY_FILES_ENV] = os.pathsep.join(exported)
    return names


def store_family_files(config: Mapping[str, Any], split: str, name: str) -> list[str]:
    """The family files that define the families and transforms of store ``name`` of
    ``split`` (its inputs: a change to one of them rebuilds the store)."""
    from mistgen.spec import parse_spec

    files = []
    for spec in store_recipe(config, split, name)["specs"]:
        parsed = parse_spec(spec)
        files += [defining_file("family", parsed.family.name)]
        files += [defining_file("transform", t.name) for t in parsed.transforms]
    return sorted({f for f in files if f})


def conditional_family_files(config: Mapping[str, Any], name: str) -> list[str]:
    """The family files that define the transforms named in the specs of the
    ``conditional_splits`` entry ``name`` (its inputs, as for :func:`store_family_files`)."""
    from mistgen.conditional import split_conditional_spec

    files = []
    for spec in conditional_store_recipe(config, name)["specs"]:
        chain = split_conditional_spec(spec)[1]
        files += [defining_file("transform", t) for t in chain.split("-") if t != "base"]
    return sorted({f for f in files if f})



def conditional_model_family_files(entry: Mapping[str, Any]) -> list[str]:
    """The family files that define the transforms of a ``conditional_models`` entry's
    ``settings.transforms`` (inputs of its training job, as for :func:`store_family_files`)."""
    chains = (entry.get("settings") or {}).get("transforms", [])
    files = [defining_file("transform", t) for chain in chains for t in chain.split("-")
             if t != "base"]
    return sorted({f for f in files if f})

def check_family_mi(spec: str, params: Mapping[str, Any] | None = None, *, n: int = 20_000,
                    k: int = 3, seed: int = 0, tol: float = 0.03) -> tuple[float, float]:
    """A family's exact MI at d = 1 next to a KSG estimate on ``n`` rows of its sample.

    Returns ``(exact, estimate)``; raises ``AssertionError`` when they differ by more than
    ``tol`` nats. With ``n = 20000`` and ``k = 3`` KSG's own error on smooth
    one-dimensional laws is a few hundredths of a nat at most, so a larger gap means the
    family's ``mutual_information`` (or its sampler) is wrong. Columns with few distinct
    values are taken as discrete (mixed KSG), so a discrete family is checked too.
    """
    import mistgen
    from mistmodel.estimators.ksg import KSG

    s = mistgen.sample(spec, n, 1, 1, seed, params=params)
    estimate = float(KSG(k=k, seed=seed, discrete="auto").estimate(s.x, s.y))
    if not abs(estimate - s.mi) <= tol:
        raise AssertionError(f"{spec} with {s.params}: exact MI {s.mi:.4f} nats, KSG "
                             f"(n={n}, k={k}) {estimate:.4f}: they differ by more than {tol}")
    return s.mi, estimate
