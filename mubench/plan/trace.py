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
from unittest import mock

import torch

from mubench.plan.stage import at_depth


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
