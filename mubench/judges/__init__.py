"""Judges: each maps (prompt, response) to a Verdict (see base.py).

Importing this package registers every entry; the registry lives in ``base.py``, so entries import downwards."""

from __future__ import annotations

from mubench.judges import harmbench_cls, llamaguard, refusal_keywords, xstest  # noqa: F401
from mubench.judges.base import JUDGES, UNPARSED, Judge, JudgeParams, Verdict

__all__ = ["JUDGES", "UNPARSED", "Judge", "JudgeParams", "Verdict"]
