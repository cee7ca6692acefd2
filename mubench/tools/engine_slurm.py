"""``mubench submit slurm``: each out-of-date stage instance a Slurm job, chained by Slurm's own dependencies.

A job waits for the jobs of the stages it reads through ``--dependency=afterok:...`` and is cancelled by Slurm
when one of them fails (``--kill-on-invalid-dep=yes``), so the graph runs without a process of ours watching it.
Each job runs ``mubench submit run-stage STAGE`` (DVC runs the stage; see ``mubench/tools/submit.py``), under the
command prefix a site needs (an Apptainer image, a module load). Stages that run a model (they list ``device``
in dvc.yaml) ask for GPUs when the profile runs on CUDA; the others ask for none. Logs go to
``logs/submit/STAGE.log``; the submission to ``logs/submit/state.json``, which ``mubench submit status`` reads
back through ``squeue`` and ``scontrol``.
"""

from __future__ import annotations

import fnmatch
import math
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mubench.core.errors import FailedStep
from mubench.tools.dag import StageGraph
from mubench.tools.submit import ENDED, StageRun, clear_stale_locks, commit_hint, log_path, read_state, write_state

# Slurm's job states -> ours (a job cancelled because an upstream failed is told apart by its reason)
STATES = {"PENDING": "pending", "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running",
          "COMPLETED": "done", "FAILED": "failed", "TIMEOUT": "failed", "NODE_FAIL": "failed",
          "OUT_OF_MEMORY": "failed", "BOOT_FAIL": "failed", "DEADLINE": "failed", "PREEMPTED": "cancelled",
          "CANCELLED": "cancelled", "SUSPENDED": "pending", "REQUEUED": "pending"}
WHY = {"TIMEOUT": "over its time limit", "NODE_FAIL": "its node failed", "OUT_OF_MEMORY": "out of memory",
       "PREEMPTED": "preempted", "DEADLINE": "past its deadline", "BOOT_FAIL": "its node did not boot"}


@dataclass
class SlurmSettings:
    """Where and how jobs run; every field is a ``mubench submit slurm`` option."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    sbatch_args: list[str] = field(default_factory=list)
    prefix: str = ""  # e.g. "apptainer exec --nv mubench.sif"
    minutes: int = 120  # the time limit of a stage without its own
    minutes_for: dict[str, int] = field(default_factory=dict)  # stage glob -> minutes
    mem_gb: float | None = None
    gpus: int = 0  # per stage that runs a model
    cpus: int | None = None
    # from a saved plan (`mubench plan --json`): each GPU stage's GPU-hours and GPU memory need (GB)
    plan_hours: dict[str, float] = field(default_factory=dict)
    plan_needs: dict[str, float] = field(default_factory=dict)
    time_factor: float = 2.0  # a GPU stage's time limit = its planned time x this (at least 10 minutes)
    gpu_mem: float | None = None  # GB of one GPU where the jobs run: a stage that needs more is refused


def _run(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise FailedStep(f"{args[0]}: not found; `mubench submit slurm` runs where Slurm's commands are "
                           "(a login node), or use `mubench submit local`") from None


def minutes_for(stage: str, settings: SlurmSettings) -> int:
    """A stage's time limit: a ``--minutes-for`` glob that matches it, else its planned time x the factor, else
    ``--minutes``."""
    for pattern, minutes in settings.minutes_for.items():
        if fnmatch.fnmatchcase(stage, pattern):
            return minutes
    hours = settings.plan_hours.get(stage)
    if hours:
        return max(10, math.ceil(hours * 60 * settings.time_factor))
    return settings.minutes


def unsatisfiable(stages: list[str], settings: SlurmSettings, uses_gpu: Callable[[str], bool]) -> str | None:
    """One line for the first GPU stage whose planned memory is more than a GPU here has, else None."""
    if settings.gpu_mem is None:
        return None
    too_big = [s for s in stages if uses_gpu(s) and settings.plan_needs.get(s, 0.0) > settings.gpu_mem]
    if not too_big:
        return None
    stage = max(too_big, key=lambda s: settings.plan_needs[s])
    return (f"{stage}: needs {settings.plan_needs[stage]:.1f} GB of GPU memory by the plan (peak + margin + CUDA "
            f"context), the GPUs here have {settings.gpu_mem:g} GB (--gpu-mem); {len(too_big)} stage(s) could never "
            "start, so nothing was submitted: lower the batch sizes `mubench check` names, or use bigger GPUs")


def job_command(root: Path, stage: str | None, settings: SlurmSettings) -> str:
    """What the job runs: the in-job wrapper (this interpreter's mubench, or plain ``mubench`` under a prefix);
    ``stage`` None: the closing job, which puts dvc.lock's new entries in serial order."""
    mubench = Path(sys.executable).parent / "mubench"
    exe = "mubench" if settings.prefix or not mubench.is_file() else str(mubench)
    what = ["finish"] if stage is None else ["run-stage", shlex.quote(stage)]
    return " ".join([settings.prefix, shlex.quote(exe), "submit", *what]).strip()


def sbatch_args(root: Path, stage: str | None, upstream: list[str], settings: SlurmSettings,
                uses_gpu: bool) -> list[str]:
    """sbatch's arguments for one stage's job (``stage`` None: the closing job, after every other has ended)."""
    name = stage or "finish"
    args = ["sbatch", "--parsable", f"--job-name=mubench:{name}", f"--output={log_path(root, name)}",
            f"--chdir={root}", "--kill-on-invalid-dep=yes",
            f"--time={minutes_for(stage, settings) if stage else 10}"]
    for flag, value in (("--partition", settings.partition), ("--account", settings.account),
                        ("--qos", settings.qos), ("--cpus-per-task", settings.cpus)):
        if value:
            args.append(f"{flag}={value}")
    if settings.mem_gb:
        args.append(f"--mem={int(settings.mem_gb * 1024)}M")
    if uses_gpu and settings.gpus:
        args.append(f"--gres=gpu:{settings.gpus}")
    if upstream:
        args.append(("--dependency=afterok:" if stage else "--dependency=afterany:") + ":".join(upstream))
    return [*args, *settings.sbatch_args, "--wrap", job_command(root, stage, settings)]


def live_jobs(state: dict | None) -> list[str]:
    """The jobs of a recorded submission that Slurm still has pending or running."""
    if not state or state.get("engine") != "slurm":
        return []
    ids = [r["job"] for r in state["stages"].values() if r.get("job")] + ([state["finish"]] if state.get("finish")
                                                                         else [])
    if not ids:
        return []
    out = _run(["squeue", "-h", "-o", "%i %T", "-j", ",".join(ids)])
    return [line.split()[0] for line in out.stdout.splitlines()
            if line.split() and STATES.get(line.split()[1]) in ("pending", "running")]


def refuse_if_live(root: Path) -> None:
    """One line when the workspace's last Slurm submission still has jobs pending or running."""
    live = live_jobs(read_state(root))
    if live:
        raise FailedStep(f"{root}: a submission is running over this workspace (Slurm jobs {', '.join(live)}); "
                           "wait for it (`mubench submit status --wait`) or `scancel` it, then submit again")


def submit_slurm(root: Path, graph: StageGraph, settings: SlurmSettings, uses_gpu: Callable[[str], bool],
                 say: Callable[[str], None]) -> dict[str, StageRun]:
    """Submit every stage of ``graph`` (restricted to what is out of date), upstream first."""
    root = root.resolve()
    refuse_if_live(root)
    problem = unsatisfiable(graph.order, settings, uses_gpu)
    if problem:
        raise FailedStep(problem)
    previous = read_state(root)
    if previous and previous.get("engine") == "slurm":
        ended = {s for s, r in refresh(previous).items() if r.state in ENDED or r.state == "unknown"}
        removed = clear_stale_locks(root, ended)
        if removed:
            say(f"cleared {removed} DVC lock entr{'y' if removed == 1 else 'ies'} left by ended jobs")
    runs: dict[str, StageRun] = {}
    for stage in graph.order:
        upstream = [runs[u].job for u in sorted(graph.upstream[stage])]
        log_path(root, stage).parent.mkdir(parents=True, exist_ok=True)
        proc = _run(sbatch_args(root, stage, upstream, settings, uses_gpu(stage)))
        if proc.returncode != 0:
            submitted = [r.job for r in runs.values()]
            if submitted:
                _run(["scancel", *submitted])
            reason = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise FailedStep(f"sbatch refused {stage} ({reason}); the {len(submitted)} job(s) submitted before it "
                               "were cancelled: nothing runs")
        job = proc.stdout.strip().split(";")[0]
        runs[stage] = StageRun(stage, "pending", job, str(log_path(root, stage).relative_to(root)))
    # the closing job: once every stage job has ended, however, dvc.lock's new entries in serial order
    proc = _run(sbatch_args(root, None, [r.job for r in runs.values()], settings, False))
    finish = proc.stdout.strip().split(";")[0] if proc.returncode == 0 else None
    if finish is None:
        say("the closing job was refused; run `mubench submit finish` once the jobs have ended")
    write_state(root, "slurm", runs, {"submitted": time.strftime("%Y-%m-%dT%H:%M:%S"), "finish": finish})
    say(f"submitted {len(runs)} job(s); follow them with `mubench submit status` (logs in logs/submit/)")
    return runs


def _job_records() -> dict[str, dict[str, str]]:
    """Every job Slurm still has a record of, by id: one ``scontrol`` call however many jobs a run has."""
    out = _run(["scontrol", "show", "job", "-o"])
    if out.returncode != 0:
        return {}
    records = (dict(word.split("=", 1) for word in line.split() if "=" in word) for line in out.stdout.splitlines())
    return {r["JobId"]: r for r in records if "JobId" in r}


def refresh(state: dict, records: dict[str, dict[str, str]] | None = None) -> dict[str, StageRun]:
    """The recorded submission's stages with their state now, as Slurm reports it."""
    records = _job_records() if records is None else records
    runs = {}
    for stage, saved in state["stages"].items():
        run = StageRun(stage, saved.get("state", "pending"), saved.get("job"), saved.get("log", ""))
        record = records.get(run.job, {}) if run.job else {}
        slurm_state = record.get("JobState", "")
        if not record:
            run.state, run.reason = "unknown", "Slurm no longer has the job's record (`dvc status` tells)"
        else:
            run.state = STATES.get(slurm_state, "unknown")
            why = record.get("Reason", "None")
            if run.state == "cancelled" and why == "DependencyNeverSatisfied":
                run.reason = "an upstream stage failed"
            elif run.state == "cancelled":
                run.reason = "cancelled (scancel)"
            elif slurm_state in WHY:
                run.reason = WHY[slurm_state]
            elif run.state == "failed":
                run.reason = f"exit {record.get('ExitCode', '?')}"
            elif run.state == "pending" and why.startswith("Dependency"):
                run.reason = "waits for upstream"
        runs[stage] = run
    return runs


def status(root: Path, wait: bool, say: Callable[[str], None], poll_s: float = 2.0,
           timeout_s: float | None = None) -> dict[str, StageRun]:
    """The last submission's stages now; with ``wait``, once every job has ended."""
    state = read_state(root)
    if not state or state.get("engine") != "slurm":
        raise FailedStep(f"{root / 'logs' / 'submit' / 'state.json'}: no Slurm submission recorded here; run "
                           "`mubench submit slurm` first")
    start = time.monotonic()
    while True:
        records = _job_records()
        runs = refresh(state, records)
        closing = records.get(state["finish"], {}).get("JobState", "") if state.get("finish") else "COMPLETED"
        if not wait or (all(r.state in (*ENDED, "unknown") for r in runs.values())
                        and STATES.get(closing, "done") in ENDED):
            break
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise FailedStep(f"jobs still running after {timeout_s:.0f} s: "
                               + ", ".join(s for s, r in runs.items() if r.state not in ENDED))
        time.sleep(poll_s)
    write_state(root, "slurm", runs, {k: v for k, v in state.items() if k not in ("engine", "stages")})
    if wait:
        say(commit_hint([s for s, r in runs.items() if r.state == "done"]))
    return runs
