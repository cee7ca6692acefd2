"""RMU (Li et al. 2024, WMDP): steer forget activations at layer l to a fixed random direction, keep retain ones.

loss = mean ||h_l^theta(x_f) - c*u||^2 + alpha * mean ||h_l^theta(x_r) - h_l^ref(x_r)||^2
Only the MLP weights of layers l-2..l train; u is a seeded random unit vector. l is chosen relative to depth
(``layer_fraction`` * number of layers: 7 of 32 in the paper), so it works on 30- and 32-layer models alike.
Activations are taken on response tokens (prompt and padding positions do not count).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from mubench.core.errors import InvalidValue
from mubench.methods.base import METHODS, Method
from mubench.training.params import TrainParams

if TYPE_CHECKING:
    import torch


class RMUParams(TrainParams):
    layer_fraction: float = Field(7 / 32, gt=0, lt=1, description="steered layer / depth; 7/32 in the paper")
    steering_coeff: float = Field(6.5, gt=0, description="c: 6.5-20 in the paper, model-dependent")
    alpha: float = Field(100.0, ge=0, description="retain weight: 100-1200 in the paper")

    @model_validator(mode="after")
    def _no_lora(self) -> RMUParams:
        if self.lora is not None:
            raise InvalidValue("lora: rmu trains the MLP weights of layers l-2..l itself; remove lora")
        return self


def steered_layer(num_layers: int, fraction: float) -> int:
    """The steered layer index for a model of ``num_layers`` (7 for 30 or 32 layers at the paper's 7/32)."""
    return max(0, min(num_layers - 1, round(fraction * num_layers)))


def layer_activations(model, batch: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    """Output of decoder layer ``layer`` at response-token positions: (n_tokens, hidden)."""
    from mubench.training.losses import IGNORE

    # logits_to_keep=1: the LM head is not needed here, only the hidden states
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True,
                logits_to_keep=1)
    hidden = out.hidden_states[layer + 1]  # hidden_states[0] is the embedding output
    return hidden[batch["labels"] != IGNORE].float()


@METHODS.register("rmu")
class RMU(Method):
    name = "rmu"
    Params = RMUParams
    p: RMUParams
    needs_reference = True

    def streams(self, forget, retain, seed):
        return {"forget": forget, "retain": retain}

    chooses_weights = True  # three MLPs below the steered layer

    def prepare(self, model, seed: int) -> None:
        self.layer = steered_layer(model.config.num_hidden_layers, self.p.layer_fraction)
        for p in model.parameters():
            p.requires_grad_(False)
        for index in range(max(0, self.layer - 2), self.layer + 1):
            for p in model.model.layers[index].mlp.parameters():
                p.requires_grad_(True)
        import torch

        generator = torch.Generator().manual_seed(seed)
        direction = torch.rand(model.config.hidden_size, generator=generator)
        self.direction = direction / direction.norm()

    def loss(self, model, ref, batches):
        import torch

        forget_h = layer_activations(model, batches["forget"], self.layer)
        target = self.p.steering_coeff * self.direction.to(forget_h.device)
        forget_loss = ((forget_h - target) ** 2).mean()
        retain_h = layer_activations(model, batches["retain"], self.layer)
        with torch.no_grad():
            retain_ref = layer_activations(ref, batches["retain"], self.layer)
        retain_loss = ((retain_h - retain_ref) ** 2).mean()
        loss = forget_loss + self.p.alpha * retain_loss
        return loss, {"forget_mse": forget_loss.item(), "retain_mse": retain_loss.item()}
