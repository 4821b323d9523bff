"""Name -> object registries for families and transforms.

A family or transform becomes usable in spec strings by decorating its class with
``@FAMILIES.register`` or ``@TRANSFORMS.register``; nothing else needs to change. The class
may live in the package or in a user's Python file (see ``mistgen.user_families``): the
files named in the environment variable ``MISTGEN_FAMILY_FILES`` (separated by
``os.pathsep``) are loaded on the first look-up of a name, so every process that parses
specs (a workflow job, a Dask worker) knows them.
"""
from __future__ import annotations

import os
import sys
from typing import Generic, Iterator, TypeVar

from .errors import SpecError

T = TypeVar("T")

FAMILY_FILES_ENV = "MISTGEN_FAMILY_FILES"


class Registry(Generic[T]):
    """A mapping from names to singleton instances of registered classes."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, cls: type[T]) -> type[T]:
        name = getattr(cls, "name", None)
        if not name or not isinstance(name, str):
            raise TypeError(f"{self.kind} class {cls.__name__} has no 'name' attribute "
                            f"(a non-empty string such as name = \"my_{self.kind}\")")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} ({cls.__name__}) is already registered "
                             f"by {self.source(name)}")
        self._items[name] = cls()
        return cls

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a user file's class, e.g. when its file failed to load)."""
        if name not in self._items:
            raise KeyError(f"no {self.kind} {name!r} is registered")
        del self._items[name]

    def source(self, name: str) -> str:
        """Where the class registered as ``name`` is defined: a file, or a package module."""
        module = type(self._items[name]).__module__
        path = getattr(sys.modules.get(module), "__file__", None)
        if module.startswith("mistgen."):
            return f"the built-in module {module}"
        return str(path) if path else f"module {module}"

    def get(self, name: str) -> T:
        load_env_family_files()
        try:
            return self._items[name]
        except KeyError:
            raise SpecError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        load_env_family_files()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        load_env_family_files()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


FAMILIES: Registry = Registry("family")
TRANSFORMS: Registry = Registry("transform")


def family_files_from_env() -> list[str]:
    """The files named in ``MISTGEN_FAMILY_FILES`` (empty entries ignored)."""
    return [p for p in os.environ.get(FAMILY_FILES_ENV, "").split(os.pathsep) if p]


_loaded_env_value = ""


def load_env_family_files() -> None:
    """Load the files of ``MISTGEN_FAMILY_FILES`` not loaded yet (each file once)."""
    global _loaded_env_value
    value = os.environ.get(FAMILY_FILES_ENV, "")
    if value == _loaded_env_value:
        return
    from .user_families import load_family_files

    load_family_files(family_files_from_env())
    _loaded_env_value = value
