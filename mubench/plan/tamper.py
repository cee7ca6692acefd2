"""The tamper stages' memory plan: each relearning attack's optimisation step (``train``'s loop, as
``unlearn_plan`` traces it), the refusal-direction ablation's weight edit, and the attacked copy's generation
batch (plus its utility batches when ``tamper.utility`` is on), traced on fake tensors (``memory``).

The base's stage also fits the refusal direction: one prompt at a time with every layer's hidden state kept,
far below a generation batch, so it is not planned separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from mubench.plan.evaluate import batch_key, model_of, utility_plans
from mubench.plan.generation import plan_generation
from mubench.plan.stage import PlanSettings, StagePlan, build
from mubench.plan.trace import extrapolate, fake_tensors, measure
from mubench.plan.unlearn import plan_training


def plan_ablation(stage: str, config, dtype=torch.bfloat16) -> StagePlan:
    """``refusal_ablation.orthogonalize`` on a model loaded in ``dtype``: the weights, the untied LM head's own
    copy (a tied embedding) and the float copies one residual write is edited in."""
    from mubench.tamper.refusal_ablation import project_out

    def trace(cfg) -> dict[str, int]:
        unit = torch.ones(cfg.hidden_size) / cfg.hidden_size ** 0.5
        with fake_tensors(), torch.no_grad():
            model = build(cfg, dtype).eval()
            return measure(lambda: project_out(model, unit), model)

    parts, how = extrapolate(config, trace, None)
    return StagePlan(stage, parts.get("total", 0), parts, 0.0, how + "; the weight edit, no forward")


def plan_tamper(params, config, name: str, generating: Sequence[str] = (),
                       settings: PlanSettings = PlanSettings(), device_dtype=torch.bfloat16) -> list[StagePlan]:
    """Every tamper attack of ``params`` on one checkpoint of ``config``'s architecture (``name``: its label),
    then the attacked copy's evaluation batches (``generating``: the utility tasks scored by generation).
    Compute is that of one checkpoint."""
    from mubench.tamper import TAMPER_ATTACKS

    cfg = params.tamper
    plans = []
    for attack_name in cfg.names:
        attack = TAMPER_ATTACKS.get(attack_name, cfg.options(attack_name))
        if attack.edit_kind == "training":  # every attack declares one of the two (``TamperAttack``)
            method, train = attack.training()
            plans.append(plan_training(f"{attack_name} {name}", method, train, config,
                                       f"tamper.params.{attack_name}", device_dtype))
        else:
            plans.append(plan_ablation(f"{attack_name} {name}", config, device_dtype))
    if cfg.names:
        # plain prompts only (no jailbreak template), so evaluate's prompt length is an upper bound
        model = model_of(name)
        generation = plan_generation(f"generate {name} (tampered)", config, params.batches(model)["generation"],
                                     settings.prompt_tokens, params.generation.max_new_tokens,
                                     batch_key(params, "generation", model), graphs=params.generation.graphs)
        plans.append(generation)
        if cfg.utility:
            plans += utility_plans(params, config, f"{name} (tampered)", generating, settings)
    return plans


def tamper_plans(params, checkpoint: Path, name: str, generating: Sequence[str] = (),
                       settings: PlanSettings = PlanSettings()) -> list[StagePlan]:
    """``plan_tamper`` on a checkpoint's architecture, as the list ``memory.ensure_fits`` checks."""
    from mubench.engine.models import checkpoint_config
    from mubench.plan.judge import judge_plans

    plans = plan_tamper(params, checkpoint_config(checkpoint), name, generating, settings)
    weights = next((p.parts.get("parameters", 0) for p in plans if p.stage.startswith("generate")), 0)
    # an LLM judge reads the attacked copy's answers while the copy is still loaded
    return plans + (judge_plans(params, settings, resident=weights, model=model_of(name)) if params.tamper.names
                    else [])
