"""The unlearn stage's memory plan: one optimisation step of a method, traced with the project's own loop
(``train.setup_training`` + ``train.train_step``) on fake tensors (``memory``)."""

from __future__ import annotations

from pathlib import Path

import torch

from mubench.core.records import CorpusPair
from mubench.plan.stage import TRACE_DEPTHS, StagePlan, at_depth, build, matmul_params, nbytes
from mubench.plan.trace import extrapolate, fake_tensors, isolated_accelerate, measure


def _dummy_batch(batch: int, length: int, vocab: int) -> dict[str, torch.Tensor]:
    """``batch`` sequences of ``length`` tokens, all scored but the first: the upper bound of what the losses
    select (their masks are data-dependent; fake tensors take every selection at its upper bound)."""
    from mubench.training.losses import IGNORE

    ids = torch.randint(0, vocab, (batch, length))
    labels = ids.clone()
    labels[:, 0] = IGNORE
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def _stream_names(method, params) -> list[str]:
    pair = [CorpusPair(id="p", prompt="q", response="a", dataset="d")] * 2
    return [name for name, rows in type(method)(params).streams(pair, pair, 0).items() if rows]


def _meta_training(method, params, config, dtype, ref_dtype):
    """``train.setup_training`` on a meta-device model (no memory, instant): the trainable set, the reference
    and the optimizer exactly as the stage builds them."""
    from mubench.training.loop import setup_training

    with torch.device("meta"):
        model = build(config, dtype)
    with isolated_accelerate():
        return setup_training(type(method)(params), model, seed=0, device="cpu", ref_dtype=ref_dtype,
                              mixed_precision="bf16", device_placement=False)


def _trainable(method, params, config, dtype, ref_dtype) -> int:
    return sum(p.numel() for p in _meta_training(method, params, config, dtype, ref_dtype).trainable)


def resident_bytes(method, params, config, dtype, ref_dtype) -> dict[str, int]:
    """Exact bytes at full depth of the weights (model, adapters and reference; each tensor once), the gradients
    of the trainable parameters, and AdamW's state (two moments per trainable parameter, in its dtype; the step
    counters stay on the host)."""
    run = _meta_training(method, params, config, dtype, ref_dtype)
    modules = [run.network, *([run.ref] if isinstance(run.ref, torch.nn.Module) else [])]
    weights = {id(p): p for m in modules for p in m.parameters()}
    grads = sum(nbytes(p) for p in run.trainable)
    return {"parameters": sum(nbytes(p) for p in weights.values()), "gradients": grads, "optimizer": 2 * grads}


def _unlearn_depths(method, params, config, dtype, ref_dtype) -> tuple[int, int] | None:
    """Two small depths at which the trainable count is affine in depth up to the full model (RMU trains
    layers l-2..l with l a fraction of depth: 4 layers would train two MLPs, the real model three)."""
    layers = config.num_hidden_layers
    full = _trainable(method, params, config, dtype, ref_dtype)
    for low, high in TRACE_DEPTHS:
        if layers <= high:
            return None
        a, b = (_trainable(method, params, at_depth(config, d), dtype, ref_dtype) for d in (low, high))
        if a + (b - a) * (layers - low) / (high - low) == full:
            return low, high
    return None


def plan_unlearn(stage: str, method_name: str, params, config, device_dtype=torch.bfloat16,
                 full_depth: bool = True) -> StagePlan:
    """One optimisation step of ``method_name`` as the unlearn stage runs it on the GPU: weights loaded as
    ``unlearn`` loads them (fp32 master weights; the frozen base in bf16 under LoRA), bf16 autocast, the
    method's streams at ``batch_size`` x ``max_length``, the reference as ``train.reference_for`` builds it."""
    from mubench.methods import METHODS

    return plan_training(stage, METHODS.get(method_name, params), params, config, f"method_params.{method_name}",
                         device_dtype, full_depth)


def plan_training(stage: str, method, params, config, key: str, device_dtype=torch.bfloat16,
                  full_depth: bool = True) -> StagePlan:
    """One optimisation step of ``method`` (a Method instance) in ``train``'s loop with ``params`` (TrainParams),
    as ``plan_unlearn`` describes; ``key`` is where those settings live in params.yaml (for the fixes).

    Traced at full depth. ``full_depth=False`` traces two small depths and extrapolates linearly: 3-4 times
    faster, but the step's peak moves between phases with depth. The forward's logits are fixed in size, while
    the backward's checkpointed activations grow with depth. So a line through 2 and 4 layers misses DPO's and
    safe_unlearning's Llama-2 peak by 6-7% (low), which ``tests/test_plan_depth.py`` showed."""
    from mubench.training.loop import setup_training, train_step, weights_dtype

    one = params.model_copy(update={"grad_accum": 1})
    stepping = type(method)(one)  # one micro-batch: the step's peak does not depend on accumulation
    dtype = weights_dtype(params, "cuda")
    names = _stream_names(method, params)
    counted = {"grad": 0, "ref": 0}

    def trace(cfg) -> dict[str, int]:
        with fake_tensors(), isolated_accelerate():
            model = build(cfg, dtype)
            run = setup_training(stepping, model, seed=0, device="cpu", ref_dtype=device_dtype,
                                 mixed_precision="bf16", device_placement=False)
            batches = {n: _dummy_batch(params.batch_size, params.max_length, cfg.vocab_size) for n in names}
            _prime_optimizer(run)
            counted.update(grad=0, ref=0)
            hooks = [run.network.register_forward_pre_hook(_counter(counted, "grad"), with_kwargs=True)]
            if isinstance(run.ref, torch.nn.Module):
                hooks.append(run.ref.register_forward_pre_hook(_counter(counted, "ref"), with_kwargs=True))
            parts = measure(lambda: train_step(stepping, run, batches, 2), run.network, run.ref, run.optimizer)
            for hook in hooks:
                hook.remove()
            return parts

    depths = None if full_depth else _unlearn_depths(method, one, config, dtype, device_dtype)
    parts, how = extrapolate(config, trace, depths)
    parts = {"total": parts.get("total", 0), **resident_bytes(method, one, config, dtype, device_dtype)}
    n = matmul_params(config)
    lora = params.lora is not None
    # the adapter-disabled reference runs through the trained model's own forward: its tokens are counted there;
    # without weight gradients for most tensors (LoRA, or a method that trains a few) the backward is partial
    grad_factor = (4 if lora or method.chooses_weights else 6) + (2 if params.gradient_checkpointing else 0)
    per_step = (grad_factor * counted["grad"] + 2 * counted["ref"]) * n * params.grad_accum
    fixes = []
    if not lora and not method.chooses_weights:
        fixes.append(f"{key}.lora: {{r: 16}} (adapters only" + ("; the reference is the base with adapters off)"
                                                                 if method.needs_reference else ")"))
    if not params.gradient_checkpointing:
        fixes.append(f"{key}.gradient_checkpointing: true")
    fixes.append(f"a smaller {key}.batch_size with a larger grad_accum")
    return StagePlan(stage, parts.get("total", 0), parts, per_step * params.steps, how, fixes)


def _prime_optimizer(run) -> None:
    """Create the optimizer's state as the first step would (zero gradients), so the measured step is a
    steady-state one: weights, optimizer state, and the step's gradients and activations."""
    for p in run.trainable:
        p.grad = torch.zeros_like(p)
    run.optimizer.step()
    run.optimizer.zero_grad()


def _counter(counted: dict[str, int], key: str):
    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else (args[0] if args else None)
        if ids is not None:
            counted[key] += ids.numel()
    return hook


def plan_unlearn_stage(stage: str, method_name: str, params, checkpoint: Path) -> list[StagePlan]:
    """``plan_unlearn`` on a checkpoint's architecture, as the list ``memory.ensure_fits`` checks."""
    from transformers import AutoConfig

    return [plan_unlearn(stage, method_name, params, AutoConfig.from_pretrained(checkpoint))]
