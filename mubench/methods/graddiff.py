"""Gradient difference: ascend on the forget NLL, descend on the retain NLL: -NLL(y_f) + alpha * NLL(y_r)."""

from __future__ import annotations

from pydantic import Field

from mubench.methods.base import METHODS, Method
from mubench.training.params import TrainParams


class GradDiffParams(TrainParams):
    alpha: float = Field(1.0, ge=0, description="retain weight; 1 in Liu et al. 2022 / Maini et al. 2024")


@METHODS.register("graddiff")
class GradDiff(Method):
    name = "graddiff"
    Params = GradDiffParams
    p: GradDiffParams

    def streams(self, forget, retain, seed):
        return {"forget": forget, "retain": retain}

    def loss(self, model, ref, batches):
        from mubench.training.losses import nll

        forget_nll, retain_nll = nll(model, batches["forget"]), nll(model, batches["retain"])
        return -forget_nll + self.p.alpha * retain_nll, {"forget_nll": forget_nll.item(),
                                                         "retain_nll": retain_nll.item()}
