"""Training targets the methods need besides the model's own responses.

Refusal texts are written by the project and harmless; mismatched answers pair each prompt with another
prompt's response (a seeded derangement), as LLMU's random answers and SKU's random disassociation need.
"""

from __future__ import annotations

import hashlib
import random

from mubench.core.records import CorpusPair

REFUSALS = (
    "I'm sorry, but I can't help with that request.",
    "I can't assist with that. If you have another question, I'm happy to help.",
    "I'm sorry, I cannot provide that, because it could cause harm to people.",
    "I won't help with this, since it could be used to hurt someone. Is there something else I can do for you?",
)


def refusal_for(prompt: str) -> str:
    """A fixed refusal text for ``prompt`` (chosen by a hash of the prompt, so it is deterministic)."""
    index = int(hashlib.sha256(prompt.encode("utf-8")).hexdigest(), 16) % len(REFUSALS)
    return REFUSALS[index]


def with_refusals(pairs: list[CorpusPair]) -> list[CorpusPair]:
    """Each pair with the project's refusal text as its response."""
    return [p.as_(CorpusPair, response=refusal_for(p.prompt)) for p in pairs]


def mismatched(prompts: list[CorpusPair], answers: list[CorpusPair], seed: int) -> list[CorpusPair]:
    """Each prompt paired with a response taken from a different row of ``answers`` (seeded)."""
    if not prompts or not answers:
        return []
    order = list(range(len(answers)))
    random.Random(seed).shuffle(order)
    out = []
    for i, prompt in enumerate(prompts):
        j = order[i % len(order)]
        if answers[j].prompt == prompt.prompt and len(answers) > 1:
            j = order[(i + 1) % len(order)]
        out.append(prompt.as_(CorpusPair, response=answers[j].response))
    return out
