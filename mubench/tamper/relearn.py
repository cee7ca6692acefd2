"""Relearning (Łucki et al. 2024; the relearning attacks of the WMDP/RMU line): a few steps of plain
fine-tuning on a handful of pairs. If unlearning only suppressed the harmful behaviour, it comes back.

Shared by ``relearn_benign`` (unrelated benign pairs) and ``relearn_forget`` (in-domain pairs of the forget
corpus); both run the unlearning stages' own training loop (``mubench.training.loop``), seeded, with the
next-token loss on the responses.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from pydantic import Field

from mubench.core.errors import InvalidValue
from mubench.methods.base import Method
from mubench.tamper.base import TamperAttack, TamperContext
from mubench.training.params import TrainParams


class RelearnParams(TrainParams):
    """The unlearning loop's own settings (lr, batch, LoRA, checkpointing: the paper profile trains 7B models
    with LoRA, and relearning must fit where unlearning did), with relearning's defaults, plus ``pairs``."""

    steps: int = Field(10, ge=1, description="optimizer steps (k)")
    pairs: int = Field(10, ge=1, description="(prompt, response) pairs fine-tuned on (n)")
    batch_size: int = Field(2, ge=1)
    max_length: int = Field(128, ge=16)

    def train_params(self, pairs: int) -> TrainParams:
        """The training loop's settings (the batch capped at the pairs there are)."""
        return TrainParams(**{**self.model_dump(exclude={"pairs"}), "batch_size": min(self.batch_size, pairs)})


class FineTune(Method):
    """Plain fine-tuning: the mean NLL of the response tokens (not a registered unlearning method)."""

    name = "relearn"

    def loss(self, model, ref, batches):
        from mubench.training.losses import nll

        value = nll(model, batches["forget"])
        return value, {"nll": value.item()}


class Relearn(TamperAttack):
    Params = RelearnParams
    p: RelearnParams
    edit_kind = "training"
    source: ClassVar[str]  # the corpus the pairs come from: "retain" or "forget"

    def training(self) -> tuple[Method, TrainParams]:
        """Plain fine-tuning on ``pairs`` pairs with the attack's settings."""
        return FineTune(self.p.train_params(self.p.pairs)), self.p.train_params(self.p.pairs)

    def chosen(self, ctx: TamperContext) -> list[dict]:
        """``pairs`` pairs of the source corpus, drawn with the run's seed (the same for every variant)."""
        rows = sorted(getattr(ctx, self.source), key=lambda r: r.id)
        if not rows:
            raise InvalidValue(f"{self.name}: the {self.source} corpus is empty; nothing to relearn on")
        return random.Random(ctx.seed).sample(rows, min(self.p.pairs, len(rows)))

    def load_dtype(self, device: str):
        """The unlearn stage's rule: fp32 master weights unless LoRA trains over a bf16 base (GPU)."""
        from mubench.training.loop import weights_dtype

        return weights_dtype(self.p, device)

    def merges_adapter(self) -> bool:
        """Relearning with LoRA stacks its adapter on a LoRA variant's (nothing rounded into a bf16 base); full
        fine-tuning trains merged weights (fp32 master weights, where the merge is exact enough)."""
        return self.p.lora is None

    def apply(self, model, ctx: TamperContext) -> tuple[Any, dict[str, Any]]:
        from mubench.training.loop import unlearn

        pairs = self.chosen(ctx)
        result = unlearn(FineTune(self.p.train_params(len(pairs))), model, ctx.tokenizer, pairs, [], ctx.seed,
                         ctx.device, ctx.system_prompt)
        return result.model, {"source": self.source, "pairs": [p.id for p in pairs],
                              "steps": result.steps, "nll_first": round(result.history[0]["nll"], 6),
                              "nll_last": round(result.history[-1]["nll"], 6)}
