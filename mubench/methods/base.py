"""The method contract and the training hyperparameters every gradient method shares.

A method implements::

    class MyMethod(Method):
        name = "mine"
        Params = MyParams            # a TrainParams subclass: its own knobs, validated from params.yaml
        needs_reference = False      # True: the loop passes a frozen copy of the base model as ``ref``
        def loss(self, model, ref, batches, params) -> (loss_tensor, {"name": float, ...})

``batches`` holds one tokenised batch per stream (input_ids, attention_mask, labels with -100 on prompt and
padding tokens). By default the streams are ``forget`` (harmful prompt, the model's harmful response) and
``retain`` (benign prompt, the model's response); override ``streams`` to add others (refusals, mismatched
answers). Streams whose names start with ``forget`` are drawn in the same order, so batch i of
``forget_refusal`` holds the same prompts as batch i of ``forget``. Optional hooks: ``prepare`` (e.g. choose the
trainable parameters) and ``finalize`` (e.g. a task-vector edit after training).
Register with ``@METHODS.register("mine")`` and import it in __init__.py.
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

    def streams(self, forget: list[dict], retain: list[dict], seed: int) -> dict[str, list[dict]]:
        """The (prompt, response) lists the loss reads, by stream name."""
        return {"forget": forget, "retain": retain if self.uses_retain else []}

    def prepare(self, model, params: TrainParams, seed: int) -> None:
        """Called before the optimizer is built (all parameters train by default)."""

    def loss(self, model, ref, batches: dict[str, dict[str, torch.Tensor]], params: TrainParams):
        raise NotImplementedError

    def finalize(self, model, ref, params: TrainParams) -> None:
        """Called after the last step, on the unwrapped model."""
