"""Model-level attacks: relearning and refusal-direction ablation (see base.py).

Importing this package registers every entry; the registry lives in ``base.py``, so entries import downwards."""

from __future__ import annotations

from mubench.tamper import refusal_ablation, relearn_benign, relearn_forget  # noqa: F401
from mubench.tamper.base import TAMPER_ATTACKS, TamperAttack

__all__ = ["TAMPER_ATTACKS", "TamperAttack"]
