"""``mubench check`` and ``mubench plan``: validate a params file and, with a GPU in sight, plan every
accelerator stage of it (``mubench.plan.profile``) before anything loads."""

from __future__ import annotations

import json
from pathlib import Path

from mubench.core.config import load_params
from mubench.core.workspace import Workspace
from mubench.plan.profile import hours_by_kind, plan_profile, table_rows
from mubench.plan.trace import PlanError, PlanSettings, device_memory


def check(path: Path, ws: Workspace, gpu_mem: float | None) -> list[str]:
    """Lines saying what ``path`` would run; with ``gpu_mem`` (GB) or a visible GPU, every GPU stage is planned
    and one that cannot fit raises PlanError."""
    p = load_params(path)
    lines = [f"{path}: ok — models {p.models}, methods {p.methods}, jailbreaks {p.jailbreaks.names()}, "
             f"tamper {p.tamper.names}, datasets {p.datasets}"]
    visible = device_memory()
    if gpu_mem is not None or visible is not None:
        limit = int(gpu_mem * 1e9) if gpu_mem is not None else visible
        plans = plan_profile(p, ws=ws, limit=limit)
        lines.append(f"{path}: every GPU stage fits {limit / 1e9:.1f} GB (peak {max(x.peak for x in plans) / 1e9:.1f} "
                     "GB; `mubench plan` for the table)")
    return lines


def plan(path: Path, ws: Workspace, gpu_mem: float | None, as_json: bool, say) -> None:
    """Print the plan of every GPU stage (a table, or JSON); PlanError when a stage does not fit ``gpu_mem``."""
    p = load_params(path)
    settings = PlanSettings()
    limit = int(gpu_mem * 1e9) if gpu_mem is not None else None
    plans = plan_profile(p, settings, ws=ws, progress=None if as_json else (lambda s: say(f"[plan] {s}")))
    rows = table_rows(plans, limit, settings)
    hours = hours_by_kind(plans, settings)
    if as_json:
        print(json.dumps({"params": str(path), "gpu_mem_gb": gpu_mem, "settings": settings.__dict__,
                          "stages": rows, "gpu_hours": hours}, indent=1))
    else:
        _table(path, rows, hours, settings, gpu_mem)
    misfits = [row for row in rows if row["fits"] is False]
    if misfits:
        row = misfits[0]
        raise PlanError(f"{row['stage']}: needs {row['peak_gb']:.1f} GB, {gpu_mem:.1f} GB available "
                        f"({len(misfits)} stage(s) do not fit); fix: {row['fix']}")


def _table(params: Path, rows: list[dict], hours: dict, settings: PlanSettings, gpu_mem: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mubench plan {params}" + (f" (--gpu-mem {gpu_mem:g})" if gpu_mem else ""),
                  caption=f"GB = 1e9 bytes. Peak: traced (MemTracker on fake tensors). Assumed: prompts "
                          f"{settings.prompt_tokens} tokens, utility contexts {settings.utility_context_tokens}, "
                          f"<= {settings.rows_per_dataset} rows per dataset; GPU-hours at {settings.gpu_tflops:g} "
                          f"TFLOP/s x MFU {settings.mfu:g}.")
    for column in ("stage", "peak GB", "weights GB", "grads GB", "optimizer GB", "transient GB", "fits", "GPU-h",
                   "how"):
        table.add_column(column, justify="left" if column in ("stage", "how") else "right")
    for row in rows:
        fits = "" if row["fits"] is None else ("yes" if row["fits"] else "[red]NO[/red]")
        table.add_row(row["stage"], f"{row['peak_gb']:.1f}", f"{row['parameters_gb']:.1f}",
                      f"{row['gradients_gb']:.2f}", f"{row['optimizer_gb']:.2f}", f"{row['transient_gb']:.1f}", fits,
                      f"{row['gpu_hours']:.2f}", row["how"])
    console = Console(width=200)
    console.print(table)
    total = sum(hours.values())
    console.print("GPU-hours of a full run: " + ", ".join(f"{k} {v:.1f}" for k, v in hours.items())
                  + f"; total {total:.1f}", markup=False)
