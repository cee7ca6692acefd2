"""Jailbreak attack registry. An attack rewrites a harmful goal into an attack prompt (see base.py)."""

from __future__ import annotations

from typing import Any

from mubench.core.registry import Registry
from mubench.jailbreaks.base import Jailbreak

JAILBREAKS: Registry[type] = Registry("jailbreak", Jailbreak)

from mubench.jailbreaks import (  # noqa: E402,F401
    aim,
    base64,
    caesar,
    deep_inception,
    dev_mode,
    evil_confidant,
    gcg,
    ica,
    past_tense,
    prefix_injection,
    refusal_suppression,
)


def get_jailbreak(name: str, params: dict[str, Any] | None = None):
    """An attack instance with its validated parameters (defaults where ``params`` leaves them out)."""
    cls = JAILBREAKS.get(name)
    return cls(cls.Params(**(params or {})))
