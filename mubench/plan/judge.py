"""The LLM judges' plan, and the architectures the plan reads (``mubench/plan/arch/``).

A judge runs while the model it judges is still loaded: evaluate frees the evaluated model only after judging,
and the tamper stage keeps the attacked copy. So a judge's peak counts that model's weights too.
"""

from __future__ import annotations

import json
from pathlib import Path

from mubench.plan.generation import plan_generation
from mubench.plan.roofline import time_generation
from mubench.plan.stage import PlanError, PlanSettings, StagePlan

ARCH_DIR = Path(__file__).with_name("arch")


def hub_arch_file(repo: str) -> Path:
    return ARCH_DIR / f"{repo.replace('/', '__')}.json"


def arch_config(candidates: list[Path], what: str):
    from transformers import AutoConfig

    for path in candidates:
        if path.is_file():
            fields = json.loads(path.read_text(encoding="utf-8"))
            return AutoConfig.for_model(**{k: v for k, v in fields.items() if k != "architectures"})
    raise PlanError(f"plan: no architecture for {what}: add {candidates[-1]} (its config.json) or materialise it "
                    "first (`mubench model NAME`)")


def judge_plans(params, settings: PlanSettings, resident: int = 0, judged: float = 0,
                model: str | None = None) -> list[StagePlan]:
    """The LLM judges a profile uses, at their batch size over prompt + response + template tokens. The judge
    runs while the evaluated model is still loaded (evaluate frees it only after judging): ``resident`` bytes,
    the largest evaluated model's weights, are counted in its peak. ``judged``: the responses it reads in the
    whole run (its time). ``model``: the evaluated model, whose ``judge.batch_size_by_model`` applies."""
    from mubench.judges import JUDGES
    from mubench.judges.llm import LlmJudge

    plans = []
    for name in dict.fromkeys((params.judge.safety, params.judge.oversafety)):
        cls = JUDGES.entry(name)
        if not issubclass(cls, LlmJudge):
            continue
        options = cls.Params(**params.judge.options.get(name, {}))
        local = Path(options.model) / "config.json"
        config = arch_config([local, hub_arch_file(options.model)], f"judge '{name}' ({options.model})")
        tokens = settings.prompt_tokens + params.generation.max_new_tokens + settings.judge_template_tokens
        batch = params.batches(model)["judge"] if model else None
        key = f"judge.batch_size_by_model.{model}" if batch else f"judge.options.{name}.batch_size"
        plan = plan_generation(f"judge {name}" + (f" ({model})" if model else ""), config, batch or options.batch_size,
                               tokens, options.max_new_tokens, key)
        if resident:
            plan.parts = {**plan.parts, "evaluated model (resident)": resident}
            plan.peak += resident
            plan.how += "; the evaluated model's weights stay loaded while it judges"
        judge_prompt = settings.mean_prompt_tokens + params.generation.max_new_tokens + settings.judge_template_tokens
        time_generation(plan, config, judged, judge_prompt, options.max_new_tokens)
        plans.append(plan)
    return plans
