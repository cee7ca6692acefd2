"""The evaluate stage's memory plan: one generation batch (``generate``'s prefill and preallocated cache) and
one utility batch (``utility``'s scorer), traced on fake tensors (``memory``)."""

from __future__ import annotations

from pathlib import Path

import torch

from mubench.memory import (
    TRACE_DEPTHS,
    PlanSettings,
    StagePlan,
    build,
    extrapolate,
    fake_tensors,
    inference_plan,
    measure,
)


def plan_generation(stage: str, config, batch: int, prompt: int, new_tokens: int, batch_key: str,
                    dtype=torch.bfloat16) -> StagePlan:
    """One generation batch as ``generate`` runs it: prefill of ``batch`` prompts of ``prompt`` tokens, their
    keys/values copied into the preallocated cache of ``prompt + new_tokens`` positions, one decoding step."""
    from mubench.generate import _batch_cache, _prefill, _Row
    from mubench.kv import CACHE_ARG

    def trace(cfg) -> dict[str, int]:
        with fake_tensors():
            model = build(cfg, dtype).eval()
            rows = [_Row(list(range(1, prompt + 1))) for _ in range(batch)]

            def step() -> None:
                with torch.inference_mode():
                    _prefill(model, rows, 0)
                    head = prompt - 1
                    cache = _batch_cache(model, rows, head, head + 1 + new_tokens)
                    ids = torch.ones((batch, 1), dtype=torch.long)
                    model(input_ids=ids, attention_mask=torch.ones((batch, head + 1), dtype=torch.long),
                          cache_position=torch.tensor([head]), use_cache=True, **{CACHE_ARG: cache})
            return measure(step, model)

    parts, how = extrapolate(config, trace, TRACE_DEPTHS[0])
    return inference_plan(stage, parts, how, batch, batch_key, config, prompt + new_tokens)


def plan_scoring(stage: str, config, batch: int, context: int, batch_key: str, dtype=torch.bfloat16) -> StagePlan:
    """One utility batch as ``utility`` scores it: ``batch`` contexts of ``context`` tokens, four one-token
    choices each on copies of the context's cache rows."""
    from mubench.utility import _score_batch

    def trace(cfg) -> dict[str, int]:
        with fake_tensors():
            model = build(cfg, dtype).eval()
            groups = [(list(range(1, context + 1)), [[5], [6], [7], [8]]) for _ in range(batch)]
            return measure(lambda: _score_batch(model, groups, batch), model)

    parts, how = extrapolate(config, trace, TRACE_DEPTHS[0])
    return inference_plan(stage, parts, how, batch, batch_key, config, context)


def evaluate_plans(params, checkpoint: Path, name: str, settings: PlanSettings = PlanSettings()) -> list[StagePlan]:
    """The evaluate stage's generation batch and utility batch on a checkpoint's architecture."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(checkpoint)
    return [plan_generation(f"generate {name}", config, params.generation.batch_size, settings.prompt_tokens,
                            params.generation.max_new_tokens, "generation.batch_size"),
            plan_scoring(f"utility {name}", config, params.utility.batch_size, settings.utility_context_tokens,
                         "utility.batch_size")]
