"""Wall-clock of a run on N GPUs: the plan's GPU-hours laid on DVC's stage graph (``mubench plan --gpus N``).

The plan (``mubench/plan``) times its entries per kind and model (all variants of a model's generation together,
every seed of an unlearning method together); a DVC stage instance is one variant's or one seed's share of them:
- ``unlearn@M-METHOD-S``: the entry ``unlearn M/METHOD`` over the seeds;
- ``evaluate-base@M``, ``evaluate@M-...``: ``generate M``, ``utility M``, ``utility generation M`` and ``drift M``
  over the variants;
- ``tamper-base@M``, ``tamper@M-...``: each tamper attack's entry and the ``(tampered)`` evaluations over the
  variants;
- ``jailbreak-fit@M-gcg``: ``gcg M``;
- the LLM judge's entries: spread evenly over every evaluate and tamper stage (each judges its own answers);
- every other stage (fetch, build, report, the template jailbreaks) runs on a CPU and takes no GPU time here.

The graph is the one DVC builds from ``dvc.yaml`` with the profile as ``params.yaml`` (in a scratch folder), and
the schedule is a list schedule: whenever a GPU is free, the ready stage with the longest path still ahead of it
starts (the critical path first). The result is bounded below by the critical path and by GPU-hours / N.
"""

from __future__ import annotations

import heapq
import shutil
import tempfile
from pathlib import Path

from mubench.core.artifacts import validated
from mubench.core.errors import InvalidValue
from mubench.core.io import read_json
from mubench.core.records import PlanRow
from mubench.tools.dag import StageGraph, load_graph


def profile_graph(root: Path, params_file: Path) -> StageGraph:
    """DVC's graph of ``dvc.yaml`` with ``params_file`` as the params (no data needed: edges come from the
    declared deps and outs)."""
    from dvc.repo import Repo

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        import logging

        logging.getLogger("dvc").setLevel(logging.WARNING)  # not DVC's "Initialized DVC repository"
        Repo.init(str(work), no_scm=True).close()
        shutil.copy(root / "dvc.yaml", work / "dvc.yaml")
        shutil.copy(params_file, work / "params.yaml")
        return load_graph(work)


def _share(stage: str, params) -> tuple[str, str] | None:
    """(kind, model) of a DVC stage instance, from its name and the profile's models."""
    kind, _, rest = stage.partition("@")
    for model in sorted(params.models, key=len, reverse=True):
        if rest == model or rest.startswith(model + "-"):
            return kind, model
    return None


def _row_kind(name: str, params) -> tuple[str, str]:
    """(model, kind) of a plan row: kind is ``unlearn/METHOD``, ``evaluate``, ``tamper``, ``gcg`` or ``judge``."""
    if name.startswith("judge"):  # "judge NAME (MODEL)": the judge at that model's batch; "judge NAME": any model
        model = name.rsplit("(", 1)[1].rstrip(")") if name.endswith(")") else ""
        return model, "judge"
    words = name.replace(" (tampered)", "").split()
    model = words[-1].split("/")[0]
    kind = ("tamper" if "(tampered)" in name or words[0] in params.tamper.names
            else "evaluate" if words[0] in ("generate", "utility", "drift")
            else "gcg" if words[0] == "gcg"
            else f"unlearn/{words[-1].split('/')[1]}" if words[0] == "unlearn" else "other")
    return model, kind


def _stage_kind(stage: str, params) -> tuple[str, str] | None:
    """(model, the plan kind whose rows this DVC stage runs), or None for a stage the plan does not time."""
    share = _share(stage, params)
    if not share:
        return None
    kind, model = share
    if kind == "unlearn":
        return model, "unlearn/" + stage.split("@")[1][len(model) + 1:].rsplit("-", 1)[0]
    if kind in ("evaluate", "evaluate-base", "tamper", "tamper-base"):
        return model, kind.removesuffix("-base")
    if kind == "jailbreak-fit" and stage.endswith("-gcg"):
        return model, "gcg"
    return None


def stage_hours(graph: StageGraph, rows: list[PlanRow], params) -> dict[str, float]:
    """GPU-hours of each DVC stage instance, from the plan's rows (``stage``, ``gpu_hours``)."""
    per = {"unlearn": len(params.seeds), "evaluate": len(params.variants()), "tamper": len(params.variants()),
           "gcg": 1}
    totals: dict[tuple[str, str], float] = {}
    for row in rows:
        key = _row_kind(row.stage, params)
        totals[key] = totals.get(key, 0.0) + row.gpu_hours
    judged = [s for s in graph.order if (_stage_kind(s, params) or ("", ""))[1] in ("evaluate", "tamper")]
    by_model = {m: [s for s in judged if _stage_kind(s, params)[0] == m] for m in params.models}
    out: dict[str, float] = {}
    for stage in graph.order:
        key = _stage_kind(stage, params)
        hours = totals.get(key, 0.0) / per[key[1].split("/")[0]] if key else 0.0
        if stage in judged:  # a judge row of this stage's model over that model's judging stages; any-model rows
            model = key[0]    # over every judging stage
            hours += totals.get((model, "judge"), 0.0) / max(1, len(by_model[model]))
            hours += totals.get(("", "judge"), 0.0) / len(judged)
        out[stage] = hours
    return out


def stage_needs(graph: StageGraph, rows: list[PlanRow], params) -> dict[str, float]:
    """The GPU memory (GB: peak + margin + CUDA context) each DVC stage instance needs by the plan: the largest
    need among its rows (an evaluation or tamper stage loads the judge too: its rows count)."""
    needs: dict[tuple[str, str], float] = {}
    for row in rows:
        key = _row_kind(row.stage, params)
        needs[key] = max(needs.get(key, 0.0), row.need_gb or 0.0)
    out = {}
    for stage in graph.order:
        key = _stage_kind(stage, params)
        if key:
            judge = (max(needs.get(("", "judge"), 0.0), needs.get((key[0], "judge"), 0.0))
                     if key[1] in ("evaluate", "tamper") else 0.0)
            out[stage] = max(needs.get(key, 0.0), judge)
    return out


def list_schedule(graph: StageGraph, hours: dict[str, float], gpus: int) -> float:
    """The finish time (hours) of ``graph`` on ``gpus`` GPUs; stages of 0 hours need no GPU."""
    tail: dict[str, float] = {}
    downstream: dict[str, list[str]] = {s: [] for s in graph.order}
    for stage in graph.order:
        for up in graph.upstream[stage]:
            downstream[up].append(stage)
    for stage in reversed(graph.order):
        tail[stage] = hours.get(stage, 0.0) + max((tail[d] for d in downstream[stage]), default=0.0)
    waiting = {s: len(graph.upstream[s]) for s in graph.order}
    ready = [(-tail[s], s) for s in graph.order if waiting[s] == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []  # (finish time, stage)
    now, free = 0.0, gpus

    def finish(stage: str) -> None:
        for d in downstream[stage]:
            waiting[d] -= 1
            if waiting[d] == 0:
                heapq.heappush(ready, (-tail[d], d))

    while ready or running:
        started = True
        while ready and started:
            started = False
            _, stage = ready[0]
            if hours.get(stage, 0.0) == 0.0:
                heapq.heappop(ready)
                finish(stage)
                started = True
            elif free > 0:
                heapq.heappop(ready)
                heapq.heappush(running, (now + hours[stage], stage))
                free -= 1
                started = True
        if running:
            now, stage = heapq.heappop(running)
            free += 1
            finish(stage)
    return now


def makespans(graph: StageGraph, hours: dict[str, float], counts: list[int]) -> dict:
    """GPU-hours, the critical path and the wall-clock on each number of GPUs in ``counts``."""
    length, path = graph.critical_path(hours)
    return {"gpu_hours": round(sum(hours.values()), 1), "critical_path_hours": round(length, 1),
            "critical_path": [s for s in path if hours.get(s, 0.0) > 0],
            "wall_clock_hours": {n: round(list_schedule(graph, hours, n), 1) for n in counts}}


def read_saved_plan(path: Path) -> tuple[dict, list[PlanRow]]:
    """A saved ``mubench plan --json``: the whole JSON and its stage rows, each checked (one line naming the row
    and the key when it does not match)."""
    try:
        data = read_json(path)
        stages = data["stages"]
    except (OSError, KeyError, TypeError) as exc:
        raise InvalidValue(f"{path}: not the JSON of `mubench plan --json` ({exc}); make it with "
                           "`mubench plan --json > plan.json`") from None
    return data, [validated(PlanRow, row, f"{path}: stages[{i}]") for i, row in enumerate(stages)]


def saved_plan_resources(path: Path, graph: StageGraph, params) -> tuple[dict[str, float], dict[str, float]]:
    """(GPU-hours, GPU memory need) of each stage of ``graph`` from a saved ``mubench plan --json``."""
    rows = read_saved_plan(path)[1]
    return stage_hours(graph, rows, params), stage_needs(graph, rows, params)
