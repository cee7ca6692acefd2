"""Whether a stage fits the accelerator, and what it costs in GPU-hours: read from a stage's plan, never from
its name. ``ensure_fits`` plans a stage in a fresh child process before the stage loads anything."""

from __future__ import annotations

from collections.abc import Callable

import torch

from mubench.plan.roofline import GPUS, Phase, phase_seconds
from mubench.plan.stage import GB, PlanError, PlanSettings, StagePlan
from mubench.plan.trace import single_process


def gpu_hours(plan: StagePlan, settings: PlanSettings, assume_graphs: bool = False) -> float:
    """The stage's GPU-hours on ``settings.gpu`` from its phases (``plan.roofline``); a plan without phases
    (compute only) at the stated utilisation. ``assume_graphs``: a stage that decodes compiled pays the assumed
    per-step overhead of graphs instead of the measured eager one."""

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
