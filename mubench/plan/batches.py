"""``mubench plan --propose-batches``: the largest batch of each model, per kind of work, that fits one card.

A batch is fixed in the profile (``generation`` / ``utility`` / ``judge`` ``.batch_size_by_model``), never
chosen from the card at run time, so every card runs the same batches and gets the same outputs. This proposes
the values to write there: per model, the largest multiple of 8 at which every plan of that kind (generation;
utility scoring, GSM8K generation and drift; an LLM judge with the model resident) needs at most the card's
memory with the margin and the CUDA context. The per-row bytes of a trace at the profile's batch give a first
value; a trace at that value confirms it (stepping down while it does not fit).
"""

from __future__ import annotations

from collections.abc import Callable

from mubench.core.settings import MAX_BATCH
from mubench.core.workspace import Workspace
from mubench.plan.stage import PlanSettings, StagePlan

STEP = 8  # batches are proposed in multiples of 8 (tensor-core friendly, and readable)


def _plans(params, name: str, config, kind: str, batch: int, settings: PlanSettings, generating: list[str],
           adapter: int) -> list[StagePlan]:
    """The plans of ``kind`` for model ``name`` at ``batch``."""
    from mubench.plan.evaluate import plan_drift, utility_plans
    from mubench.plan.generation import plan_generation
    from mubench.plan.judge import judge_plans
    from mubench.plan.profile import with_adapter as add_adapter

    def with_adapter(plan: StagePlan) -> StagePlan:
        add_adapter(plan, adapter)
        return plan

    new_tokens = params.generation.max_new_tokens
    generation = with_adapter(plan_generation(f"generate {name}", config, batch if kind == "generation" else 1,
                                              settings.prompt_tokens, new_tokens, "generation"))
    if kind == "generation":
        return [generation]
    if kind == "utility":
        fixed = params.model_copy(update={"utility": params.utility.model_copy(
            update={"batch_size_by_model": {**params.utility.batch_size_by_model, name: batch}})})
        return [with_adapter(p) for p in utility_plans(fixed, config, name, generating, settings)] + [
            with_adapter(plan_drift(f"drift {name}", config, batch, settings.prompt_tokens + new_tokens, "utility",
                                    True))]
    fixed = params.model_copy(update={"judge": params.judge.model_copy(
        update={"batch_size_by_model": {**params.judge.batch_size_by_model, name: batch}})})
    resident = generation.parts.get("parameters", 0) + adapter
    return judge_plans(fixed, settings, resident=resident, model=name)


def _fits(plans: list[StagePlan], limit: int, settings: PlanSettings) -> bool:
    return all(p.need(settings) <= limit for p in plans)


def propose_batches(params, settings: PlanSettings, limit: int, ws: Workspace = Workspace(),
                    progress: Callable[[str], None] | None = None) -> dict[str, dict[str, int | None]]:
    """{model: {generation, utility, judge}}: the largest batches (multiples of 8, at most ``MAX_BATCH``) whose
    every plan needs at most ``limit`` bytes; judge None where the run has no LLM judge; 0 where even one row
    does not fit."""
    from mubench.datasets import is_generation_task
    from mubench.judges import JUDGES
    from mubench.judges.llm import LlmJudge
    from mubench.plan.profile import adapter_bytes, model_config

    generating = [t for t in params.data.utility if is_generation_task(t)]
    llm_judge = any(issubclass(JUDGES.entry(n), LlmJudge) for n in (params.judge.safety, params.judge.oversafety))
    out: dict[str, dict[str, int | None]] = {}
    for name in params.models:
        config = model_config(name, params.model_zoo[name], ws)
        adapter = adapter_bytes(params, config)
        current = params.batches(name)
        out[name] = {}
        for kind in ("generation", "utility", "judge"):
            if kind == "judge" and not llm_judge:
                out[name][kind] = None
                continue
            if progress:
                progress(f"{name} {kind}")
            start = current[kind] or STEP
            plans = _plans(params, name, config, kind, start, settings, generating, adapter)
            guess = min(p.fitting_batch(limit, settings) for p in plans)
            batch = min(MAX_BATCH, guess // STEP * STEP if guess >= STEP else guess)
            while batch > 0 and not _fits(_plans(params, name, config, kind, batch, settings, generating, adapter),
                                          limit, settings):
                batch = batch - STEP if batch > STEP else batch - 1
            out[name][kind] = batch
    return out


def as_yaml(proposal: dict[str, dict[str, int | None]]) -> str:
    """The proposal as the params.yaml keys that set it."""
    lines = []
    for section in ("generation", "utility", "judge"):
        values = {m: b[section] for m, b in proposal.items() if b[section]}
        if values:
            lines += [f"{section}:", "  batch_size_by_model: {" + ", ".join(f"{m}: {v}" for m, v in values.items())
                      + "}"]
    return "\n".join(lines)
