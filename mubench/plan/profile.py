"""``mubench plan``: the memory and compute plan of every accelerator stage of a profile (docs/paper-scale.md).

Each stage's peak memory comes from its own planner (``plan.unlearn``, ``plan.evaluate``, ``plan.tamper``; GCG
and the LLM judges here), run on the architecture of each model (``mubench/plan/arch/``) under fake tensors.
Compute is an estimate: FLOPs = 2 x matmul parameters x tokens per forward (x3 with gradients, x2 for
LoRA/frozen layers), at a stated MFU; row counts come from the profile's sizes, capped at
``PlanSettings.rows_per_dataset``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from mubench.core.records import PlanRow
from mubench.core.workspace import Workspace
from mubench.jailbreaks import JAILBREAKS
from mubench.jailbreaks.base import FitWork
from mubench.plan.evaluate import batch_key, plan_drift, utility_plans
from mubench.plan.fit import check_fits, gpu_hours
from mubench.plan.generation import plan_generation
from mubench.plan.judge import ARCH_DIR, arch_config, hub_arch_file, judge_plans
from mubench.plan.roofline import Phase, time_forward, time_generation
from mubench.plan.stage import GB, PlanSettings, StagePlan, build, inference_plan, matmul_params
from mubench.plan.tamper import plan_tamper
from mubench.plan.trace import extrapolate, fake_tensors, measure
from mubench.plan.unlearn import plan_unlearn


def plan_jailbreak_fit(attack: str, stage: str, config, work: FitWork, dtype=torch.bfloat16) -> StagePlan:
    """A fitted jailbreak's largest forward at the shapes it declares (``Jailbreak.fit_work``: e.g. GCG's
    candidate scoring, not gcg.py itself, whose one-sequence gradient step is smaller), and the whole fit's
    FLOPs."""
    eval_batch, tokens = work.batch, work.tokens

    def trace(cfg) -> dict[str, int]:
        with fake_tensors():
            model = build(cfg, dtype).eval()

            def step() -> None:
                with torch.inference_mode():
                    model(input_ids=torch.ones((eval_batch, tokens), dtype=torch.long), use_cache=True,
                          logits_to_keep=32)
            return measure(step, model)

    parts, how = extrapolate(config, trace, None)
    plan = inference_plan(stage, parts, f"{how}; {work.what}", eval_batch, work.batch_key, config, tokens)
    plan.flops = 2.0 * matmul_params(config) * tokens * work.sequences
    plan.phases = [Phase(attack, plan.flops, 0.0)]
    return plan


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


@dataclass
class PlanCollector:
    """The stages planned so far: each is reported (``progress``) and, with ``limit`` (bytes), checked as it is
    added, so the first stage that does not fit stops the plan."""

    settings: PlanSettings
    progress: Callable[[str], None] | None = None
    limit: int | None = None
    plans: list[StagePlan] = field(default_factory=list)

    def add(self, plan: StagePlan) -> None:
        if self.progress:
            self.progress(plan.stage)
        if self.limit is not None:
            check_fits([plan], self.limit, settings=self.settings)
        self.plans.append(plan)


def plan_profile(params, settings: PlanSettings = PlanSettings(), ws: Workspace = Workspace(),
                 progress: Callable[[str], None] | None = None, limit: int | None = None) -> list[StagePlan]:
    """Every accelerator stage of ``params``: unlearn per model x method (its compute times the number of
    unlearning seeds), then per model generation, utility (scoring; GSM8K's generation), drift, the fitted
    jailbreaks and the model attacks (on the base and every variant), then the LLM judges. With ``limit``
    (bytes), the first stage whose need (peak + margin + CUDA context) is over it raises PlanError (the remaining
    traces are cancelled)."""
    from mubench.datasets import is_generation_task

    out = PlanCollector(settings, progress, limit)
    counts = row_counts(params, settings)
    generating = [t for t in params.data.utility if is_generation_task(t)]  # no data yet: the catalog says
    configs = {name: model_config(name, params.model_zoo[name], ws) for name in params.models}
    add_unlearning(out, params, configs)
    for name, config in configs.items():
        add_inference(out, params, name, config, counts, generating)
        add_tamper(out, params, name, config, counts, generating)
    # an LLM judge per evaluated model: that model's weights stay loaded beside it, at that model's judge batch;
    # it reads each checkpoint's own generations and its attacked copies'
    judged = (counts["generated"] + counts["tampered"]) * len(params.variants())
    for name in params.models:
        resident = max((p.parts.get("parameters", 0) + p.parts.get("adapter", 0) for p in out.plans
                        if p.stage == f"generate {name}"), default=0)
        for plan in judge_plans(params, settings, resident, judged, model=name):
            out.add(plan)
    return out.plans


def add_unlearning(out: PlanCollector, params, configs: dict) -> None:
    """Unlearning per model x method; its compute times the number of unlearning seeds (each seed is one more run
    of the same stage: same memory, its own compute)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    seeds = len(params.seeds)
    jobs = [(f"unlearn {name}/{method}" + (f" (x{seeds} seeds)" if seeds > 1 else ""), method,
             params.method_config(method), configs[name]) for name in params.models for method in params.methods]
    # the unlearning traces are independent and CPU-bound: one process per core
    pool = ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1),
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        for future in [pool.submit(_plan_unlearn_job, job) for job in jobs]:
            plan = future.result()
            plan.flops *= seeds
            plan.phases = [Phase("train", plan.flops, 0.0)]  # compute-bound: the FLOPs at the utilisation
            out.add(plan)
    finally:
        pool.shutdown(cancel_futures=True)


def add_inference(out: PlanCollector, params, name: str, config, counts: dict, generating: list[str]) -> None:
    """Model ``name``'s evaluation stages (generation, utility, drift) over every checkpoint, and the fitted
    jailbreaks' work on its base."""
    settings, variants = out.settings, len(params.variants())
    adapter = adapter_bytes(params, config)
    batches = params.batches(name)
    new_tokens = params.generation.max_new_tokens
    gen = plan_generation(f"generate {name}", config, batches["generation"], settings.prompt_tokens,
                          new_tokens, batch_key(params, "generation", name), graphs=params.generation.graphs)
    with_adapter(gen, adapter)
    time_generation(gen, config, counts["generated"] * variants, settings.mean_prompt_tokens, new_tokens)
    out.add(gen)
    for util in utility_plans(params, config, name, generating, settings):
        with_adapter(util, adapter)
        if util.stage.startswith("utility generation"):
            time_generation(util, config, counts["utility generated"] * variants,
                             settings.utility_context_tokens, params.utility.generation.max_gen_toks)
        else:
            time_forward(util, config, counts["utility"] * variants, settings.utility_context_tokens)
        out.add(util)
    drift = plan_drift(f"drift {name}", config, batches["utility"],
                       settings.prompt_tokens + new_tokens, batch_key(params, "utility", name), True)
    with_adapter(drift, adapter)
    # the variant's and the base's forwards over the base's answers
    time_forward(drift, config, counts["drift"] * variants, settings.mean_prompt_tokens + new_tokens, 2.0)
    out.add(drift)
    for attack_name in params.jailbreaks.fitted:
        work = JAILBREAKS.get(attack_name, params.jailbreaks.options(attack_name)).fit_work()
        if work is not None:
            out.add(plan_jailbreak_fit(attack_name, f"{attack_name} {name}", config, work))


def add_tamper(out: PlanCollector, params, name: str, config, counts: dict, generating: list[str]) -> None:
    """The model attacks on model ``name``: every checkpoint (the base and each variant) is attacked."""
    settings, variants, attacks = out.settings, len(params.variants()), len(params.tamper.names)
    for plan in plan_tamper(params, config, name, generating, settings):
        if plan.stage.startswith("generate"):
            time_generation(plan, config, counts["tampered"] * variants, settings.mean_prompt_tokens,
                             params.generation.max_new_tokens)
        elif plan.stage.startswith("utility generation"):
            time_generation(plan, config, counts["tampered utility generated"] * variants * attacks,
                             settings.utility_context_tokens, params.utility.generation.max_gen_toks)
        elif plan.stage.startswith("utility"):
            time_forward(plan, config, counts["tampered utility"] * variants * attacks,
                         settings.utility_context_tokens)
        else:
            plan.flops *= variants
            plan.phases = [Phase("train", plan.flops, 0.0)]
        out.add(plan)


def adapter_bytes(params, config) -> int:
    """The largest LoRA adapter among the run's methods on ``config`` (bf16): it stays unmerged in evaluation,
    beside the base's weights. r x (inputs + outputs) per targeted linear layer, counted on the meta device."""
    import re

    largest = 0
    with torch.device("meta"):
        model = build(config, torch.bfloat16)
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    for method in params.methods:
        lora = params.method_config(method).lora
        if lora is None or lora.save != "adapter":
            continue
        targets = lora.target_modules
        if isinstance(targets, str):
            chosen = [m for n, m in linears if re.fullmatch(targets, n)]
        else:
            chosen = [m for n, m in linears if n.rsplit(".", 1)[-1] in set(targets or ())]
        largest = max(largest, sum(lora.r * (m.in_features + m.out_features) for m in chosen) * 2)
    return largest


def with_adapter(plan: StagePlan, adapter: int) -> None:
    """Count a LoRA variant's unmerged adapter in an evaluation batch's peak."""
    if adapter:
        plan.parts = {**plan.parts, "adapter": adapter}
        plan.peak += adapter
        plan.how += "; a LoRA variant's adapter beside the weights"


def _plan_unlearn_job(job: tuple) -> StagePlan:
    import warnings

    warnings.filterwarnings("ignore", message=".*data pointer of FakeTensor.*")
    return plan_unlearn(*job)


def dataset_rows(name: str, size, settings: PlanSettings) -> int:
    """Rows a size takes of dataset ``name``: the catalog's row count for `all` (``rows_per_dataset`` where the
    catalog does not know it yet, a Hub dataset not pinned), else the size, capped at the rows it has."""
    from mubench.datasets import DATASETS

    known = DATASETS.entry(name).rows
    if size == "all":
        return known or settings.rows_per_dataset
    return min(size, known) if known else size


def row_counts(params, settings: PlanSettings) -> dict[str, int]:
    """Prompts each kind of work covers per checkpoint: generated (plain harmful, each jailbreak's seeds,
    over-safety), utility items scored and generated, drift pairs, and each tamper attack's prompts."""
    from mubench.datasets import is_generation_task

    sizes = params.data.sizes
    harmful = sum(dataset_rows(n, sizes.harmful_per_dataset, settings) for n in params.data.harmful)
    seeds = sum(min(params.jailbreaks.seed_per_dataset, dataset_rows(n, sizes.harmful_per_dataset, settings))
                for n in params.data.harmful)
    over = sum(dataset_rows(n, sizes.oversafety_per_dataset, settings) for n in params.data.oversafety)
    utility = {n: dataset_rows(n, sizes.utility_per_task, settings) for n in params.data.utility}
    cfg = params.tamper
    # an attacked copy is scored on every utility item, or on the run's fixed sample of them
    tampered_utility = {n: min(v, cfg.utility_per_task or v) for n, v in utility.items()}
    # per tamper attack: the attacked copy answers the seed behaviours or every plain prompt (+ over-safety)
    attacked = (seeds if cfg.prompts == "seed" else harmful) + (over if cfg.oversafety else 0)
    return {"generated": harmful + seeds * len(params.jailbreaks.names()) + over,
            "utility": sum(v for n, v in utility.items() if not is_generation_task(n)),
            "utility generated": sum(v for n, v in utility.items() if is_generation_task(n)),
            "drift": dataset_rows(params.data.drift_source, sizes.drift, settings),
            "tampered": attacked * len(cfg.names),
            "tampered utility": sum(v for n, v in tampered_utility.items() if not is_generation_task(n)),
            "tampered utility generated": sum(v for n, v in tampered_utility.items() if is_generation_task(n))}


def table_rows(plans: list[StagePlan], limit: int | None, settings: PlanSettings) -> list[PlanRow]:
    """One row per stage; ``gpu_hours`` at the measured per-step overhead, ``gpu_hours_graphs_assumed`` with the
    assumed overhead of compiled decoding where the stage decodes that way (the same figure elsewhere)."""
    rows = []
    for plan in plans:
        parts = plan.parts
        resident = sum(parts.get(k, 0) for k in ("parameters", "base parameters", "optimizer", "adapter",
                                                  "evaluated model (resident)"))
        need = plan.need(settings)
        rows.append(PlanRow(
            stage=plan.stage, peak_gb=round(plan.peak / GB, 2), need_gb=round(need / GB, 2),
            parameters_gb=round(parts.get("parameters", 0) / GB, 2),
            gradients_gb=round(parts.get("gradients", 0) / GB, 2),
            optimizer_gb=round(parts.get("optimizer", 0) / GB, 2),
            transient_gb=round(max(0, plan.peak - resident) / GB, 2),
            other_resident_gb=round((parts.get("adapter", 0) + parts.get("base parameters", 0)
                                     + parts.get("evaluated model (resident)", 0)) / GB, 2),
            fits=None if limit is None else need <= limit,
            fix=None if limit is None or need <= limit else plan.fix_text(limit, settings),
            pflops=round(plan.flops / 1e15, 3), gpu_hours=round(gpu_hours(plan, settings), 3),
            gpu_hours_graphs_assumed=round(gpu_hours(plan, settings, assume_graphs=True), 3), how=plan.how))
    return rows


def hours_by_kind(plans: list[StagePlan], settings: PlanSettings, assume_graphs: bool = False) -> dict[str, float]:
    """GPU-hours of a full run split into unlearning, generation, GCG, judging, utility (drift included) and
    tamper attacks (relearning, ablation and the attacked copies' evaluation); ``assume_graphs``: compiled
    decoding at its assumed per-step overhead (``gpu_hours``)."""
    kinds = {"unlearn": "unlearning", "generate": "generation", "gcg": "gcg", "judge": "judging",
             "utility": "utility", "drift": "utility"}
    total: dict[str, float] = {}
    for plan in plans:
        first = plan.stage.split()[0]
        kind = "tamper attacks" if "(tampered)" in plan.stage else kinds.get(first, "tamper attacks")
        total[kind] = total.get(kind, 0.0) + gpu_hours(plan, settings, assume_graphs)
    return {k: round(v, 2) for k, v in total.items()}
