"""Prompt-level jailbreak attacks. An attack rewrites a harmful goal into an attack prompt (see base.py).

Importing this package registers every entry; the registry lives in ``base.py``, so entries import downwards."""

from __future__ import annotations

from mubench.jailbreaks import (  # noqa: F401
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
from mubench.jailbreaks.base import JAILBREAKS, Jailbreak

__all__ = ["JAILBREAKS", "Jailbreak"]
