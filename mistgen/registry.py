"""Name -> object registries for families and transforms.

A family or transform becomes usable in spec strings by decorating its class with
``@FAMILIES.register`` or ``@TRANSFORMS.register``; nothing else needs to change.
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from .errors import SpecError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to singleton instances of registered classes."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, cls: type[T]) -> type[T]:
        name = getattr(cls, "name", None)
        if not name:
            raise TypeError(f"{cls.__name__} has no 'name' attribute")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = cls()
        return cls

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise SpecError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


FAMILIES: Registry = Registry("family")
TRANSFORMS: Registry = Registry("transform")
