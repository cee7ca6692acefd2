"""What a stage's plan is (``StagePlan``, ``PlanSettings``, ``PlanError``) and the model arithmetic it rests on
(an architecture at a depth, its matmul parameters). Tracing (``plan.trace``), time (``plan.roofline``) and the
fit check (``plan.fit``) build on these."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mubench.core.config import ConfigError

GB = 1e9
TRACE_DEPTHS = ((2, 4), (8, 12), (8, 16))


@dataclass(frozen=True)
class PlanSettings:
    """Token lengths the plan assumes where the data decide them (stated in the table's caption)."""

    prompt_tokens: int = 1024  # the longest jailbreak templates (AIM, Developer Mode) run 400-1,500 tokens
    judge_template_tokens: int = 384  # a judge's instructions around prompt and response
    utility_context_tokens: int = 1024
    rows_per_dataset: int = 500  # where a size is `all` and the catalog does not know the dataset's rows
    mean_prompt_tokens: int = 256  # time only: plain prompts are ~30 tokens, jailbreak templates 400-1,500
    gpu: str = "h100"  # a key of ``plan.roofline.GPUS``: the card the GPU-hours are for
    mfu: float = 0.35  # share of the bf16 peak a compute-bound phase (prefill, training) reaches
    bandwidth_efficiency: float = 0.7  # share of the memory bandwidth a memory-bound phase (decoding) reaches
    # per decoding step and layer: launch and Python overhead, measured (H200: 1,600 new tokens/s at batch 64 on a
    # 30-layer 135M model, 40 ms per step, far from both bounds)
    step_overhead_s_per_layer: float = 1.3e-3
    # the same with the decoding step compiled to CUDA graphs (``generation.decode: graphs``): ASSUMED, not measured
    # (a quarter: HF reports up to 4x from a static cache with reduce-overhead); the plan shows it in its own
    # column until benchmarks/gpu_full_size.py measures it
    graph_step_overhead_s_per_layer: float = 0.325e-3
    margin: float = 0.10  # headroom over the planned peak: allocator fragmentation and the caching reserve
    cuda_context_gb: float = 1.0  # the CUDA context and cuBLAS workspace, outside the traced tensors


@dataclass
class StagePlan:
    """One stage's planned peak accelerator memory (bytes; resident parts by kind) and compute (FLOPs)."""

    stage: str
    peak: int
    parts: dict[str, int] = field(default_factory=dict)
    flops: float = 0.0
    how: str = ""
    fixes: list[str] = field(default_factory=list)
    per_row: int = 0  # bytes per batch row (generation/scoring stages): the batch size that fits follows
    batch: int = 0
    batch_key: str = ""
    phases: list = field(default_factory=list)  # ``plan.roofline.Phase``: the stage's whole work, for its time
    layers: int = 32  # decoder layers (a decoding step's overhead is per layer)
    graphs: bool = False  # decodes with ``generation.decode: graphs`` (timed apart, at an assumed overhead)

    def need(self, settings: PlanSettings, context: bool = True) -> float:
        """Bytes the stage needs on the device: the peak plus the margin (plus the CUDA context)."""
        return self.peak * (1 + settings.margin) + (settings.cuda_context_gb * GB if context else 0)

    def fitting_batch(self, limit: int, settings: PlanSettings, context: bool = True) -> int:
        """The largest batch whose need fits ``limit`` bytes (0 when even one row does not)."""
        if not self.per_row:
            return 0
        usable = (limit - (settings.cuda_context_gb * GB if context else 0)) / (1 + settings.margin)
        return max(0, int((usable - (self.peak - self.per_row * self.batch)) // self.per_row))

    def fix_text(self, limit: int, settings: PlanSettings, context: bool = True) -> str:
        fixes = list(self.fixes)
        if self.batch_key:
            fits = self.fitting_batch(limit, settings, context)
            if 0 < fits < self.batch:
                fixes.insert(0, f"{self.batch_key}: {fits}")
        return "; or ".join(fixes) if fixes else "a GPU with more memory"


class PlanError(ConfigError):
    """A stage whose planned peak memory exceeds the accelerator's: one line naming stage, need and the settings
    that fix it (a settings problem, so exit 2 like any other)."""


def at_depth(config, layers: int):
    """``config`` with ``layers`` decoder layers (everything else unchanged)."""
    copy = type(config).from_dict(config.to_dict())
    copy.num_hidden_layers = layers
    if getattr(copy, "layer_types", None):
        copy.layer_types = copy.layer_types[:1] * layers
    return copy


def build(config, dtype: torch.dtype):
    """The architecture with random weights (call under ``fake_tensors`` or a meta device)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(config, dtype=dtype)


def nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def matmul_params(config) -> int:
    """Parameters that take part in a token's matmuls (all but the input embedding; the LM head counts)."""
    with torch.device("meta"):
        model = build(config, torch.bfloat16)
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    tied = head is embed
    return total - embed.numel() + (head.numel() if tied else 0)


def inference_plan(stage, parts, how, batch, batch_key, config, tokens) -> StagePlan:
    weights = parts.get("parameters", 0)
    per_row = max(0, parts.get("total", 0) - weights) // max(batch, 1)
    return StagePlan(stage, parts.get("total", 0), parts, 2.0 * matmul_params(config) * tokens * batch, how,
                     per_row=per_row, batch=batch, batch_key=batch_key, layers=config.num_hidden_layers)
