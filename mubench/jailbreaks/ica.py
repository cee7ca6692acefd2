"""In-context attack (Wei et al. 2023, "Jailbreak and Guard Aligned Language Models with Only Few In-Context
Demonstrations"): the chat opens with a few harmful requests that the assistant answered.

The demonstrations are taken from the forget set, i.e. the base model's own compliant answers to harmful
prompts that are disjoint from every evaluation prompt (nothing is written by the project). They are chosen
once, seeded, when the attack is fitted on the base model, and the same chat is used for every variant.
"""

from __future__ import annotations

import random

from pydantic import Field

from mubench.core.errors import FailedStep, InvalidValue
from mubench.jailbreaks.base import JAILBREAKS, FitContext, Jailbreak, JailbreakParams


class IcaParams(JailbreakParams):
    shots: int = Field(2, ge=1, le=16, description="number of demonstrations")


@JAILBREAKS.register("ica")
class InContextAttack(Jailbreak):
    name = "ica"
    version = "1"
    needs_model = True
    Params = IcaParams

    def __init__(self, params: IcaParams | None = None) -> None:
        super().__init__(params)
        self.demonstrations: list[dict] = []

    def fit(self, ctx: FitContext) -> dict:
        pool = sorted((r for r in ctx.forget if r.response), key=lambda r: r.id)
        if len(pool) < self.p.shots:
            raise InvalidValue(f"ica: needs {self.p.shots} forget pairs, the forget corpus has {len(pool)}")
        picked = random.Random(ctx.seed).sample(pool, self.p.shots)
        self.demonstrations = [{"id": r.id, "prompt": r.prompt, "response": r.response} for r in picked]
        return {"demonstrations": [d["id"] for d in self.demonstrations]}

    def params(self) -> dict:
        return {**self.p.model_dump(), "demonstration_ids": [d["id"] for d in self.demonstrations]}

    def apply(self, goal: str) -> list[dict[str, str]]:
        if not self.demonstrations:
            raise FailedStep("ica: fit() on the base model before apply()")
        chat = []
        for demo in self.demonstrations:
            chat += [{"role": "user", "content": demo["prompt"]}, {"role": "assistant", "content": demo["response"]}]
        return chat + [{"role": "user", "content": goal}]
