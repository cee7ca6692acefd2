"""Safe Unlearning (Zhang et al. 2024, "Safe Unlearning: A Surprisingly Effective and Generalizable Solution").

loss = NLL(y_helpful | benign) + theta * NLL(y_refusal | harmful)
       + alpha * (-log sigmoid(-beta * [lbar_theta(y_f) - lbar_ref(y_f)])),  lbar = length-normalised log-prob.
"""

from __future__ import annotations

from pydantic import Field

from mubench.methods.base import METHODS, Method
from mubench.methods.targets import with_refusals
from mubench.training.params import TrainParams


class SafeUnlearningParams(TrainParams):
    alpha: float = Field(0.3, ge=0, description="unlearning weight (paper: 0.3)")
    beta: float = Field(1.0, gt=0, description="sigmoid temperature (paper: 1)")
    theta: float = Field(0.5, ge=0, description="refusal NLL weight (paper: 0.5)")


@METHODS.register("safe_unlearning")
class SafeUnlearning(Method):
    name = "safe_unlearning"
    Params = SafeUnlearningParams
    p: SafeUnlearningParams
    needs_reference = True

    def streams(self, forget, retain, seed):
        return {"forget": forget, "forget_refusal": with_refusals(forget), "retain": retain}

    def loss(self, model, ref, batches):
        import torch
        import torch.nn.functional as F

        from mubench.training.losses import mean_logprob, nll

        helpful = nll(model, batches["retain"])
        refusal = nll(model, batches["forget_refusal"])
        theta_lbar = mean_logprob(model, batches["forget"])
        with torch.no_grad():
            ref_lbar = mean_logprob(ref, batches["forget"])
        unlearn = -F.logsigmoid(-self.p.beta * (theta_lbar - ref_lbar)).mean()
        loss = helpful + self.p.theta * refusal + self.p.alpha * unlearn
        return loss, {"helpful_nll": helpful.item(), "refusal_nll": refusal.item(), "unlearn": unlearn.item()}
