"""DPO with the refusal preferred over the model's harmful response (Rafailov et al. 2023; DESIGN section 6).

loss = -(2/beta) * E log sigmoid(beta * [(log pi_theta - log pi_ref)(y_refusal) - (log pi_theta - log pi_ref)(y_f)])
"""

from __future__ import annotations

from pydantic import Field

from mubench.methods.base import METHODS, Method
from mubench.methods.targets import with_refusals
from mubench.training.params import TrainParams


class DPOParams(TrainParams):
    beta: float = Field(0.1, gt=0, description="0.1 as in DPO / NPO")


@METHODS.register("dpo")
class RefusalDPO(Method):
    name = "dpo"
    Params = DPOParams
    p: DPOParams
    needs_reference = True

    def streams(self, forget, retain, seed):
        return {"forget": forget, "forget_refusal": with_refusals(forget)}

    def loss(self, model, ref, batches):
        import torch

        from mubench.training.losses import preference_loss, sequence_logprob

        chosen, rejected = batches["forget_refusal"], batches["forget"]
        theta_chosen, _ = sequence_logprob(model, chosen)
        theta_rejected, _ = sequence_logprob(model, rejected)
        with torch.no_grad():
            ref_chosen, _ = sequence_logprob(ref, chosen)
            ref_rejected, _ = sequence_logprob(ref, rejected)
        margin = (theta_chosen - ref_chosen) - (theta_rejected - ref_rejected)
        loss = preference_loss(margin, self.p.beta)
        return loss, {"dpo": loss.item(), "margin": margin.mean().item()}
