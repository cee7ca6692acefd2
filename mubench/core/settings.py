"""The base of every settings model (params.yaml's sections and each registry entry's settings).

Closed (an unknown key is an error), frozen, finite numbers only, and strict about yes/no: YAML's ``true`` is
not the number 1 (pydantic would otherwise read ``batch_size: true`` as a batch of one).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

# the largest batch any stage accepts: far above what a card holds (an 80 GB card holds a few hundred sequences
# of a 7B model), low enough that the plan's arithmetic and a mistyped value stay bounded
MAX_BATCH = 4096


def _numeric(annotation: Any) -> bool:
    """Whether a field holds a number and not a bool (``int``, ``float``, ``int | None``, ...)."""
    if annotation in (int, float):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return bool not in args and any(_numeric(a) for a in args)
    if origin is typing.Annotated:
        return _numeric(typing.get_args(annotation)[0])
    return False


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_yes_no_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(field.alias or name)
                if isinstance(value, bool) and _numeric(field.annotation):
                    raise ValueError(f"{name}: {str(value).lower()} is a yes/no, not a number; write a number")
        return data
