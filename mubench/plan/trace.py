"""Memory and time plan of every accelerator stage of a profile, from the project's own code.

Each stage's step runs on the model's real architecture under ``FakeTensorMode``. Shapes and dtypes are
exact, nothing is allocated, and no weights are needed. The steps are:
- one unlearning step of the method's real loss, through ``train.setup_training`` and ``train.train_step``;
- one generation batch, through ``generate``'s prefill and preallocated cache;
- one utility batch, through ``utility``'s scorer;
- the judges' generation.

``MemTracker`` records the peak over the step's phases (forward, backward, optimizer) by kind: parameters,
gradients, optimizer state, activations.

Every step is traced at full depth. A step's peak can move from one phase to another as depth grows (the
prefill's logits to the KV cache; the forward's logits to the backward's checkpointed activations). So a line
through two small depths can miss it: by 40% for Llama-2's generation, and by 6-7% for DPO's unlearning step.
A full-depth trace takes seconds for inference and under a minute for a training step. ``extrapolate`` with
two depths remains as the fast, approximate mode (``plan_training(..., full_depth=False)``).

A stage fits when its peak plus a margin (``PlanSettings.margin``, 10%) plus the CUDA context is under the
device's memory: the free memory at stage start, or ``--gpu-mem``. Time comes from a roofline per phase
(``plan.roofline``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from unittest import mock

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


# ---------------------------------------------------------------- tracing
@contextmanager
def fake_tensors():
    """FakeTensorMode in which reading a value (``.item()``, ``bool``, ``float``, ``int``) gives a placeholder
    (the loop's logging and finiteness checks run unchanged) and a data-dependent size (``nonzero``, boolean-mask
    indexing) is its upper bound; no real tensor is allocated."""
    from torch._subclasses import fake_impls
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    def nonzero_upper_bound(fake_mode, func, arg):
        # a data-dependent size taken at its upper bound: every position selected (e.g. every token scored)
        n = arg.numel()
        return arg.new_empty_strided((n, arg.dim()), (1, max(n, 1)), dtype=torch.int64)

    with FakeTensorMode(allow_non_fake_inputs=True), \
            mock.patch.dict(fake_impls.op_implementations_dict,
                            {torch.ops.aten.nonzero.default: nonzero_upper_bound}), \
            mock.patch.object(FakeTensor, "item", _or_placeholder(torch.Tensor.item, 0.0), create=True), \
            mock.patch.object(FakeTensor, "__bool__", _or_placeholder(torch.Tensor.__bool__, True), create=True), \
            mock.patch.object(FakeTensor, "__float__", _or_placeholder(torch.Tensor.__float__, 0.0), create=True), \
            mock.patch.object(FakeTensor, "__int__", _or_placeholder(torch.Tensor.__int__, 0), create=True), \
            mock.patch.object(torch.nn.Module, "to", _fake_module_to):
        yield


def _fake_module_to(module, *args, **kwargs):
    """``Module.to`` for fake parameters, which ``Module._apply`` cannot swap in place (PEFT casts each new
    adapter to its base layer's dtype, accelerate moves the model): each tensor is replaced by its converted
    copy (one fake device, so only the dtype of floating-point tensors changes); tied weights stay tied."""
    _, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
    if dtype is None:
        return module
    converted: dict[int, torch.Tensor] = {}

    def convert(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in converted:
            new = t.detach().to(dtype) if t.is_floating_point() else t
            converted[id(t)] = torch.nn.Parameter(new, t.requires_grad) if isinstance(t, torch.nn.Parameter) else new
        return converted[id(t)]

    for sub in module.modules():
        for table in (sub._parameters, sub._buffers):
            for name, tensor in table.items():
                if tensor is not None:
                    table[name] = convert(tensor)
    return module


def _or_placeholder(read, placeholder):
    """``read`` where fake tensors know the value (constants such as the optimizer's step), else ``placeholder``."""
    from torch._subclasses.fake_tensor import DataDependentOutputException

    def value(self):
        try:
            return read(self)
        except DataDependentOutputException:
            return placeholder
    return value


def _tracker_peak(tracker) -> dict[str, int]:
    snapshot = tracker.get_tracker_snapshot("peak")
    parts: dict[str, int] = {}
    for per_kind in snapshot.values():
        for kind, size in per_kind.items():
            name = {"Parameter": "parameters", "Gradient": "gradients", "Optstate": "optimizer",
                    "Activation": "activations", "Total": "total"}.get(getattr(kind, "value", kind), "other")
            parts[name] = parts.get(name, 0) + int(size)
    return parts


class _NoHook:
    def remove(self) -> None:
        pass


def measure(step: Callable[[], None], *external) -> dict[str, int]:
    """Peak bytes by kind while ``step`` runs, with ``external`` modules/optimizers counted from the start."""
    from torch.distributed._tools.mem_tracker import MemTracker

    class StepTracker(MemTracker):
        """MemTracker that allows the root model to run several times in one step (one forward per stream;
        its per-module statistics are restarted, the global peak is what the plan reads)."""

        def _pre_fw_hook(self, module, inputs) -> None:
            if module in self.memory_tracking and not self._mod_tracker.is_bw:
                parents = set(self._mod_tracker.parents) - {self._mod_tracker.get_known_fqn(module)}
                if parents == {"Global"}:
                    del self.memory_tracking[module]
            super()._pre_fw_hook(module, inputs)

        def _update_peak_stats(self, peak_state) -> None:
            # only the global peak (the per-module peaks cost O(modules) per operator: minutes under LoRA)
            for dev, snap in self._curr_mem_snap.items():
                if self._peak_mem.get(dev, 0) < snap["Total"]:
                    self._peak_mem[dev] = snap["Total"]
                    self._peak_mem_snap[dev] = dict(snap)

    tracker = StepTracker()
    modules = [e for e in external if isinstance(e, torch.nn.Module)]
    # MemTracker hooks the gradient of every parameter a module holds; a frozen one (the reference, a LoRA base,
    # RMU's untouched layers) cannot take a hook and has no gradient to track: mark it as already hooked
    for module in modules:
        for param in module.parameters():
            if not param.requires_grad:
                tracker._param_to_grad_hook_handles[param] = (_NoHook(), _NoHook())
    tracker.track_external(*modules, *[e for e in external if isinstance(e, torch.optim.Optimizer)])
    with tracker:
        step()
    return _tracker_peak(tracker)


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


def extrapolate(config, trace: Callable[[object], dict[str, int]], depths: tuple[int, int] | None
                ) -> tuple[dict[str, int], str]:
    """``trace(config)`` at full depth, or at two depths and linearly extrapolated to the full depth."""
    layers = config.num_hidden_layers
    if depths is None or layers <= depths[1]:
        return trace(config), "traced at full depth"
    low, high = (trace(at_depth(config, d)) for d in depths)
    scale = (layers - depths[0]) / (depths[1] - depths[0])
    parts = {k: max(0, round(low.get(k, 0) + (high.get(k, 0) - low.get(k, 0)) * scale)) for k in {*low, *high}}
    return parts, f"traced at {depths[0]} and {depths[1]} layers, extrapolated to {layers}"


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


def gpu_hours(plan: StagePlan, settings: PlanSettings, assume_graphs: bool = False) -> float:
    """The stage's GPU-hours on ``settings.gpu`` from its phases (``plan.roofline``); a plan without phases
    (compute only) at the stated utilisation. ``assume_graphs``: a stage that decodes compiled pays the assumed
    per-step overhead of graphs instead of the measured eager one."""
    from mubench.plan.roofline import GPUS, Phase, phase_seconds

    gpu = GPUS[settings.gpu]
    per_layer = settings.graph_step_overhead_s_per_layer if assume_graphs and plan.graphs else \
        settings.step_overhead_s_per_layer
    overhead = per_layer * plan.layers
    phases = plan.phases or [Phase(plan.stage, plan.flops, 0.0, 1.0)]
    return sum(phase_seconds(p, gpu, settings.mfu, settings.bandwidth_efficiency,
                             overhead if p.name == "decode" else 0.0) for p in phases) / 3600


def check_fits(plans: list[StagePlan], limit_bytes: int, gpus: int = 1, settings: PlanSettings = PlanSettings(),
               context: bool = True) -> None:
    """Raise PlanError (one line) for the first stage whose need (peak + margin + CUDA context) exceeds
    ``limit_bytes``. ``context=False`` when ``limit_bytes`` is the free memory measured in a process that holds
    its context already."""
    for plan in plans:
        need = plan.need(settings, context)
        if need > limit_bytes:
            parts = f"peak {plan.peak / GB:.1f} + {settings.margin:.0%} margin" + \
                (f" + {settings.cuda_context_gb:g} GB CUDA context" if context else "")
            raise PlanError(f"{plan.stage}: needs {need / GB:.1f} GB of accelerator memory ({parts}), "
                            f"{limit_bytes / GB:.1f} GB {'free' if not context else 'available'}"
                            f"{f' per GPU ({gpus} GPUs)' if gpus > 1 else ''}; fix: "
                            f"{plan.fix_text(limit_bytes, settings, context)}")


def device_memory() -> int | None:
    """Total memory of the visible GPU (bytes), or None without one."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory


def free_device_memory() -> int | None:
    """Free memory of the visible GPU now (bytes; this process's CUDA context already taken), or None."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.mem_get_info(0)[0]


def ensure_fits(device: str, planner: Callable[..., list[StagePlan]], *args) -> None:
    """On the GPU, plan the stage (``planner(*args)``) and refuse it before anything is loaded when its peak
    plus the margin does not fit the GPU's free memory now (another process's, or a leak's, use counts). The
    plan runs in a fresh single-process child: its fake tensors, patches and accelerate state never touch the
    stage's own process (nor a distributed launch's process group)."""
    if device != "cuda":
        return
    limit = free_device_memory()
    if limit is None:
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=single_process) as pool:
        plans = pool.submit(planner, *args).result()
    check_fits(plans, limit, context=False)


def single_process() -> None:
    """Forget a distributed launch's variables (a plan is one process on the CPU) and fake tensors' warning."""
    import os
    import warnings

    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(key, None)
    for key in [k for k in os.environ if k.startswith("ACCELERATE_")]:
        os.environ.pop(key)
    warnings.filterwarnings("ignore", message=".*data pointer of FakeTensor.*")


@contextmanager
def isolated_accelerate():
    """Run accelerate code (``train.setup_training``) in a plan without touching the process's accelerate state
    (a singleton: a plan's CPU/bf16 settings would otherwise stick to the real run, or clash with it)."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    classes = (PartialState, AcceleratorState, GradientState)
    saved = [dict(cls._shared_state) for cls in classes]
    for cls in classes:
        cls._shared_state.clear()
    try:
        yield
    finally:
        for cls, state in zip(classes, saved, strict=True):
            cls._shared_state.clear()
            cls._shared_state.update(state)
