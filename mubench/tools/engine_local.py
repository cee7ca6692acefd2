"""``mubench submit local --slots N``: the out-of-date stages of DVC's graph side by side on one machine.

A bounded pool with ``make -j`` semantics: a stage starts when every upstream stage it reads succeeded, never
more than N at once; each runs as ``dvc --wait-for-lock repro --single-item STAGE`` with its own slot. With
``--gpus``, slot i is GPU i: ``CUDA_VISIBLE_DEVICES=i``, so a stage sees exactly one card. A stage that fails
cancels everything downstream of it (the rest goes on); Ctrl-C stops the running stage commands so DVC releases
its locks, and cancels what did not start. Submitting again runs only what is missing or out of date.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from mubench.tools.dag import StageGraph
from mubench.tools.submit import (
    StageRun,
    commit_hint,
    dvc_command,
    log_path,
    order_lock,
    stop_dvc,
    workspace_claim,
    write_state,
)


def run_local(root: Path, todo: Callable[[], StageGraph], slots: int, gpus: bool, say: Callable[[str], None],
              poll_s: float = 0.2) -> dict[str, StageRun]:
    """Run every stage that ``todo()`` gives (DVC's graph restricted to what is out of date; asked once this
    submission holds the workspace); the runs, by stage."""
    root = root.resolve()
    with workspace_claim(root, "local"):
        return _run(root, todo(), slots, gpus, say, poll_s)


def _launch(root: Path, stage: str, slot: int, gpus: bool) -> tuple[subprocess.Popen, object]:
    """Start ``dvc repro`` of ``stage`` on ``slot`` (its GPU when ``gpus``), logging to the stage's log file."""
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(slot)
    path = log_path(root, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.open("w", encoding="utf-8")
    proc = subprocess.Popen(dvc_command(stage), cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, log


def _stop_all(root: Path, runs: dict[str, StageRun], running: dict, slots: int, say: Callable[[str], None]) -> None:
    """After Ctrl-C: stop the running stages so DVC releases its locks, and cancel those not started."""
    say(f"interrupted: stopping {len(running)} running stage(s) so DVC releases its locks")
    for stage, (proc, _, _, log) in running.items():
        stop_dvc(proc, root)
        log.close()
        runs[stage].state, runs[stage].reason = "cancelled", "interrupted (Ctrl-C)"
    for run in runs.values():
        if run.state == "pending":
            run.state, run.reason = "cancelled", "interrupted before it started"
    write_state(root, "local", runs, {"slots": slots})
    order_lock(root)


def _run(root: Path, graph: StageGraph, slots: int, gpus: bool, say: Callable[[str], None],
         poll_s: float) -> dict[str, StageRun]:
    runs = {s: StageRun(s, log=str(log_path(root, s).relative_to(root))) for s in graph.order}
    free = list(range(slots))
    running: dict[str, tuple[subprocess.Popen, int, float, object]] = {}

    def cancel_downstream(failed: str) -> None:
        for stage in graph.order:
            if runs[stage].state == "pending" and failed in _upstream_closure(graph, stage):
                runs[stage].state, runs[stage].reason = "cancelled", f"upstream {failed} failed"
                say(f"cancelled {stage}: upstream {failed} failed")

    write_state(root, "local", runs, {"slots": slots})
    try:
        while True:
            for stage, (proc, slot, start, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                free.append(slot)
                del running[stage]
                run = runs[stage]
                run.seconds = round(time.monotonic() - start, 1)
                if proc.returncode == 0:
                    run.state = "done"
                    say(f"done {stage} ({run.seconds} s)")
                else:
                    run.state, run.reason = "failed", f"exit {proc.returncode}; log {run.log}"
                    say(f"failed {stage} (exit {proc.returncode}): see {run.log}")
                    cancel_downstream(stage)
                write_state(root, "local", runs, {"slots": slots})
            ready = [s for s in graph.order if runs[s].state == "pending"
                     and all(runs[u].state == "done" for u in graph.upstream[s])]
            if not ready and not running:
                break
            for stage in ready[:len(free)]:
                slot = free.pop(0)
                proc, log = _launch(root, stage, slot, gpus)
                running[stage] = (proc, slot, time.monotonic(), log)
                runs[stage].state, runs[stage].job = "running", f"slot {slot}"
                say(f"started {stage} on slot {slot}" + (f" (GPU {slot})" if gpus else "")
                    + f"; log {runs[stage].log}")
                write_state(root, "local", runs, {"slots": slots})
            time.sleep(poll_s)
    except KeyboardInterrupt:
        _stop_all(root, runs, running, slots, say)
        raise
    write_state(root, "local", runs, {"slots": slots})
    order_lock(root)
    done = [s for s, r in runs.items() if r.state == "done"]
    say(commit_hint(done))
    return runs


def _upstream_closure(graph: StageGraph, stage: str) -> set[str]:
    out, todo = set(), [stage]
    while todo:
        for up in graph.upstream[todo.pop()]:
            if up not in out:
                out.add(up)
                todo.append(up)
    return out
