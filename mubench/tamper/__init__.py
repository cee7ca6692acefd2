"""Model-level attack registry: relearning and refusal-direction ablation (see base.py)."""

from __future__ import annotations

from typing import Any

from mubench.core.registry import Registry
from mubench.tamper.base import TamperAttack

TAMPER_ATTACKS: Registry[type] = Registry("tamper attack", TamperAttack)

from mubench.tamper import refusal_ablation, relearn_benign, relearn_forget  # noqa: E402,F401


def get_tamper(name: str, params: dict[str, Any] | None = None) -> TamperAttack:
    """A tamper attack with its validated parameters (defaults where ``params`` leaves them out)."""
    cls = TAMPER_ATTACKS.get(name)
    return cls(cls.Params(**(params or {})))
