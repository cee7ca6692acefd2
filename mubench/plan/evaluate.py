"""The evaluate stage's memory plan: one generation batch (``generate``'s prefill and preallocated cache), one
utility batch (``utility``'s scorer; a generation batch for GSM8K) and one drift batch (``drift``: variant and
base resident together), traced on fake tensors (``trace``) at full depth.

Inference is traced at full depth, not extrapolated from two small depths. Its peak phase changes with depth.
At 2-4 layers the peak is the prefill's logits. At 32 it is the preallocated KV cache plus the prefill's copies.
So a line through two small depths misses the full-depth peak by 40% for Llama-2-7B's generation (54 vs
92 GB). A full-depth inference trace takes seconds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from mubench.plan.generation import plan_generation
from mubench.plan.stage import PlanSettings, StagePlan, build, inference_plan
from mubench.plan.trace import extrapolate, fake_tensors, measure


def plan_scoring(stage: str, config, batch: int, context: int, batch_key: str, dtype=torch.bfloat16) -> StagePlan:
    """One utility batch as ``utility`` scores it: ``batch`` contexts of ``context`` tokens, four one-token
    choices each on copies of the context's cache rows."""
    from mubench.scoring.utility import score_batch

    def trace(cfg) -> dict[str, int]:
        with fake_tensors():
            model = build(cfg, dtype).eval()
            groups = [(list(range(1, context + 1)), [[5], [6], [7], [8]]) for _ in range(batch)]
            return measure(lambda: score_batch(model, groups, batch), model)

    parts, how = extrapolate(config, trace, None)
    return inference_plan(stage, parts, how, batch, batch_key, config, context)


def plan_drift(stage: str, config, batch: int, length: int, batch_key: str, with_base: bool,
               dtype=torch.bfloat16) -> StagePlan:
    """One drift batch as ``drift`` scores it: ``batch`` pairs of ``length`` tokens through the variant and the
    base (a second resident copy of the weights when ``with_base``)."""
    from mubench.scoring.drift import drift_batch
    from mubench.training.losses import IGNORE

    def trace(cfg) -> dict[str, int]:
        with fake_tensors():
            model = build(cfg, dtype).eval()
            ids = torch.ones((batch, length), dtype=torch.long)
            labels = torch.full((batch, length), IGNORE, dtype=torch.long)
            labels[:, length // 2:] = 1
            data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

            def step() -> None:
                with torch.inference_mode():
                    drift_batch(model, model if not with_base else _Twin(model), data)
            return measure(step, model)

    parts, how = extrapolate(config, trace, None)
    if with_base:
        parts = {**parts, "base parameters": parts.get("parameters", 0),
                 "total": parts.get("total", 0) + parts.get("parameters", 0)}
        how += "; the base's weights are a second resident copy"
    return inference_plan(stage, parts, how, batch, batch_key, config, length)


class _Twin:
    """The base model's stand-in in a drift trace: the variant's own forward (same shapes), not the same object,
    so the base's logits are held as a second tensor like in a real run."""

    def __init__(self, model) -> None:
        self.model = model

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)


def model_of(name: str) -> str:
    """The model of a plan's display name (``MODEL``, ``MODEL/VARIANT``, ``MODEL (tampered)``)."""
    return name.split("/")[0].split(" ")[0]


def batch_key(params, section: str, model: str) -> str:
    """The params key that sets ``model``'s batch of ``section`` (named in a plan's fix)."""
    return (f"{section}.batch_size_by_model.{model}"
            if model in getattr(params, section).batch_size_by_model else f"{section}.batch_size")


def utility_plans(params, config, name: str, generating: Sequence[str],
                  settings: PlanSettings = PlanSettings()) -> list[StagePlan]:
    """One scoring batch when a multiple-choice task is scored; one generation batch when a generation task
    (``generating``: GSM8K) is: the model's utility batch of few-shot prompts of ``utility_context_tokens`` plus
    ``utility.generation.max_gen_toks`` new tokens."""
    model = model_of(name)
    batch, key = params.batches(model)["utility"], batch_key(params, "utility", model)
    plans = []
    if len(generating) < len(params.data.utility):
        plans.append(plan_scoring(f"utility {name}", config, batch, settings.utility_context_tokens, key))
    if generating:
        plans.append(plan_generation(f"utility generation {name}", config, batch, settings.utility_context_tokens,
                                     params.utility.generation.max_gen_toks, key,
                                     graphs=params.generation.graphs))
    return plans


def evaluate_plans(params, checkpoint: Path, name: str, with_base: bool = True, generating: Sequence[str] = (),
                   settings: PlanSettings = PlanSettings()) -> list[StagePlan]:
    """The evaluate stage's generation, judge, utility and drift batches on a checkpoint's architecture
    (``with_base``: a variant, scored against a resident base; ``generating``: the utility tasks scored by
    generation)."""
    from mubench.engine.models import checkpoint_config
    from mubench.plan.judge import judge_plans

    config = checkpoint_config(checkpoint)
    model = model_of(name)
    batches = params.batches(model)
    generation = plan_generation(f"generate {name}", config, batches["generation"], settings.prompt_tokens,
                                 params.generation.max_new_tokens, batch_key(params, "generation", model),
                                 graphs=params.generation.graphs)
    # an LLM judge reads while this checkpoint is still loaded
    return [generation, *judge_plans(params, settings, resident=generation.parts.get("parameters", 0), model=model),
            *utility_plans(params, config, name, generating, settings),
            plan_drift(f"drift {name}", config, batches["utility"],
                       settings.prompt_tokens + params.generation.max_new_tokens, batch_key(params, "utility", model),
                       with_base)]
