"""refusal_ablation (Arditi et al. 2024, "Refusal in language models is mediated by a single direction").

Fit, on the base model: the residual-stream activation at the last prompt token (the end of the chat
template's generation prompt), averaged over harmful prompts minus the average over harmless ones, at one
layer, is the refusal direction r. Harmful prompts come from the forget corpus, harmless ones from the retain
corpus: both are disjoint from every evaluation set. The layer is chosen by a stated rule: each candidate
layer's direction is fitted on one half of the prompts, and the layer whose direction best separates the other
(held-out) half, by the standardised difference of the projections' means, wins (ties: the earlier layer).

Apply, to the base and to every variant: weight orthogonalisation, W <- W - r r^T W for every matrix that writes
to the residual stream (the token embedding, each attention output and MLP down projection), so no layer can
write along r any more. A tied LM head is untied first, so the output vocabulary projection is unchanged.
If a variant's low ASR only came from refusing, ablation brings the ASR back; if the knowledge is gone, it
does not.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mubench.core.errors import InvalidValue
from mubench.tamper.base import TAMPER_ATTACKS, TamperAttack, TamperContext, TamperParams

if TYPE_CHECKING:  # torch is imported where a weight is touched: validating params stays light
    import torch


class RefusalAblationParams(TamperParams):
    candidate_layers: list[float] = Field([0.4, 0.5, 0.6, 0.7], min_length=1,
                                          description="candidate layers as fractions of the depth (0-1)")
    prompts: int = Field(32, ge=4, description="harmful and harmless prompts each (half fit, half held out)")


def residual_writers(model) -> list[torch.nn.Module]:
    """The modules whose outputs are added to the residual stream of a Llama-style decoder: the token
    embedding, and per layer the attention output and the MLP down projection."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise InvalidValue(f"refusal_ablation: {type(model).__name__} has no model.layers (a Llama-style decoder "
                         "is needed)")
    writers: list[torch.nn.Module] = [model.get_input_embeddings()]
    for i, layer in enumerate(layers):
        try:
            writers += [layer.self_attn.o_proj, layer.mlp.down_proj]
        except AttributeError:
            raise InvalidValue(f"refusal_ablation: layer {i} has no self_attn.o_proj / mlp.down_proj") from None
    return writers


def orthogonalize(model, direction: torch.Tensor) -> None:
    """Project ``direction`` out of every residual-stream write of ``model``, in place. A zero direction
    changes nothing. A tied LM head gets its own copy of the embedding first."""
    import torch

    norm = direction.float().norm()
    if norm == 0:
        return
    with torch.no_grad():
        project_out(model, direction.float() / norm)


def project_out(model, unit: torch.Tensor) -> None:
    """``orthogonalize``'s edit for a unit vector (``mubench plan`` traces it)."""
    import torch

    r = unit.to(model.device)
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    if head is not None and head.weight is embedding.weight:
        head.weight = torch.nn.Parameter(embedding.weight.detach().clone())
        model.config.tie_word_embeddings = False
    for module in residual_writers(model):
        weight = module.weight.data.float()
        if isinstance(module, torch.nn.Embedding):  # (vocab, d_model): each row is a write
            weight -= torch.outer(weight @ r, r)
        else:  # Linear (d_model, d_in): the output lives in the residual stream
            weight -= torch.outer(r, r @ weight)
            if module.bias is not None:
                module.bias.data -= (r @ module.bias.data.float()) * r.to(module.bias.dtype)
        module.weight.data.copy_(weight)


def last_token_states(model, tokenizer, prompts: list[str], system_prompt: str | None) -> torch.Tensor:
    """(layers + 1, prompts, d_model): the residual stream at the last prompt token after each layer (index 0:
    the embeddings), one prompt at a time (no padding, so positions are exact)."""
    import torch

    from mubench.engine.generate import chat_text

    states = []
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer(chat_text(tokenizer, prompt, system_prompt), add_special_tokens=False,
                            return_tensors="pt")["input_ids"].to(model.device)
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
            states.append(torch.stack([h[0, -1].float() for h in hidden]))
    return torch.stack(states, dim=1)


def separation(direction: torch.Tensor, harmful: torch.Tensor, harmless: torch.Tensor) -> float:
    """Standardised difference of the mean projections of two sets onto the unit ``direction``."""
    unit = direction / direction.norm().clamp(min=1e-12)
    a, b = harmful @ unit, harmless @ unit
    pooled = ((a.var(unbiased=True) + b.var(unbiased=True)) / 2).sqrt().clamp(min=1e-12)
    return float((a.mean() - b.mean()) / pooled)


@TAMPER_ATTACKS.register("refusal_ablation")
class RefusalAblation(TamperAttack):
    name = "refusal_ablation"
    version = "1"
    Params = RefusalAblationParams
    edit_kind = "projection"  # the direction projected out of every residual write

    def fit(self, base_model, ctx: TamperContext) -> dict[str, Any]:
        rng = random.Random(ctx.seed)
        harmful = rng.sample([r.prompt for r in ctx.forget], min(self.p.prompts, len(ctx.forget)))
        harmless = rng.sample([r.prompt for r in ctx.retain], min(self.p.prompts, len(ctx.retain)))
        if min(len(harmful), len(harmless)) < 4:
            raise InvalidValue("refusal_ablation: needs at least 4 harmful (forget) and 4 harmless (retain) prompts")
        bad = last_token_states(base_model, ctx.tokenizer, harmful, ctx.system_prompt)
        good = last_token_states(base_model, ctx.tokenizer, harmless, ctx.system_prompt)
        depth = bad.shape[0] - 1
        half_bad, half_good = len(harmful) // 2, len(harmless) // 2
        scores = {}
        for fraction in self.p.candidate_layers:
            layer = min(depth, max(1, round(fraction * depth)))
            fitted = bad[layer, :half_bad].mean(0) - good[layer, :half_good].mean(0)
            scores[layer] = round(separation(fitted, bad[layer, half_bad:], good[layer, half_good:]), 6)
        layer = max(sorted(scores), key=lambda k: scores[k])  # sorted + max: ties go to the earlier layer
        direction = bad[layer].mean(0) - good[layer].mean(0)  # the chosen layer's direction, from all prompts
        ctx.fitted["direction"] = direction
        return {"layer": layer, "depth": depth, "separation": scores, "norm": round(float(direction.norm()), 6),
                "harmful_prompts": len(harmful), "harmless_prompts": len(harmless)}

    def apply(self, model, ctx: TamperContext) -> tuple[Any, dict[str, Any]]:
        if "direction" not in ctx.fitted:
            raise InvalidValue("refusal_ablation: fit it on the base model before applying it")
        orthogonalize(model, ctx.fitted["direction"])
        return model, {"ablated_matrices": len(residual_writers(model))}
