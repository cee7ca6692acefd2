"""Full-size GPU check of `mubench plan` (issue 29): measured peaks and decoding speed next to the plan.

    python benchmarks/gpu_full_size.py --out benchmarks/results/gpu_full_size.json          # a GPU, ~5 min
    python benchmarks/gpu_full_size.py --layers 2 --small --out /tmp/gpu_full_size.json     # CPU, CI

Needs no download. The three paper architectures (``mubench/plan/arch/``: Llama-2-7B, Llama-3-8B, Mistral-7B)
are randomly initialised, bf16, on the GPU. For each, at the paper profile's settings:
- the generation batch (the model's generation batch x 1,024 prompt tokens, preallocated cache), and the decoding
  speed over ``--decode-steps`` steps against the roofline's bandwidth bound, eager and compiled
  (``generation.decode: graphs``, through ``model.generate`` as the engine calls it; the first, compiling, call is
  timed apart): the per-step overhead per layer the plan assumes for graphs (``PlanSettings``) is then a measurement;
- one GSM8K batch (the model's utility batch of few-shot prompts + ``max_gen_toks``);
- one unlearning step of GA (LoRA + gradient checkpointing) and one of RMU (three MLPs, fp32);
- a drift batch with the base resident;
- the judge's batch (Llama Guard 3's architecture) with the evaluated model resident, as evaluate runs it.

Each step records ``torch.cuda.max_memory_allocated`` and ``max_memory_reserved`` and the plan's peak for the
same shapes (full depth, or ``--layers``). The goal is within 10%. ``--small`` (CI on a CPU) also narrows the
models (hidden 128) and the batches, so the script cannot rot. On a CPU the peak comes from MemTracker on real
tensors.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from shape_twins import peak_of, unlearn_twin  # a sibling script (run from benchmarks/ or the repo root)

from mubench.families import load_params
from mubench.plan.evaluate import plan_drift
from mubench.plan.generation import generation_step, plan_generation
from mubench.plan.judge import arch_config, hub_arch_file, judge_plans
from mubench.plan.profile import model_config
from mubench.plan.roofline import GPUS, kv_bytes_per_token
from mubench.plan.stage import PlanSettings, at_depth, build, matmul_params

JUDGE = "meta-llama/Llama-Guard-3-8B"


def narrowed(config, small: bool):
    """``config`` at its own width, or (``--small``) at hidden 128 with the same head ratios, for a CPU run."""
    if not small:
        return config
    copy = type(config).from_dict(config.to_dict())
    groups = config.num_attention_heads // (getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    copy.num_attention_heads, copy.num_key_value_heads = 4, max(1, 4 // groups)
    copy.hidden_size, copy.intermediate_size, copy.head_dim = 128, 256, 32
    copy.vocab_size = min(config.vocab_size, 4096)
    return copy


def reserved() -> float | None:
    return torch.cuda.max_memory_reserved() / 1e9 if torch.cuda.is_available() else None


def row(stage: str, planned: float, measured: int, seconds: float, **extra) -> dict:
    out = {"stage": stage, "planned_gb": round(planned / 1e9, 3), "measured_gb": round(measured / 1e9, 3),
           "reserved_gb": None if reserved() is None else round(reserved(), 3),
           "ratio": round(measured / planned, 3), "seconds": round(seconds, 2), **extra}
    print(json.dumps(out), flush=True)
    return out


def fresh() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def decode_speed(model, config, batch: int, prompt: int, steps: int, device: str, gpu: str) -> dict:
    """New tokens/s over ``steps`` decoding steps after a prefill, and the bandwidth bound for the same steps
    (every weight and the whole cache read per step)."""
    from mubench.engine.generate import PromptRow, batch_cache, prefill_rows
    from mubench.engine.kv import CACHE_ARG

    rows = [PromptRow(list(range(1, prompt + 1))) for _ in range(batch)]
    with torch.inference_mode():
        prefill_rows(model, rows, 0)
        head = prompt - 1
        cache = batch_cache(model, rows, head, head + 1 + steps)
        token = torch.ones((batch, 1), dtype=torch.long, device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for step in range(steps):
            position = head + step
            model(input_ids=token, attention_mask=torch.ones((batch, position + 1), dtype=torch.long, device=device),
                  cache_position=torch.tensor([position], device=device), use_cache=True, **{CACHE_ARG: cache})
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    card = GPUS[gpu]
    read = steps * weights + batch * kv_bytes_per_token(config) * sum(prompt + s for s in range(steps))
    bound_s = read / (card.bandwidth_tbs * 1e12)
    return {"new_tokens_per_s": round(batch * steps / seconds, 1),
            "bandwidth_bound_tokens_per_s": round(batch * steps / bound_s, 1), "card": card.name,
            "share_of_bound": round(bound_s / seconds, 3), "ms_per_step": round(1e3 * seconds / steps, 2),
            "matmul_params": matmul_params(config)}


def generate_seconds(model, batch: int, prompt: int, steps: int, device: str, graphs: bool) -> tuple[float, float]:
    """Seconds of ``steps`` greedy decoding steps through ``model.generate`` with the engine's static cache, eager
    or compiled (``graphs``: the engine's compile config and rounded cache length): (first call, second call); the
    first compiles when ``graphs``."""
    from mubench.engine.generate import PromptRow, batch_cache, graph_cache_length, graph_compile_config, prefill_rows
    from mubench.engine.kv import CACHE_ARG

    rows = [PromptRow(list(range(1, prompt + 1))) for _ in range(batch)]
    head = prompt - 1
    length = graph_cache_length(head + 1 + steps) if graphs else head + 1 + steps
    ids = torch.ones((batch, head + 1), dtype=torch.long, device=device)
    config = graph_compile_config(device) if graphs else None  # None on a CPU: the fixed shapes, nothing compiled
    compiling = {"compile_config": config} if config else {"disable_compile": True}
    times = []
    with torch.inference_mode():
        prefill_rows(model, rows, 0)
        for _ in range(2):
            cache = batch_cache(model, rows, head, length)
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps,
                           min_new_tokens=steps, do_sample=False, num_beams=1, temperature=None, top_p=None,
                           top_k=None, pad_token_id=0, **compiling, **{CACHE_ARG: cache})
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return times[0], times[1]


def graph_speed(model, config, batch: int, prompt: int, steps: int, device: str, bound_s: float) -> dict:
    """Eager vs compiled decoding through ``generate`` at the same shapes: tokens/s, ms per step and per step and
    layer (the plan's overhead unit), the share of the bandwidth bound (from the second call), and the first call's
    time (which includes compiling)."""
    out = {}
    for mode in ("eager", "graphs"):
        first, seconds = generate_seconds(model, batch, prompt, steps, device, mode == "graphs")
        out[mode] = {"new_tokens_per_s": round(batch * steps / seconds, 1),
                     "ms_per_step": round(1e3 * seconds / steps, 2),
                     "ms_per_step_and_layer": round(1e3 * seconds / steps / config.num_hidden_layers, 4),
                     "share_of_bound": round(bound_s / seconds, 3),
                     # the first call compiles (on a GPU; a CPU compiles nothing): timed apart, not subtracted
                     "first_call_s": round(first, 2)}
    out["speedup"] = round(out["graphs"]["new_tokens_per_s"] / out["eager"]["new_tokens_per_s"], 2)
    return out


def check_model(name: str, params, config, device: str, args) -> list[dict]:
    out = []
    batches = params.batches(name)  # the model's own batches (batch_size_by_model), else the profile's
    batch = args.batch or batches["generation"]
    prompt = args.prompt or 1024
    new = args.new or params.generation.max_new_tokens
    fresh()
    with torch.device(device):
        model = build(config, torch.bfloat16).eval()
    planned = plan_generation(f"generate {name}", config, batch, prompt, new, "generation.batch_size")
    peak, seconds = peak_of(lambda: generation_step(model, batch, prompt, new), device, model)
    speed = decode_speed(model, config, batch, prompt, args.decode_steps, device, args.gpu)
    bound_s = batch * args.decode_steps / speed["bandwidth_bound_tokens_per_s"]
    speed["decoding"] = graph_speed(model, config, batch, prompt, args.decode_steps, device, bound_s)
    out.append(row(f"generate {name}", planned.peak, peak, seconds, batch=batch, **speed))
    util_batch = args.batch or batches["utility"]
    gen_toks = args.new or params.utility.generation.max_gen_toks
    fresh()
    planned = plan_generation(f"gsm8k {name}", config, util_batch, prompt, gen_toks, "utility.batch_size")
    peak, seconds = peak_of(lambda: generation_step(model, util_batch, prompt, gen_toks), device, model)
    out.append(row(f"gsm8k {name}", planned.peak, peak, seconds, batch=util_batch))
    fresh()
    from mubench.scoring.drift import drift_batch
    from mubench.training.losses import IGNORE

    length = prompt + new
    with torch.device(device):
        base = build(config, torch.bfloat16).eval()
    ids = torch.ones((util_batch, length), dtype=torch.long, device=device)
    labels = torch.full_like(ids, IGNORE)
    labels[:, length // 2:] = 1
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    planned = plan_drift(f"drift {name}", config, util_batch, length, "utility.batch_size", True)

    def drift() -> None:
        with torch.inference_mode():
            drift_batch(model, base, data)
    peak, seconds = peak_of(drift, device, model, base)
    out.append(row(f"drift {name} (base resident)", planned.peak, peak, seconds, batch=util_batch))
    base = None  # freed before the judge loads
    # the judge reads while the evaluated model is loaded (evaluate frees it after judging)
    fresh()
    judge_config = narrowed(at_depth(arch_config([hub_arch_file(JUDGE)], "judge"), args.layers or 32)
                            if args.layers else arch_config([hub_arch_file(JUDGE)], "judge"), args.small)
    with torch.device(device):
        judge = build(judge_config, torch.bfloat16).eval()
    settings = replace(PlanSettings(), prompt_tokens=prompt)
    plans = judge_plans(params, settings, resident=sum(p.numel() * p.element_size() for p in model.parameters()),
                        model=name)
    if plans:
        judge_plan = plans[0]
        tokens = prompt + new + settings.judge_template_tokens
        judge_batch = args.batch or judge_plan.batch
        planned_judge = plan_generation("judge", judge_config, judge_batch, tokens, 8, "")
        planned = planned_judge.peak + judge_plan.parts.get("evaluated model (resident)", 0)
        peak, seconds = peak_of(lambda: generation_step(judge, judge_batch, tokens, 8), device, judge, model)
        out.append(row(f"judge with {name} resident", planned, peak, seconds, batch=judge_batch))
    judge = model = None  # freed before the unlearning steps
    for method in ("ga", "rmu"):
        fresh()
        hparams = params.method_config(method)
        if args.small:
            hparams = hparams.model_copy(update={"batch_size": 2, "max_length": 64})
        twin = unlearn_twin(method, hparams, config, device)
        out.append(row(f"unlearn {name}/{method}", twin["planned_gb"] * 1e9, twin["measured_gb"] * 1e9,
                       twin["step_s"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="profiles/paper.yaml")
    parser.add_argument("--layers", type=int, default=0, help="decoder layers (default: full depth)")
    parser.add_argument("--small", action="store_true", help="narrow models and batches (a CPU run in CI)")
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--prompt", type=int, default=0)
    parser.add_argument("--new", type=int, default=0)
    parser.add_argument("--decode-steps", type=int, default=32)
    parser.add_argument("--gpu", default="h200", choices=sorted(GPUS), help="the card for the bandwidth bound")
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_full_size.json"))
    args = parser.parse_args()
    if args.small:
        args.batch, args.prompt, args.new, args.decode_steps = args.batch or 2, args.prompt or 32, \
            args.new or 4, min(args.decode_steps, 4)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    params = load_params(args.params)
    start = time.perf_counter()
    results = []
    for name in args.models or params.models:
        config = model_config(name, params.model_zoo[name])
        config = narrowed(at_depth(config, args.layers) if args.layers else config, args.small)
        results += check_model(name, params, config, device, args)
    report = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "torch": torch.__version__,
              "layers": args.layers or "full", "small": args.small, "params": args.params,
              "wall_s": round(time.perf_counter() - start, 1), "results": results,
              "within_10_percent": all(abs(r["ratio"] - 1) <= 0.10 for r in results)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{args.out}: {len(results)} steps in {report['wall_s']} s; within 10% of the plan: "
          f"{report['within_10_percent']}")


if __name__ == "__main__":
    main()
