"""Families and transforms from a user's own Python files, without editing mistgen.

A family file is plain Python that defines a class and registers it with the package's
decorator, exactly as the built-in families do::

    from mistgen.families.base import Family
    from mistgen.registry import FAMILIES

    @FAMILIES.register
    class MyFamily(Family):
        name = "my_family"          # usable in specs: my_family-base, my_family-asinh
        default_prior = {...}
        def draw_params(self, rng, dim_x, dim_y, prior): ...
        def mutual_information(self, params, dim_x, dim_y): ...   # exact, float64, nats
        def sample(self, rng, n, dim_x, dim_y, params): ...

:func:`load_family_files` imports each file once, under a module name of its own, and
checks what it registered. A file that cannot be loaded (missing, a syntax error, a class
without a name, a name that is taken or that would change what an existing spec means, a
class that is not a ``Family`` / ``Transform``, nothing registered at all) raises
:class:`FamilyFileError` naming the file (and the line), and leaves the registries as they
were. Processes that parse specs on their own (workflow jobs, Dask workers) load the files
named in ``MISTGEN_FAMILY_FILES`` (see ``mistgen.registry``); a build also has its
workers load the files loaded in the process that started it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import threading
import traceback
from pathlib import Path
from typing import Iterable

from .errors import SpecError
from .families.base import Family
from .registry import FAMILIES, TRANSFORMS, Registry
from .transforms import Transform

FAMILY_NAME = re.compile(r"^[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*$")
TRANSFORM_NAME = re.compile(r"^[A-Za-z0-9_]+$")
REGISTRIES: tuple[tuple[Registry, type], ...] = ((FAMILIES, Family), (TRANSFORMS, Transform))

_loaded: dict[str, dict[str, list[str]]] = {}   # resolved path -> kind -> names registered
_loading: set[str] = set()
_lock = threading.RLock()   # one loader at a time; a file may look names up while loading


class FamilyFileError(SpecError):
    """A user's family file cannot be loaded."""


def load_family_files(paths: Iterable[str | Path]) -> list[str]:
    """Load every file of ``paths`` (each file once per process); the names they registered."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    names: list[str] = []
    with _lock:
        for path in paths:
            names.extend(load_family_file(path))
    return names


def load_family_file(path: str | Path) -> list[str]:
    """Load one family file; the family and transform names it registered."""
    with _lock:
        return _load(path)


def _load(path: str | Path) -> list[str]:
    resolved = Path(path).expanduser().resolve()
    key = str(resolved)
    if key in _loaded:
        return _names(_loaded[key])
    if key in _loading:   # the file itself looked a name up while loading
        return []
    if not resolved.is_file():
        where = "" if str(path) == key else f" ({key})"
        raise FamilyFileError(f"family file {str(path)!r}: no such file{where}")
    if resolved.suffix != ".py":
        raise FamilyFileError(f"family file {str(path)!r}: must be a Python file ending in .py")
    before = {registry.kind: set(registry._items) for registry, _ in REGISTRIES}
    module_name = _module_name(resolved)
    _loading.add(key)
    try:
        _execute(resolved, module_name)
        added = _added(before)
        _check_added(resolved, added, before)
    except BaseException:
        _forget(before)
        sys.modules.pop(module_name, None)
        raise
    finally:
        _loading.discard(key)
    _loaded[key] = added
    return _names(added)


def loaded_family_files() -> list[str]:
    """The files loaded so far in this process (resolved paths)."""
    return list(_loaded)


def defining_file(kind: str, name: str) -> str | None:
    """The loaded file that registered the ``kind`` (``"family"``/``"transform"``) ``name``,
    or ``None`` for a built-in one."""
    return next((path for path, added in _loaded.items() if name in added.get(kind, [])), None)


def unload_family_files(paths: Iterable[str | Path]) -> None:
    """Forget what the files of ``paths`` registered, so a later load runs them again."""
    from .spec import forget_parsed_specs

    if isinstance(paths, (str, Path)):
        paths = [paths]
    for path in paths:
        resolved = Path(path).expanduser().resolve()
        added = _loaded.pop(str(resolved), {})
        for registry, _ in REGISTRIES:
            for name in added.get(registry.kind, []):
                registry.unregister(name)
        sys.modules.pop(_module_name(resolved), None)
    forget_parsed_specs()


def _names(added: dict[str, list[str]]) -> list[str]:
    return [name for names in added.values() for name in names]


def _module_name(path: Path) -> str:
    stem = re.sub(r"\W", "_", path.stem)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    return f"mistgen_user_{stem}_{digest}"


def _execute(path: Path, module_name: str) -> None:
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise FamilyFileError(f"{exc.filename or path}, line {exc.lineno}: syntax error: "
                              f"{exc.msg}") from None
    except Exception as exc:
        raise FamilyFileError(f"{path}, line {_line_in(path, exc)}: loading it raised "
                              f"{type(exc).__name__}: {exc}") from exc


def _line_in(path: Path, exc: BaseException) -> int | str:
    """The last line of ``path`` in the traceback of ``exc``."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return lines[-1] if lines else "?"


def _added(before: dict[str, set[str]]) -> dict[str, list[str]]:
    return {registry.kind: sorted(set(registry._items) - before[registry.kind])
            for registry, _ in REGISTRIES}


def _check_added(path: Path, added: dict[str, list[str]], before: dict[str, set[str]]) -> None:
    if not any(added.values()):
        raise FamilyFileError(
            f"{path} registers no family or transform: decorate a Family subclass with "
            f"@FAMILIES.register (from mistgen.registry import FAMILIES)")
    for registry, base in REGISTRIES:
        pattern = FAMILY_NAME if registry is FAMILIES else TRANSFORM_NAME
        for name in added[registry.kind]:
            cls = type(registry._items[name])
            where = f"{path}: {registry.kind} {name!r} ({cls.__name__})"
            if not isinstance(registry._items[name], base):
                raise FamilyFileError(f"{where} must subclass {base.__module__}.{base.__name__}")
            if not pattern.match(name) or (registry is TRANSFORMS and name == "base"):
                raise FamilyFileError(f"{where}: a name must match {pattern.pattern}")
    for name in added["family"]:
        meaning = _existing_meaning(name, before)
        if meaning:
            raise FamilyFileError(f"{path}: family {name!r} would change what the spec "
                                  f"{name!r} means (today: {meaning}); choose another name")


def _existing_meaning(name: str, before: dict[str, set[str]]) -> str | None:
    """What spec ``name`` means with the registries as they were: a family and transforms."""
    for family in sorted(before["family"], key=len, reverse=True):
        if name.startswith(family + "-"):
            rest = name[len(family) + 1:].split("-")
            if all(t in before["transform"] for t in rest):
                return f"family {family!r} then {', '.join(rest)}"
    return None


def _forget(before: dict[str, set[str]]) -> None:
    for registry, _ in REGISTRIES:
        for name in set(registry._items) - before[registry.kind]:
            registry.unregister(name)
