"""``mubench plan``: the memory and compute plan of every accelerator stage of a profile (docs/paper-scale.md).

Each stage's peak memory comes from its own planner (``plan.unlearn``, ``plan.evaluate``, ``plan.tamper``; GCG
and the LLM judges here), run on the architecture of each model (``mubench/plan/arch/``) under fake tensors.
Compute is an estimate: FLOPs = 2 x matmul parameters x tokens per forward (x3 with gradients, x2 for
LoRA/frozen layers), at a stated MFU; row counts come from the profile's sizes, capped at
``PlanSettings.rows_per_dataset``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from mubench.core.workspace import Workspace
from mubench.plan.evaluate import plan_drift, plan_generation, utility_plans
from mubench.plan.tamper import plan_tamper
from mubench.plan.trace import (
    GB,
    TRACE_DEPTHS,
    PlanError,
    PlanSettings,
    StagePlan,
    build,
    check_fits,
    extrapolate,
    fake_tensors,
    gpu_hours,
    inference_plan,
    matmul_params,
    measure,
)
from mubench.plan.unlearn import plan_unlearn

ARCH_DIR = Path(__file__).with_name("arch")


def plan_gcg(stage: str, config, eval_batch: int, tokens: int, dtype=torch.bfloat16) -> StagePlan:
    """GCG's candidate scoring at its shapes: ``eval_batch`` candidates of ``tokens`` tokens in one forward
    (a model forward at gcg.py's shapes, not gcg.py itself; its one-sequence gradient step is smaller)."""

    def trace(cfg) -> dict[str, int]:
        with fake_tensors():
            model = build(cfg, dtype).eval()

            def step() -> None:
                with torch.inference_mode():
                    model(input_ids=torch.ones((eval_batch, tokens), dtype=torch.long), use_cache=True,
                          logits_to_keep=32)
            return measure(step, model)

    parts, how = extrapolate(config, trace, TRACE_DEPTHS[0])
    return inference_plan(stage, parts, how + "; a forward at GCG's candidate shapes", eval_batch,
                           "jailbreaks.params.gcg.eval_batch", config, tokens)


def hub_arch_file(repo: str) -> Path:
    return ARCH_DIR / f"{repo.replace('/', '__')}.json"


def model_config(name: str, spec, ws: Workspace = Workspace()):
    """The transformers config of a zoo model, without its weights (see ``mubench/plan/arch/README.md``)."""
    from transformers import LlamaConfig

    from mubench.core.config import HubModel, TinyRandomModel

    if isinstance(spec, TinyRandomModel):
        return LlamaConfig(vocab_size=259, hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
                           num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
                           num_key_value_heads=spec.num_attention_heads, tie_word_embeddings=True)
    candidates = [ws.checkpoint(name) / "config.json"]
    candidates.append(hub_arch_file(spec.repo) if isinstance(spec, HubModel) else ARCH_DIR / f"{name}.json")
    return arch_config(candidates, f"model '{name}'")


def arch_config(candidates: list[Path], what: str):
    from transformers import AutoConfig

    for path in candidates:
        if path.is_file():
            fields = json.loads(path.read_text(encoding="utf-8"))
            return AutoConfig.for_model(**{k: v for k, v in fields.items() if k != "architectures"})
    raise PlanError(f"plan: no architecture for {what}: add {candidates[-1]} (its config.json) or materialise it "
                    "first (`mubench model NAME`)")


def judge_plans(params, settings: PlanSettings) -> list[StagePlan]:
    """The LLM judges a profile uses, at their batch size over prompt + response + template tokens."""
    from mubench.judges import JUDGES
    from mubench.judges.llm import LlmJudge

    plans = []
    for name in dict.fromkeys((params.judge.safety, params.judge.oversafety)):
        cls = JUDGES.get(name)
        if not issubclass(cls, LlmJudge):
            continue
        options = cls.Params(**params.judge.options.get(name, {}))
        local = Path(options.model) / "config.json"
        config = arch_config([local, hub_arch_file(options.model)], f"judge '{name}' ({options.model})")
        tokens = settings.prompt_tokens + params.generation.max_new_tokens + settings.judge_template_tokens
        plans.append(plan_generation(f"judge {name}", config, options.batch_size, tokens, options.max_new_tokens,
                                     f"judge.options.{name}.batch_size"))
    return plans


def plan_profile(params, settings: PlanSettings = PlanSettings(), ws: Workspace = Workspace(),
                 progress: Callable[[str], None] | None = None, limit: int | None = None) -> list[StagePlan]:
    """Every accelerator stage of ``params``: unlearn per model x method (its compute times the number of
    unlearning seeds), then per model generation, utility (scoring; GSM8K's generation), drift, GCG and the model
    attacks (on the base and every variant), then the LLM judges. With ``limit``
    (bytes), the first stage over it raises PlanError (the remaining traces are cancelled)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    plans: list[StagePlan] = []

    def add(plan: StagePlan) -> None:
        if progress:
            progress(plan.stage)
        if limit is not None:
            check_fits([plan], limit)
        plans.append(plan)

    from mubench.datasets import is_generation_task

    counts = _row_counts(params, settings)
    generating = [t for t in params.data.utility if is_generation_task(t)]  # no data yet: the catalog says
    variants = len(params.variants())
    configs = {name: model_config(name, params.model_zoo[name], ws) for name in params.models}
    seeds = len(params.seeds)  # each seed is one more run of the same stage: same memory, its own compute
    jobs = [(f"unlearn {name}/{method}" + (f" (x{seeds} seeds)" if seeds > 1 else ""), method,
             params.method_config(method), configs[name]) for name in params.models for method in params.methods]
    # the unlearning traces are independent and CPU-bound: one process per core
    pool = ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1),
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        for future in [pool.submit(_plan_unlearn_job, job) for job in jobs]:
            plan = future.result()
            plan.flops *= seeds
            add(plan)
    finally:
        pool.shutdown(cancel_futures=True)
    for name, config in configs.items():
        gen = plan_generation(f"generate {name}", config, params.generation.batch_size, settings.prompt_tokens,
                              params.generation.max_new_tokens, "generation.batch_size")
        gen.flops = gen.flops / gen.batch * counts["generated"] * variants
        add(gen)
        for util in utility_plans(params, config, name, generating, settings):
            util.flops = util.flops / util.batch * _utility_row_count(util, counts) * variants
            add(util)
        drift = plan_drift(f"drift {name}", config, params.utility.batch_size,
                           settings.prompt_tokens + params.generation.max_new_tokens, "utility.batch_size", True)
        drift.flops = 2 * drift.flops / drift.batch * counts["drift"] * variants  # the variant's and the base's
        add(drift)
        if "gcg" in params.jailbreaks.fitted:
            from mubench.jailbreaks.gcg import GcgParams

            gcg = GcgParams(**params.jailbreaks.options("gcg"))
            tokens = 64 + gcg.suffix_tokens + 16  # goal, suffix, target
            plan = plan_gcg(f"gcg {name}", config, min(gcg.eval_batch, gcg.search_width), tokens)
            # per step: the candidates' forwards and one gradient (forward + backward) per behaviour
            plan.flops = 2.0 * matmul_params(config) * tokens * (gcg.search_width + 3) * gcg.steps * gcg.behaviours
            add(plan)
        # every checkpoint (the base and each variant: ``variants``) is attacked
        for plan in plan_tamper(params, config, name, generating, settings):
            if plan.stage.startswith("generate"):
                plan.flops = plan.flops / plan.batch * counts["tampered"] * variants
            elif plan.stage.startswith("utility"):
                plan.flops = plan.flops / plan.batch * _utility_row_count(plan, counts) * variants
            else:
                plan.flops *= variants
            add(plan)
    for plan in judge_plans(params, settings):
        # each checkpoint's own generations and its attacked copies'
        judged = (counts["generated"] + counts["tampered"]) * variants
        plan.flops = plan.flops / plan.batch * judged * len(params.models)
        add(plan)
    return plans


def _plan_unlearn_job(job: tuple) -> StagePlan:
    import warnings

    warnings.filterwarnings("ignore", message=".*data pointer of FakeTensor.*")
    return plan_unlearn(*job)


def _utility_row_count(plan: StagePlan, counts: dict[str, int]) -> int:
    """The rows a utility plan's batch stands for: the generation tasks' (GSM8K) or the scored tasks'."""
    return counts["utility generated" if plan.stage.startswith("utility generation") else "utility"]


def _row_counts(params, settings: PlanSettings) -> dict[str, int]:
    sizes = params.data.sizes

    def rows(size) -> int:
        return settings.rows_per_dataset if size == "all" else min(size, settings.rows_per_dataset)

    from mubench.datasets import is_generation_task

    harmful = rows(sizes.harmful_per_dataset) * len(params.data.harmful)
    seeds = min(params.jailbreaks.seed_per_dataset, rows(sizes.harmful_per_dataset)) * len(params.data.harmful)
    over = rows(sizes.oversafety_per_dataset) * len(params.data.oversafety)
    generating = sum(is_generation_task(t) for t in params.data.utility)
    cfg = params.tamper
    # per tamper attack: the attacked copy answers the seed behaviours or every plain prompt (+ over-safety)
    attacked = (seeds if cfg.prompts == "seed" else harmful) + (over if cfg.oversafety else 0)
    return {"generated": harmful + seeds * len(params.jailbreaks.names()) + over,
            "utility": rows(sizes.utility_per_task) * (len(params.data.utility) - generating),
            "utility generated": rows(sizes.utility_per_task) * generating, "drift": rows(sizes.drift),
            "tampered": attacked * len(cfg.names)}


def table_rows(plans: list[StagePlan], limit: int | None, settings: PlanSettings) -> list[dict]:
    rows = []
    for plan in plans:
        parts = plan.parts
        resident = parts.get("parameters", 0) + parts.get("base parameters", 0) + parts.get("optimizer", 0)
        rows.append({"stage": plan.stage, "peak_gb": round(plan.peak / GB, 2),
                     "parameters_gb": round(parts.get("parameters", 0) / GB, 2),
                     "gradients_gb": round(parts.get("gradients", 0) / GB, 2),
                     "optimizer_gb": round(parts.get("optimizer", 0) / GB, 2),
                     # activations, KV cache, temporaries (and gradients, when the peak falls in backward)
                     "transient_gb": round(max(0, plan.peak - resident) / GB, 2),
                     "fits": None if limit is None else plan.peak <= limit,
                     "fix": None if limit is None or plan.peak <= limit else plan.fix_text(limit),
                     "pflops": round(plan.flops / 1e15, 3), "gpu_hours": round(gpu_hours(plan.flops, settings), 3),
                     "how": plan.how})
    return rows


def hours_by_kind(plans: list[StagePlan], settings: PlanSettings) -> dict[str, float]:
    """GPU-hours of a full run split into unlearning, generation, GCG, judging, utility (drift included) and
    tamper attacks (relearning, ablation and the attacked copies' evaluation)."""
    kinds = {"unlearn": "unlearning", "generate": "generation", "gcg": "gcg", "judge": "judging",
             "utility": "utility", "drift": "utility"}
    total: dict[str, float] = {}
    for plan in plans:
        first = plan.stage.split()[0]
        kind = "tamper attacks" if "(tampered)" in plan.stage else kinds.get(first, "tamper attacks")
        total[kind] = total.get(kind, 0.0) + gpu_hours(plan.flops, settings)
    return {k: round(v, 2) for k, v in total.items()}
