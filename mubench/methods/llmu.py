"""LLMU (Yao et al. 2023, "Large Language Model Unlearning"): gradient ascent + random answers + retain KL.

loss = eps1 * (-NLL(y_f | x_f)) + eps2 * NLL(y_rand | x_f) + eps3 * KL(pi_ref || pi_theta) on retain,
with y_rand a benign answer to a different prompt (the model's own retain responses, deranged).
"""

from __future__ import annotations

from pydantic import Field

from mubench.methods.base import METHODS, Method
from mubench.methods.targets import mismatched
from mubench.training.params import TrainParams


class LLMUParams(TrainParams):
    eps1: float = Field(0.5, ge=0, description="gradient-ascent weight (paper: 0.5)")
    eps2: float = Field(1.0, ge=0, description="random-answer weight (paper: 1)")
    eps3: float = Field(1.0, ge=0, description="retain KL weight (paper: 1)")


@METHODS.register("llmu")
class LLMU(Method):
    name = "llmu"
    Params = LLMUParams
    p: LLMUParams
    needs_reference = True

    def streams(self, forget, retain, seed):
        return {"forget": forget, "forget_random": mismatched(forget, retain, seed), "retain": retain}

    def loss(self, model, ref, batches):
        from mubench.training.losses import kl_ref_theta, nll

        forget_nll = nll(model, batches["forget"])
        random_nll = nll(model, batches["forget_random"])
        kl = kl_ref_theta(model, ref, batches["retain"])
        loss = -self.p.eps1 * forget_nll + self.p.eps2 * random_nll + self.p.eps3 * kl
        return loss, {"forget_nll": forget_nll.item(), "random_nll": random_nll.item(), "retain_kl": kl.item()}
