"""Time of a stage from a roofline, per phase: the larger of its FLOPs at the card's peak x a utilisation, its
bytes moved at the card's bandwidth x an efficiency, and a fixed per-step overhead.

The phases differ in what bounds them:
- a prefill (prompts through the model) and a training step are compute-bound;
- a decoding step is memory-bound. It reads every weight and the whole KV cache of the batch to make one token
  per row, so its time grows with the cache (the prompt plus the tokens made so far);
- a small model's decoding step is bound by neither. It is bound by the per-step launch and Python overhead.
  The H200 check measured that: 1,600 new tokens/s for a 135M model, far from both bounds.

One number for all of these (FLOPs at 35% utilisation, as before) made decoding, which dominates a run, look
several times faster than it is.

Figures are upper bounds where the data decide. Every response runs to ``max_new_tokens`` (greedy decoding
stops earlier at an end token), and every prompt has ``mean_prompt_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mubench.plan.stage import StagePlan


@dataclass(frozen=True)
class Gpu:
    """A card's dense bf16 peak (no sparsity) and memory bandwidth, from the vendors' data sheets."""

    name: str
    memory_gb: float
    bf16_tflops: float
    bandwidth_tbs: float


GPUS = {
    "h100": Gpu("NVIDIA H100 SXM 80GB", 80, 989.0, 3.35),
    "h200": Gpu("NVIDIA H200 141GB", 141, 989.0, 4.8),
    "a100": Gpu("NVIDIA A100 SXM 80GB", 80, 312.0, 2.039),
    "l40s": Gpu("NVIDIA L40S 48GB", 48, 362.0, 0.864),
}


@dataclass(frozen=True)
class Phase:
    """``count`` repetitions of one step that does ``flops`` and moves ``bytes`` (and pays one step overhead)."""

    name: str
    flops: float
    bytes: float
    count: float = 1.0


def phase_seconds(phase: Phase, gpu: Gpu, mfu: float, bandwidth_efficiency: float, step_overhead_s: float) -> float:
    compute = phase.flops / (gpu.bf16_tflops * 1e12 * mfu)
    memory = phase.bytes / (gpu.bandwidth_tbs * 1e12 * bandwidth_efficiency)
    return phase.count * max(compute, memory, step_overhead_s)


def attention_flops(layers: int, hidden: int, rows: int, queries: int, keys: float) -> float:
    """Score and weighted-sum matmuls of ``queries`` new tokens against ``keys`` cached ones, per row."""
    return 4.0 * layers * hidden * rows * queries * keys


def generation_phases(matmul_params: int, weight_bytes: int, kv_bytes_per_token: int, layers: int, hidden: int,
                      batch: int, prompt: int, new_tokens: int, batches: float) -> list[Phase]:
    """``batches`` generation batches: a prefill of ``batch`` prompts of ``prompt`` tokens (compute-bound), then
    ``new_tokens`` decoding steps. Each step reads the weights and the KV cache so far. The steps are summed
    in closed form: the cache grows linearly."""
    prefill = Phase("prefill", 2.0 * matmul_params * batch * prompt
                    + attention_flops(layers, hidden, batch, prompt, prompt / 2),
                    weight_bytes + batch * prompt * kv_bytes_per_token, batches)
    mean_keys = prompt + (new_tokens - 1) / 2  # the cache length averaged over the decoding steps
    decode = Phase("decode", 2.0 * matmul_params * batch + attention_flops(layers, hidden, batch, 1, mean_keys),
                   weight_bytes + batch * mean_keys * kv_bytes_per_token, batches * new_tokens)
    return [prefill, decode]


def forward_phases(name: str, matmul_params: int, weight_bytes: int, tokens: int, batches: float,
                   passes: float = 1.0) -> list[Phase]:
    """``batches`` forwards over ``tokens`` tokens each (a scoring or drift batch; ``passes`` models)."""
    return [Phase(name, passes * 2.0 * matmul_params * tokens, passes * weight_bytes, batches)]


def kv_bytes_per_token(config, dtype_bytes: int = 2) -> int:
    """Keys and values one token adds to the cache: layers x 2 x kv heads x head dim x dtype bytes."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers * 2 * kv_heads * head_dim * dtype_bytes


def _weights(plan: StagePlan) -> int:
    return plan.parts.get("parameters", 0)


def time_generation(plan: StagePlan, config, rows: float, prompt: int, new_tokens: int) -> None:
    """Set ``plan``'s phases (and FLOPs) for generating ``rows`` responses in batches of ``plan.batch``."""
    from mubench.plan.stage import matmul_params

    plan.phases = generation_phases(matmul_params(config), _weights(plan), kv_bytes_per_token(config),
                                    config.num_hidden_layers, config.hidden_size, plan.batch, prompt, new_tokens,
                                    rows / max(plan.batch, 1))
    plan.flops = sum(p.flops * p.count for p in plan.phases)


def time_forward(plan: StagePlan, config, rows: float, tokens: int, passes: float = 1.0) -> None:
    """Set ``plan``'s phases for scoring ``rows`` sequences of ``tokens`` tokens (``passes`` models each)."""
    from mubench.plan.stage import matmul_params

    plan.phases = forward_phases(plan.stage.split()[0], matmul_params(config), _weights(plan),
                                 plan.batch * tokens, rows / max(plan.batch, 1), passes)
    plan.flops = sum(p.flops * p.count for p in plan.phases)
