"""A tiny name -> entry registry, one per family (methods, attacks, datasets, judges)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# names become folder names (models/NAME/METHOD, data/raw/NAME, results/...): no separators, no "..", no
# leading dot
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")


def check_slug(name: str, what: str = "name") -> str:
    """``name`` if it is safe as one path component, else a ValueError saying what is allowed."""
    if not isinstance(name, str) or not SLUG.match(name) or len(name) > 64:
        raise ValueError(f"{what} {name!r} cannot be used as a folder name: use letters, digits, '-', '_' and "
                         "single dots inside (at most 64 characters)")
    return name


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; its message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        check_slug(name, f"{self.family} name")

        def decorator(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.family} '{name}' registered twice")
            self._entries[name] = entry
            return entry

        return decorator

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(
                f"'{name}' is not a known {self.family}; allowed: {', '.join(self.names())}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
