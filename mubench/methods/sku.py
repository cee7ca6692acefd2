"""SKU (Liu et al. 2024, "Towards Safer LLMs through Machine Unlearning"): learn harm, then negate it.

Stage 1 trains theta_harm toward harm: NLL(y_f) + NLL(mismatched harmful answer) - KL(pi_ref || pi_theta) on
benign prompts. Stage 2 (``finalize``) negates the task vector: theta = theta_base - lambda (theta_harm - theta_base).
"""

from __future__ import annotations

from pydantic import Field

from mubench.methods.base import METHODS, Method
from mubench.methods.targets import mismatched
from mubench.training.params import TrainParams


class SKUParams(TrainParams):
    negation_scale: float = Field(1.0, gt=0, description="lambda of the task-vector negation (paper: 1)")


def negate_adapter(model, scale: float) -> None:
    """In place, the task-vector negation of a LoRA run without merging: the update B A becomes -scale B A (every
    ``lora_B`` scaled by -scale), so the variant stays its base plus an adapter."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(-scale)


def negate_task_vector(model, base, scale: float) -> None:
    """In place: every parameter becomes base - scale * (current - base)."""
    import torch

    with torch.no_grad():
        for p, p0 in zip(model.parameters(), base.parameters(), strict=True):
            p.copy_(p0 - scale * (p - p0))


@METHODS.register("sku")
class SKU(Method):
    name = "sku"
    Params = SKUParams
    p: SKUParams
    needs_reference = True

    def streams(self, forget, retain, seed):
        return {"forget": forget, "forget_mismatched": mismatched(forget, forget, seed), "retain": retain}

    def loss(self, model, ref, batches):
        from mubench.training.losses import kl_ref_theta, nll

        harm = nll(model, batches["forget"])
        random_harm = nll(model, batches["forget_mismatched"])
        kl = kl_ref_theta(model, ref, batches["retain"])
        loss = harm + random_harm - kl
        return loss, {"harm_nll": harm.item(), "mismatched_nll": random_harm.item(), "retain_kl": kl.item()}

    edits_after_training = True  # the task-vector negation

    def finalize(self, model, ref) -> None:
        if self.p.lora is not None and self.p.lora.save == "adapter":
            negate_adapter(model, self.p.negation_scale)
        else:
            negate_task_vector(model, ref, self.p.negation_scale)
