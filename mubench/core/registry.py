"""A name -> entry registry, one per family (methods, jailbreaks, tamper attacks, judges, datasets).

Every family has the same shape: an abstract base class that documents what goes in and comes out, one file per
entry, and this registry defined in the family's base module (entries import it from there, so imports flow
down). Use::

    JUDGES.entry("llamaguard")                       # the class (its Params, declared capabilities)
    JUDGES.get("llamaguard", {"batch_size": 4})        # an instance; settings validated once, here
    JUDGES.names()                                   # the registered names, sorted

An entry class carries a ``Params`` model (a ``Settings`` subclass) and takes one validated instance of it at
construction. A dataset is registered as a ``DatasetSpec`` instance: ``get`` returns it and takes no settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from mubench.core.errors import UserError

T = TypeVar("T")

# names become folder names (models/NAME/METHOD, data/raw/NAME, results/...): no separators, no "..", no
# leading dot
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")


def check_slug(name: str, what: str = "name") -> str:
    """``name`` if it is safe as one path component, else a ValueError saying what is allowed."""
    # fullmatch: ``$`` alone also matches before a trailing newline ("name\n" would become a folder)
    if not isinstance(name, str) or not SLUG.fullmatch(name) or len(name) > 64:
        raise ValueError(f"{what} {name!r} cannot be used as a folder name: use letters, digits, '-', '_' and "
                         "single dots inside (at most 64 characters)")
    return name


class UnknownNameError(UserError, KeyError):
    """Raised for a name that is not registered; its message lists the valid names."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[T]):
    """``base``: the class every entry must be (a subclass of, or an instance of)."""

    def __init__(self, family: str, base: type | None = None) -> None:
        self.family = family
        self.base = base
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Register an entry under ``name``: refused when the name is taken or not a slug, when the entry is not
        of the family's base class, or when its own ``name`` differs (results would be filed under the wrong
        name)."""
        check_slug(name, f"{self.family} name")

        def decorator(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.family} '{name}' registered twice")
            if self.base is not None and not (isinstance(entry, self.base) or (
                    isinstance(entry, type) and issubclass(entry, self.base))):
                raise TypeError(f"{self.family} '{name}': {entry!r} is not a {self.base.__name__}")
            own = getattr(entry, "name", None)
            if own != name:
                raise ValueError(f"{self.family} '{name}': its name attribute is {own!r}; they must match")
            self._entries[name] = entry
            return entry

        return decorator

    def entry(self, name: str) -> T:
        """The registered entry (a class, or a dataset's spec); UnknownNameError listing the names otherwise."""
        if name not in self._entries:
            raise UnknownNameError(
                f"'{name}' is not a known {self.family}; allowed: {', '.join(self.names())}"
            )
        return self._entries[name]

    def get(self, name: str, settings: Mapping[str, Any] | BaseModel | None = None) -> Any:
        """An instance of entry ``name`` with its settings validated against the entry's ``Params`` (defaults
        where ``settings`` leaves them out; an instance of ``Params`` is taken as it is). A registered instance
        (a dataset's spec) is returned as it is and takes no settings."""
        entry = self.entry(name)
        if not isinstance(entry, type):
            if settings:
                raise TypeError(f"{self.family} '{name}' takes no settings")
            return entry
        model = entry.Params
        valid = settings if isinstance(settings, model) else model.model_validate(dict(settings or {}))
        return entry(valid)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
