"""A small name -> object registry that fails loudly (rewards, prompt templates, eval tasks, recipes).

A duplicate name raises; an unknown name raises a ``KeyError`` that lists the valid names and the nearest
match, so a typo in a YAML file tells the user how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from medix_r1.errors import UsageError

T = TypeVar("T")


class UnknownNameError(UsageError, KeyError):
    def __str__(self) -> str:  # KeyError repr-quotes its message; show it plainly
        return str(self.args[0])


def nearest(name: str, choices) -> str | None:
    near = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return near[0] if near else None


def unknown_name_message(kind: str, name: str, choices) -> str:
    hint = nearest(name, choices)
    return (f"unknown {kind} {name!r}; valid: {', '.join(sorted(choices))}"
            + (f". Did you mean {hint!r}?" if hint else ""))


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""
        def add(o: T) -> T:
            if name in self._items:
                raise ValueError(f"duplicate {self.kind} name {name!r}")
            self._items[name] = o
            return o

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self._items)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)
