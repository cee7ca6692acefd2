"""Shape twins: the paper models' exact layer shapes (random weights, fewer layers), one step of each stage on the
accelerator, measured peak memory next to `mubench plan`'s prediction for the same shapes.

    python benchmarks/shape_twins.py --params profiles/paper.yaml --layers 4 --out benchmarks/results/shape_twins.json

Per model of the profile (its `mubench/plan/arch/` config with ``--layers`` decoder layers; the plan is traced at that
same depth, so the two are comparable layer for layer): one unlearning step per method (the stage's own
``setup_training`` + ``train_step`` after a first step that creates the optimizer state), one generation batch
(prefill, preallocated cache, one decoding step) and, for an LLM judge, one judge batch. Recorded per step:
``torch.cuda.max_memory_allocated`` (on CPU: MemTracker on real tensors), the plan's peak, their ratio, the
step time and tokens/s. Acceptance (issue "paper scale"): measured within 15% of the plan.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mubench.families import load_params
from mubench.judges import JUDGES
from mubench.methods import METHODS
from mubench.plan.generation import generation_step, plan_generation
from mubench.plan.judge import arch_config, hub_arch_file, judge_plans
from mubench.plan.profile import model_config
from mubench.plan.stage import PlanSettings, at_depth, build
from mubench.plan.trace import isolated_accelerate, measure
from mubench.plan.unlearn import _dummy_batch, _stream_names, plan_unlearn
from mubench.training.loop import setup_training, train_step, weights_dtype


def peak_of(step, device: str, *external) -> tuple[int, float]:
    """(peak bytes, seconds) of ``step`` on ``device`` (CUDA allocator peak; on CPU MemTracker)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(), time.perf_counter() - start
    start = time.perf_counter()
    parts = measure(step, *external)
    return parts["total"], time.perf_counter() - start


def unlearn_twin(method_name: str, params, config, device: str) -> dict:
    one = params.model_copy(update={"grad_accum": 1, "steps": 2})
    method = METHODS.get(method_name, one)
    planned = plan_unlearn(method_name, method_name, one, config)
    with isolated_accelerate(), torch.device(device):
        model = build(config, weights_dtype(one, "cuda"))
        run = setup_training(method, model, seed=0, device=device, ref_dtype=torch.bfloat16,
                             mixed_precision="bf16")
        batches = {n: {k: v.to(device) for k, v in _dummy_batch(one.batch_size, one.max_length,
                                                                  config.vocab_size).items()}
                   for n in _stream_names(method, one)}
        train_step(method, run, batches, 1)  # the optimizer state exists from here on
        peak, seconds = peak_of(lambda: train_step(method, run, batches, 2), device, run.network, run.ref,
                                run.optimizer)
    tokens = one.batch_size * one.max_length * len(batches)
    return {"stage": f"unlearn/{method_name}", "measured_gb": peak / 1e9, "planned_gb": planned.peak / 1e9,
            "ratio": peak / planned.peak, "step_s": seconds, "tokens_per_s": tokens / seconds}


def generation_twin(name: str, config, batch: int, prompt: int, new: int, device: str) -> dict:
    planned = plan_generation(name, config, batch, prompt, new, "")
    with torch.device(device):
        model = build(config, torch.bfloat16).eval()

    def step() -> None:
        generation_step(model, batch, prompt, new)

    peak, seconds = peak_of(step, device, model)
    return {"stage": name, "measured_gb": peak / 1e9, "planned_gb": planned.peak / 1e9, "ratio": peak / planned.peak,
            "step_s": seconds, "tokens_per_s": batch * prompt / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="profiles/paper.yaml")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers of each twin (stated in the output)")
    parser.add_argument("--prompt-tokens", type=int, default=1024)
    parser.add_argument("--methods", nargs="*", help="default: the profile's")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/shape_twins.json"))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    params = load_params(args.params)
    results = []
    for name in params.models:
        config = at_depth(model_config(name, params.model_zoo[name]), args.layers)
        for method in args.methods or params.methods:
            results.append({"model": name, **unlearn_twin(method, params.method_config(method), config, device)})
            print(json.dumps(results[-1]), flush=True)
        results.append({"model": name, **generation_twin(f"generate/{name}", config, params.generation.batch_size,
                                                          args.prompt_tokens, params.generation.max_new_tokens,
                                                          device)})
        print(json.dumps(results[-1]), flush=True)
    for plan in judge_plans(params, PlanSettings(prompt_tokens=args.prompt_tokens)):
        judge = plan.stage.split()[-1]
        model = JUDGES.entry(judge).Params(**params.judge.options.get(judge, {})).model
        config = at_depth(arch_config([hub_arch_file(model)], judge), args.layers)
        tokens = args.prompt_tokens + params.generation.max_new_tokens + 384
        results.append({"model": model, **generation_twin(f"judge/{judge}", config, plan.batch, tokens, 8, device)})
        print(json.dumps(results[-1]), flush=True)
    report = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "layers": args.layers,
              "params": args.params, "torch": torch.__version__, "results": results,
              "within_15_percent": all(abs(r["ratio"] - 1) <= 0.15 for r in results)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{args.out}: {len(results)} steps, all within 15% of the plan: {report['within_15_percent']}")


if __name__ == "__main__":
    main()
