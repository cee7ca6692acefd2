"""Model-level attack registry: relearning and refusal-direction ablation (see base.py)."""

from __future__ import annotations

from typing import Any

from mubench.core.registry import Registry
from mubench.tamper.base import ModelAttack

MODEL_ATTACKS: Registry[type] = Registry("model attack", ModelAttack)

from mubench.tamper import refusal_ablation, relearn_benign, relearn_forget  # noqa: E402,F401


def get_model_attack(name: str, params: dict[str, Any] | None = None) -> ModelAttack:
    """A model attack with its validated parameters (defaults where ``params`` leaves them out)."""
    cls = MODEL_ATTACKS.get(name)
    return cls(cls.Params(**(params or {})))
