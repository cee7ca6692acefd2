"""Relearning (Łucki et al. 2024; the relearning attacks of the WMDP/RMU line): a few steps of plain
fine-tuning on a handful of pairs. If unlearning only suppressed the harmful behaviour, it comes back.

Shared by ``relearn_benign`` (unrelated benign pairs) and ``relearn_forget`` (in-domain pairs of the forget
corpus); both run the unlearning stages' own training loop (``mubench.train``), seeded, with the
next-token loss on the responses.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from pydantic import Field

from mubench.losses import nll
from mubench.methods.base import Method, TrainParams
from mubench.model_attacks.base import ModelAttack, ModelAttackContext, ModelAttackParams


class RelearnParams(ModelAttackParams):
    steps: int = Field(10, ge=1, description="optimizer steps (k)")
    pairs: int = Field(10, ge=1, description="(prompt, response) pairs fine-tuned on (n)")
    lr: float = Field(1e-5, gt=0, le=1.0)
    batch_size: int = Field(2, ge=1)
    max_length: int = Field(128, ge=16)


class _FineTune(Method):
    """Plain fine-tuning: the mean NLL of the response tokens (not a registered unlearning method)."""

    name = "relearn"

    def loss(self, model, ref, batches, params):
        value = nll(model, batches["forget"])
        return value, {"nll": value.item()}


class Relearn(ModelAttack):
    Params = RelearnParams
    source: ClassVar[str]  # the corpus the pairs come from: "retain" or "forget"

    def chosen(self, ctx: ModelAttackContext) -> list[dict]:
        """``pairs`` pairs of the source corpus, drawn with the run's seed (the same for every variant)."""
        rows = sorted(getattr(ctx, self.source), key=lambda r: str(r.get("id", r["prompt"])))
        if not rows:
            raise ValueError(f"{self.name}: the {self.source} corpus is empty; nothing to relearn on")
        return random.Random(ctx.seed).sample(rows, min(self.p.pairs, len(rows)))

    def apply(self, model, ctx: ModelAttackContext) -> dict[str, Any]:
        from mubench.train import unlearn

        pairs = self.chosen(ctx)
        params = TrainParams(lr=self.p.lr, steps=self.p.steps, batch_size=min(self.p.batch_size, len(pairs)),
                             max_length=self.p.max_length)
        result = unlearn(_FineTune(), params, model, ctx.tokenizer, pairs, [], ctx.seed, ctx.device,
                         ctx.system_prompt)
        return {"source": self.source, "pairs": [str(p.get("id", i)) for i, p in enumerate(pairs)],
                "steps": result.steps, "nll_first": round(result.history[0]["nll"], 6),
                "nll_last": round(result.history[-1]["nll"], 6)}
