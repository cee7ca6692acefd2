"""Gradient ascent (GA): maximise the NLL of the forget responses, i.e. minimise -NLL_theta(y_f)."""

from __future__ import annotations

from mubench.methods.base import METHODS, Method
from mubench.training.params import TrainParams


class GAParams(TrainParams):
    """Defaults: lr 1e-5 for 7B models (Yao et al. 2023); the smoke profile tunes lr/steps for 135M."""


@METHODS.register("ga")
class GradientAscent(Method):
    name = "ga"
    Params = GAParams
    p: GAParams

    def loss(self, model, ref, batches):
        from mubench.training.losses import nll

        forget_nll = nll(model, batches["forget"])
        return -forget_nll, {"forget_nll": forget_nll.item()}
