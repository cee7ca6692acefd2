"""One generation batch's plan: prefill and the preallocated cache, through the engine's own code (read by the
evaluate, tamper and judge plans)."""

from __future__ import annotations

import torch

from mubench.plan.stage import StagePlan, build, inference_plan
from mubench.plan.trace import extrapolate, fake_tensors, measure


def generation_step(model, batch: int, prompt: int, new_tokens: int, graphs: bool = False) -> None:
    """One generation batch as ``generate`` runs it (on ``model``'s device): prefill of ``batch`` prompts of
    ``prompt`` tokens, their keys/values copied into the preallocated cache of ``prompt + new_tokens``
    positions (``graphs``: rounded up as graph decoding rounds it), one decoding step. The plan traces it; tests
    and benchmarks measure it for real."""
    from mubench.engine.generate import PromptRow, batch_cache, graph_cache_length, prefill_rows
    from mubench.engine.kv import CACHE_ARG

    device = next(model.parameters()).device
    rows = [PromptRow(list(range(1, prompt + 1))) for _ in range(batch)]
    with torch.inference_mode():
        prefill_rows(model, rows, 0)
        head = prompt - 1
        length = head + 1 + new_tokens
        cache = batch_cache(model, rows, head, graph_cache_length(length) if graphs else length)
        model(input_ids=torch.ones((batch, 1), dtype=torch.long, device=device),
              attention_mask=torch.ones((batch, head + 1), dtype=torch.long, device=device),
              cache_position=torch.tensor([head], device=device), use_cache=True, **{CACHE_ARG: cache})


def plan_generation(stage: str, config, batch: int, prompt: int, new_tokens: int, batch_key: str,
                    dtype=torch.bfloat16, graphs: bool = False) -> StagePlan:
    """``generation_step``'s peak on ``config``'s architecture (``graphs``: decoded as ``generation.decode:
    graphs`` decodes, which the plan's time then marks)."""

    def trace(cfg) -> dict[str, int]:
        with fake_tensors():
            model = build(cfg, dtype).eval()
            return measure(lambda: generation_step(model, batch, prompt, new_tokens, graphs), model)

    parts, how = extrapolate(config, trace, None)
    plan = inference_plan(stage, parts, how, batch, batch_key, config, prompt + new_tokens)
    plan.graphs = graphs
    return plan
