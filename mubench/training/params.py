"""What the training loop trains with: the hyperparameters every method shares (``TrainParams``), LoRA's, and
the contract the loop reads from a method (``Objective``; ``mubench.methods.base.Method`` implements it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from pydantic import Field

from mubench.core.settings import MAX_BATCH, Settings

if TYPE_CHECKING:
    import torch

    from mubench.core.records import CorpusPair

LLAMA_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraParams(Settings):
    """LoRA (PEFT) instead of full fine-tuning; saved as an adapter (default: the variant is its base plus the
    adapter, loaded unmerged, so a small update is never rounded into a bf16 base) or merged into the weights."""

    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(LLAMA_LINEAR), min_length=1)
    save: Literal["merged", "adapter"] = Field("adapter", description="adapter: only the LoRA weights, plus the "
                                                                      "hash of the base they apply to")


class TrainParams(Settings):
    """What every method trains with (``method_params.NAME``); methods add their own knobs."""

    lr: float = Field(1e-5, gt=0, le=1.0, description="above 1 no Adam step is meaningful")
    steps: int = Field(20, ge=1)
    batch_size: int = Field(8, ge=1, le=MAX_BATCH)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(256, ge=16)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    lora: LoraParams | None = Field(None, description="null = full fine-tuning")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward: less memory, "
                                                            "about one more forward of compute")


class Objective(Protocol):
    """What ``train`` calls on a method: the streams its loss reads, the loss, and the optional hooks it declares
    (``chooses_weights`` with ``prepare``, ``edits_after_training`` with ``finalize``)."""

    name: ClassVar[str]
    p: TrainParams  # the settings it was made with: its own knobs and the loop's (lr, steps, LoRA, ...)
    needs_reference: ClassVar[bool]
    chooses_weights: ClassVar[bool]
    edits_after_training: ClassVar[bool]

    def streams(self, forget: list[CorpusPair], retain: list[CorpusPair], seed: int
                ) -> dict[str, list[CorpusPair]]: ...

    def settings_problem(self, params: TrainParams) -> str | None: ...

    def prepare(self, model, seed: int) -> None: ...

    def loss(self, model, ref, batches: dict[str, dict[str, torch.Tensor]]): ...

    def finalize(self, model, ref) -> None: ...
