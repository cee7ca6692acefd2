"""``mubench check`` and ``mubench plan``: validate a params file and, with a GPU in sight, plan every
accelerator stage of it (``mubench.plan.profile``) before anything loads."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mubench.core.config import ConfigError, HubModel, Params
from mubench.core.records import PlanRow
from mubench.core.workspace import Workspace
from mubench.families import load_params
from mubench.plan.fit import device_memory
from mubench.plan.profile import hours_by_kind, plan_profile, table_rows
from mubench.plan.stage import PlanError, PlanSettings


def check(path: Path, ws: Workspace, gpu_mem: float | None) -> list[str]:
    """Lines saying what ``path`` would run; with ``gpu_mem`` (GB) or a visible GPU, every GPU stage is planned
    and one that cannot fit (peak + margin + CUDA context) raises PlanError."""
    p = load_params(path)
    problems = profile_problems(p)
    if problems:
        raise ConfigError("\n".join(f"{path}: {line}" for line in problems))
    lines = [f"{path}: ok — models {p.models}, methods {p.methods}, jailbreaks {p.jailbreaks.names()}, "
             f"tamper {p.tamper.names}, datasets {p.datasets}"]
    visible = device_memory()
    if gpu_mem is not None or visible is not None:
        limit = int(gpu_mem * 1e9) if gpu_mem is not None else visible
        settings = PlanSettings()
        plans = plan_profile(p, settings, ws=ws, limit=limit)
        top = max(plans, key=lambda x: x.peak)
        lines.append(f"{path}: every GPU stage fits {limit / 1e9:.1f} GB (largest need {top.need(settings) / 1e9:.1f} "
                     f"GB: peak {top.peak / 1e9:.1f} + {settings.margin:.0%} margin + {settings.cuda_context_gb:g} GB "
                     "CUDA context; `mubench plan` for the table)")
    return lines


SHA = re.compile(r"^[0-9a-f]{40}$")


def profile_problems(p: Params) -> list[str]:
    """What a params file asks that cannot work, found without data or network: sizes above a dataset's known
    rows, datasets whose every allowed source is an unpinned Hub repo, Hub models and LLM judges without a full
    commit revision. One line each (the Hub pins: one line with every `mubench data pin` to run)."""
    from mubench.core.environment import mirror_root
    from mubench.datasets import DATASETS
    from mubench.datasets.catalog import HubSource, UnpinnedError
    from mubench.datasets.fetch import candidates
    from mubench.judges import JUDGES
    from mubench.judges.llm import LlmJudge

    problems = []
    sizes = p.data.sizes
    for key, names in (("harmful_per_dataset", p.data.harmful), ("oversafety_per_dataset", p.data.oversafety),
                       ("utility_per_task", p.data.utility), ("forget", [p.data.forget_source]),
                       ("retain", [p.data.retain_source]), ("drift", [p.data.drift_source])):
        size = getattr(sizes, key)
        if size == "all":
            continue
        small = [(n, DATASETS.entry(n).rows) for n in names if (DATASETS.entry(n).rows or size) < size]
        if small:
            listed = ", ".join(f"{n} has {rows}" for n, rows in small)
            problems.append(f"data.sizes.{key} = {size}: {listed} rows; lower it or set it to `all`")
    mirror = mirror_root()
    unpinned = []
    for name in p.datasets:
        spec = DATASETS.entry(name)
        usable = []
        for index in candidates(spec, p.data.sources, mirror):
            source = spec.sources[index]
            if isinstance(source, HubSource):
                try:
                    source.pins()
                except UnpinnedError:
                    continue
            usable.append(index)
        if not usable:
            unpinned.append(name)
    if unpinned:
        pins = " && ".join(f"mubench data pin {n}" for n in unpinned)
        problems.append(f"{len(unpinned)} dataset(s) have no pinned source allowed by data.sources "
                        f"({', '.join(unpinned)}); where the Hub is reachable run `{pins}` and commit "
                        "mubench/datasets/hub_pins.json")
    for name in p.models:
        spec = p.model_zoo[name]
        if isinstance(spec, HubModel) and not SHA.match(spec.revision):
            problems.append(f"model_zoo.{name}.revision = {spec.revision!r}: pin the full 40-character commit "
                            f"sha of {spec.repo} (a branch or tag moves)")
    for role in ("safety", "oversafety"):
        name = getattr(p.judge, role)
        cls = JUDGES.entry(name)
        if not issubclass(cls, LlmJudge):
            continue
        options = cls.Params(**p.judge.options.get(name, {}))
        if Path(options.model).is_dir():
            continue
        if not options.revision or not SHA.match(options.revision):
            problems.append(f"judge.options.{name}.revision = {options.revision!r}: pin the full 40-character "
                            f"commit sha of {options.model}")
    return problems


def wall_clock(path: Path, ws: Workspace, rows: list[PlanRow], gpus: list[int]) -> dict:
    """The run's wall-clock on each number of GPUs (``mubench/tools/makespan.py``), from the plan's rows."""
    from mubench.tools.makespan import makespans, profile_graph, stage_hours

    graph = profile_graph(ws.root, path)
    return makespans(graph, stage_hours(graph, rows, load_params(path)), gpus)


def say_wall_clock(result: dict, card: str, say) -> None:
    say(f"Wall-clock on {card} (list schedule over DVC's stage graph): "
        + ", ".join(f"{n} GPU{'s' if n > 1 else ''}: {h:.1f} h" for n, h in result["wall_clock_hours"].items())
        + f"; critical path {result['critical_path_hours']:.1f} h ({' -> '.join(result['critical_path'])}), "
        f"GPU-hours {result['gpu_hours']:.1f}")


def replan(saved: Path, path: Path, ws: Workspace, gpus: list[int], as_json: bool, say) -> None:
    """The wall-clock from a saved plan (``mubench plan --json`` output) without tracing again."""
    from mubench.tools.makespan import read_saved_plan

    data, rows = read_saved_plan(saved)
    result = wall_clock(path, ws, rows, gpus)
    if as_json:
        print(json.dumps({"params": str(path), "from": str(saved), "card": data.get("gpu", {}).get("name"),
                          **result}, indent=1))
    else:
        say_wall_clock(result, data.get("gpu", {}).get("name", "the saved plan's card"), say)


def propose(path: Path, ws: Workspace, gpu_mem: float | None, as_json: bool, say, margin: float | None = None) -> None:
    """Print the largest batch per model and kind of work that fits ``gpu_mem`` GB (default 80) with the margin,
    and the params.yaml keys that set them (``mubench.plan.batches``)."""
    from dataclasses import replace

    from mubench.plan.batches import as_yaml, propose_batches

    p = load_params(path)
    settings = replace(PlanSettings(), **({} if margin is None else {"margin": margin}))
    card = gpu_mem if gpu_mem is not None else 80.0
    proposal = propose_batches(p, settings, int(card * 1e9), ws,
                               progress=None if as_json else (lambda s: say(f"[plan] batches {s}")))
    if as_json:
        print(json.dumps({"params": str(path), "gpu_mem_gb": card, "margin": settings.margin,
                          "batches": proposal}, indent=1))
        return
    say(f"The largest batches that fit {card:g} GB with a {settings.margin:.0%} margin and "
        f"{settings.cuda_context_gb:g} GB CUDA context (now: "
        + "; ".join(f"{m} {p.batches(m)}" for m in p.models) + "):")
    say(as_yaml(proposal))


def plan(path: Path, ws: Workspace, gpu_mem: float | None, as_json: bool, say, gpu: str = "h100",
         margin: float | None = None, gpus: list[int] | None = None) -> None:
    """Print the plan of every GPU stage (a table, or JSON) with GPU-hours on ``gpu`` and, for each count in
    ``gpus``, the wall-clock on that many GPUs; PlanError when a stage does not fit ``gpu_mem`` with its margin."""
    from dataclasses import replace

    from mubench.plan.roofline import GPUS

    p = load_params(path)
    if gpu not in GPUS:
        raise ConfigError(f"--gpu {gpu!r}: not a card the plan knows; use one of {', '.join(GPUS)}")
    settings = replace(PlanSettings(), gpu=gpu, **({} if margin is None else {"margin": margin}))
    limit = int(gpu_mem * 1e9) if gpu_mem is not None else None
    plans = plan_profile(p, settings, ws=ws, progress=None if as_json else (lambda s: say(f"[plan] {s}")))
    rows = table_rows(plans, limit, settings)
    hours = hours_by_kind(plans, settings)
    # compiled decoding's overhead is assumed until a GPU measures it: its own figures, never mixed into the above
    graph_hours = hours_by_kind(plans, settings, assume_graphs=True) if p.generation.graphs else None
    # the same plans timed on every card the roofline knows (memory is the card's own business: --gpu-mem)
    by_card = {card: hours_by_kind(plans, replace(settings, gpu=card)) for card in GPUS}
    schedule = wall_clock(path, ws, rows, gpus) if gpus else None
    if as_json:
        print(json.dumps({"params": str(path), "gpu_mem_gb": gpu_mem, "settings": settings.__dict__,
                          "gpu": GPUS[gpu].__dict__, "stages": [row.to_json() for row in rows],
                          "gpu_hours": hours,
                          "gpu_hours_total": round(sum(hours.values()), 1),
                          **({"gpu_hours_graphs_assumed": graph_hours,
                              "gpu_hours_graphs_assumed_total": round(sum(graph_hours.values()), 1)}
                             if graph_hours else {}),
                          "gpu_hours_by_card": {card: {**h, "total": round(sum(h.values()), 1)}
                                                for card, h in by_card.items()},
                          **({"schedule": schedule} if schedule else {})}, indent=1))
    else:
        _table(path, rows, hours, settings, gpu_mem, graph_hours)
        say("GPU-hours on other cards: " + ", ".join(f"{GPUS[c].name} {sum(h.values()):.1f}"
                                                     for c, h in by_card.items() if c != gpu))
        if schedule:
            say_wall_clock(schedule, GPUS[gpu].name, say)
    misfits = [row for row in rows if row.fits is False]
    if misfits:
        row = misfits[0]
        raise PlanError(f"{row.stage}: needs {row.need_gb:.1f} GB (peak {row.peak_gb:.1f} + "
                        f"{settings.margin:.0%} margin + {settings.cuda_context_gb:g} GB CUDA context), "
                        f"{gpu_mem:.1f} GB available ({len(misfits)} stage(s) do not fit); fix: {row.fix}")


def _table(params: Path, rows: list[PlanRow], hours: dict, settings: PlanSettings, gpu_mem: float | None,
           graph_hours: dict | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from mubench.plan.roofline import GPUS

    card = GPUS[settings.gpu]
    table = Table(title=f"mubench plan {params}" + (f" (--gpu-mem {gpu_mem:g})" if gpu_mem else ""),
                  caption=f"GB = 1e9 bytes. Peak: traced (MemTracker on fake tensors); need = peak + "
                          f"{settings.margin:.0%} margin + {settings.cuda_context_gb:g} GB CUDA context. Memory "
                          f"assumes prompts of {settings.prompt_tokens} tokens and utility contexts of "
                          f"{settings.utility_context_tokens}. GPU-hours on {card.name} ({card.bf16_tflops:g} "
                          f"TFLOP/s bf16 x {settings.mfu:g}, {card.bandwidth_tbs:g} TB/s x "
                          f"{settings.bandwidth_efficiency:g}, {settings.step_overhead_s_per_layer * 1e3:g} ms per "
                          f"decoding step and layer), mean prompt {settings.mean_prompt_tokens} tokens, every "
                          f"response at max_new_tokens; rows from the catalog (else {settings.rows_per_dataset}).")
    columns = ["stage", "peak GB", "need GB", "weights GB", "grads GB", "optimizer GB", "transient GB",
               "other resident GB", "fits", "GPU-h", *(["GPU-h graphs (assumed)"] if graph_hours else []), "how"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("stage", "how") else "right")
    for row in rows:
        fits = "" if row.fits is None else ("yes" if row.fits else "[red]NO[/red]")
        table.add_row(row.stage, f"{row.peak_gb:.1f}", f"{row.need_gb:.1f}", f"{row.parameters_gb:.1f}",
                      f"{row.gradients_gb:.2f}", f"{row.optimizer_gb:.2f}", f"{row.transient_gb:.1f}",
                      f"{row.other_resident_gb:.1f}", fits, f"{row.gpu_hours:.2f}",
                      *([f"{row.gpu_hours_graphs_assumed:.2f}"] if graph_hours else []), row.how)
    console = Console(width=200)
    console.print(table)
    total = sum(hours.values())
    console.print("GPU-hours of a full run: " + ", ".join(f"{k} {v:.1f}" for k, v in hours.items())
                  + f"; total {total:.1f}", markup=False)
    if graph_hours:
        console.print(f"With generation.decode: graphs at an ASSUMED {settings.graph_step_overhead_s_per_layer * 1e3:g}"
                      f" ms per decoding step and layer (measured eager: {settings.step_overhead_s_per_layer * 1e3:g};"
                      " benchmarks/gpu_full_size.py measures it): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in graph_hours.items())
                      + f"; total {sum(graph_hours.values()):.1f}", markup=False)
