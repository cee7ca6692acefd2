"""Negative Preference Optimization (Zhang et al. 2024), with an optional retain NLL term (NPO-RT)."""

from __future__ import annotations

from pydantic import Field

from mubench.methods.base import METHODS, Method
from mubench.training.params import TrainParams


class NPOParams(TrainParams):
    beta: float = Field(0.1, gt=0, description="inverse temperature; 0.1 in the NPO paper")
    retain_weight: float = Field(0.0, ge=0, description="weight of NLL on retain (0 = NPO, >0 = NPO-RT)")


@METHODS.register("npo")
class NPO(Method):
    name = "npo"
    Params = NPOParams
    p: NPOParams
    needs_reference = True

    def streams(self, forget, retain, seed):
        # NPO-RT (retain_weight > 0) also reads the retain stream
        return {"forget": forget, "retain": retain} if self.p.retain_weight > 0 else {"forget": forget}

    def loss(self, model, ref, batches):
        import torch

        from mubench.training.losses import nll, npo_loss, sequence_logprob

        forget = batches["forget"]
        logp_theta, _ = sequence_logprob(model, forget)
        with torch.no_grad():
            logp_ref, _ = sequence_logprob(ref, forget)
        loss = npo_loss(logp_theta, logp_ref, self.p.beta)
        logs = {"npo": loss.item(), "forget_logratio": (logp_theta - logp_ref).mean().item()}
        if self.p.retain_weight > 0:
            retain_nll = nll(model, batches["retain"])
            loss = loss + self.p.retain_weight * retain_nll
            logs["retain_nll"] = retain_nll.item()
        return loss, logs
