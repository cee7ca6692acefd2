"""The attack contract: ``apply(goal) -> prompt`` (deterministic) and ``decode(response) -> text to judge``."""

from __future__ import annotations

from typing import Any, ClassVar


class Attack:
    name: ClassVar[str]
    version: ClassVar[str]

    def params(self) -> dict[str, Any]:
        """Everything that determines the attack prompt (recorded with every output row)."""
        return {}

    def apply(self, goal: str) -> str:
        raise NotImplementedError

    def decode(self, response: str) -> str:
        """Map a response back to plain text before judging (identity unless the attack encodes)."""
        return response
