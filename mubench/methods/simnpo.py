"""SimNPO (Fan et al. 2024): reference-free, length-normalised NPO plus a retain NLL term.

loss = -(2/beta) * E log sigmoid(-(beta/|y_f|) * log pi_theta(y_f|x) - gamma) + alpha * NLL_theta(y_r)
"""

from __future__ import annotations

from pydantic import Field

from mubench.methods.base import METHODS, Method
from mubench.training.params import TrainParams


class SimNPOParams(TrainParams):
    beta: float = Field(2.5, gt=0, description="2.5-4.5 in the SimNPO paper")
    gamma: float = Field(0.0, ge=0, description="reward margin; 0 in the paper's TOFU setting")
    alpha: float = Field(1.0, ge=0, description="retain NLL weight")


@METHODS.register("simnpo")
class SimNPO(Method):
    name = "simnpo"
    Params = SimNPOParams
    p: SimNPOParams

    def streams(self, forget, retain, seed):
        return {"forget": forget, "retain": retain}

    def loss(self, model, ref, batches):
        import torch.nn.functional as F

        from mubench.training.losses import mean_logprob, nll

        normalised = mean_logprob(model, batches["forget"])
        forget_term = -(2.0 / self.p.beta) * F.logsigmoid(-self.p.beta * normalised - self.p.gamma).mean()
        retain_nll = nll(model, batches["retain"])
        return forget_term + self.p.alpha * retain_nll, {"simnpo": forget_term.item(),
                                                          "retain_nll": retain_nll.item()}
