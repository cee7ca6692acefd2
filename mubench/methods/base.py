"""The method contract and the training hyperparameters every gradient method shares.

A method implements::

    class MyMethod(Method):
        name = "mine"
        Params = MyParams            # a TrainParams subclass: its own knobs, validated from params.yaml
        needs_reference = False      # True: the loop passes a frozen copy of the base model as ``ref``
        def loss(self, model, ref, batches, params) -> (loss_tensor, {"name": float, ...})

``batches`` holds tokenised ``forget`` and ``retain`` batches (input_ids, attention_mask, labels with -100
on prompt and padding tokens). Register with ``@METHODS.register("mine")`` and import it in __init__.py.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(1e-5, gt=0)
    steps: int = Field(20, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(256, ge=16)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)


class Method:
    name: ClassVar[str]
    Params: ClassVar[type[TrainParams]] = TrainParams
    needs_reference: ClassVar[bool] = False
    uses_retain: ClassVar[bool] = False

    def loss(self, model, ref, batches: dict[str, dict[str, torch.Tensor]], params: TrainParams):
        raise NotImplementedError
