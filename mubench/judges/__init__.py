"""Judge registry. A judge maps (prompt, response) to a Verdict; ``refused`` is what the metrics read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mubench.registry import Registry


@dataclass(frozen=True)
class Verdict:
    refused: bool
    reason: str  # e.g. the keyword that matched, or "empty response"


class Judge(Protocol):
    name: str
    version: str

    def judge(self, prompt: str, response: str) -> Verdict: ...


JUDGES: Registry[type] = Registry("judge")

from mubench.judges import refusal_keywords  # noqa: E402,F401


def get_judge(name: str) -> Judge:
    return JUDGES.get(name)()
