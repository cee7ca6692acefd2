"""``mubench submit``: the stages that are out of date, run side by side on an engine that already exists.

Each stage instance runs as ``dvc --wait-for-lock repro --single-item STAGE``, so DVC itself runs it and records it
in ``dvc.lock`` with the hashes it read: a parallel run leaves the lineage of a serial one. The engines (Slurm:
``mubench/tools/engine_slurm.py``; a local pool: ``mubench/tools/engine_local.py``) only decide when and where.

What this module holds for both:
- the submission record ``logs/submit/state.json`` (engine, stages, their jobs, states and logs; one log file
  per stage beside it) and the one-line refusal of a second submission while one is live;
- ``run_stage``: what one job runs. DVC killed by a signal leaves its read/write entries in ``.dvc/tmp/rwlock``
  and its stage command running (an orphan); so the stage command is stopped first and DVC is let exit, which
  releases its entries. If DVC dies anyway (Slurm signals every process of a job at once), this wrapper removes
  the entries of its own DVC process;
- ``clear_stale_locks``: before submitting again, the entries left by stages whose jobs the engine reports as
  ended (a node that died cannot clean up), never those of a live job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from mubench.core.errors import FailedStep
from mubench.core.io import atomic_write_text
from mubench.tools.dag import StageGraph

LOG_DIR = Path("logs") / "submit"
STATE = "state.json"
# stage states: pending (waits for upstream), running, done, failed, cancelled (never ran: upstream failed,
# scancel, time limit, interrupted)
ENDED = ("done", "failed", "cancelled")
STOP_GRACE_S = 20.0


@dataclass
class StageRun:
    stage: str
    state: str = "pending"
    job: str | None = None  # the engine's id (a Slurm job id; a local slot)
    log: str = ""
    reason: str = ""
    seconds: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}


def prepare(root: Path, cuda: bool) -> tuple[StageGraph, Callable[[str], bool]]:
    """DVC's graph restricted to what is out of date, and which of those stages want a GPU (they run a model:
    ``device`` is among their params, and the profile runs on CUDA)."""
    from mubench.tools.dag import load_graph, out_of_date

    graph = load_graph(root)
    todo = graph.restricted(out_of_date(root, graph))
    return todo, lambda stage: cuda and "device" in graph.params.get(stage, set())


def dvc_command(stage: str) -> list[str]:
    """How one stage instance runs: DVC, waiting for the repository lock, the stage alone."""
    dvc = Path(sys.executable).parent / "dvc"
    return [str(dvc) if dvc.is_file() else "dvc", "--wait-for-lock", "repro", "--single-item", stage]


def log_path(root: Path, stage: str) -> Path:
    return root / LOG_DIR / (stage.replace("/", "_") + ".log")


def read_state(root: Path) -> dict | None:
    path = root / LOG_DIR / STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_state(root: Path, engine: str, runs: dict[str, StageRun], extra: dict | None = None) -> None:
    (root / LOG_DIR).mkdir(parents=True, exist_ok=True)
    state = {"engine": engine, **(extra or {}), "stages": {s: r.as_dict() for s, r in runs.items()}}
    atomic_write_text(root / LOG_DIR / STATE, json.dumps(state, indent=1, sort_keys=True) + "\n")


# -- the rwlock entries of ended jobs ----------------------------------------------------------------------------
def _rwlock_edit(root: Path, edit: Callable[[dict], bool]) -> None:
    """Edit ``.dvc/tmp/rwlock`` under DVC's own guard file (the protocol DVC's rwlock module uses)."""
    from dvc.lock import make_lock

    tmp = root / ".dvc" / "tmp"
    path = tmp / "rwlock"
    if not path.is_file():
        return
    with make_lock(str(tmp / "rwlock.lock"), tmp_dir=str(tmp)):
        lock = json.loads(path.read_text(encoding="utf-8") or "{}")
        if edit(lock):
            path.write_text(json.dumps(lock), encoding="utf-8")


def drop_lock_entries(lock: dict, keep: Callable[[dict], bool]) -> bool:
    """Remove the entries ``keep`` refuses; True if one went."""
    changed = False
    for path, info in list(lock.get("write", {}).items()):
        if not keep(info):
            del lock["write"][path]
            changed = True
    for path, infos in list(lock.get("read", {}).items()):
        kept = [i for i in infos if keep(i)]
        if len(kept) != len(infos):
            changed = True
            if kept:
                lock["read"][path] = kept
            else:
                del lock["read"][path]
    return changed


def stage_of(info: dict) -> str | None:
    """The stage a lock entry's command ran (``... repro --single-item STAGE``), else None."""
    words = info.get("cmd", "").split()
    return words[words.index("--single-item") + 1] if "--single-item" in words[:-1] else None


def clear_stale_locks(root: Path, ended: set[str]) -> int:
    """Remove the rwlock entries of the stages in ``ended`` (their jobs are over); returns how many went."""
    removed = 0

    def keep(info: dict) -> bool:
        nonlocal removed
        gone = stage_of(info) in ended
        removed += gone
        return not gone

    _rwlock_edit(root, lambda lock: drop_lock_entries(lock, keep))
    return removed


def _clear_pid(root: Path, pid: int) -> None:
    _rwlock_edit(root, lambda lock: drop_lock_entries(lock, lambda info: info.get("pid") != pid))


# -- one stage: what a job runs ----------------------------------------------------------------------------------
def stop_dvc(proc: subprocess.Popen, root: Path, grace: float = STOP_GRACE_S) -> None:
    """Stop a running ``dvc repro`` so that it releases its locks: the stage command (DVC's children) gets SIGTERM
    first, DVC sees it fail and exits; after ``grace`` seconds whatever is left is killed and DVC's own lock
    entries are removed."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        with suppress(psutil.NoSuchProcess):
            child.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    _clear_pid(root, proc.pid)  # nothing when DVC released them itself


def run_stage(root: Path, stage: str) -> int:
    """Run one stage through DVC in the foreground (a Slurm job's command): its exit code, or 128 + the signal
    that stopped it. SIGTERM and SIGINT stop the stage command first so DVC releases its locks."""
    proc = subprocess.Popen(dvc_command(stage), cwd=root, start_new_session=True)
    stopped: list[int] = []

    def on_signal(signum, frame) -> None:
        stopped.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while proc.poll() is None:
            if stopped:
                stop_dvc(proc, root)
                break
            time.sleep(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if proc.returncode < 0:
        _clear_pid(root, proc.pid)  # DVC itself was killed (Slurm signals every process of a job at once)
    if stopped:
        print(f"mubench submit: {stage}: stopped by signal {stopped[0]} (scancel, a time limit, Ctrl-C); the stage "
              "did not finish and left no output", file=sys.stderr, flush=True)
        return 128 + stopped[0]
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


@contextmanager
def workspace_claim(root: Path, engine: str):
    """Held while a local pool runs: a second submission over the same workspace refuses in one line."""
    import fcntl

    (root / LOG_DIR).mkdir(parents=True, exist_ok=True)
    path = root / LOG_DIR / ".claim"
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise FailedStep(f"{root}: a submission is running over this workspace ({holder}); wait for it, or "
                           "stop it, then submit again") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"mubench submit {engine}, pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        handle.close()


def committed_lock_entries(root: Path) -> list[str]:
    """The stages of the dvc.lock committed at HEAD, in its order ([] outside git or before the first commit):
    what a serial ``dvc repro`` of this commit starts from."""
    import yaml

    proc = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        return []
    return list((yaml.safe_load(proc.stdout) or {}).get("stages", {}) or {})


def order_lock(root: Path) -> bool:
    """Put the entries that parallel runs added to dvc.lock in the order a serial ``dvc repro`` adds them.

    DVC appends a stage's entry when the stage first completes, so stages finishing side by side append in
    whatever order they finished; a serial run of this commit keeps the committed entries where they are and
    appends the others in DVC's plan order. Only the order changes: the entries stay DVC's, byte for byte (checked
    by parsing before and after). True if the file changed."""
    from dvc.utils.serialize import load_yaml, modify_yaml

    from mubench.tools.dag import serial_order

    path = root / "dvc.lock"
    if not path.is_file():
        return False
    rank = {stage: i for i, stage in enumerate(serial_order(root))}
    old = load_yaml(str(path))
    current = list(old.get("stages", {}))
    before = committed_lock_entries(root)
    kept = [s for s in current if s in before]
    added = sorted((s for s in current if s not in before), key=lambda s: rank.get(s, len(rank)))
    if current == kept + added:
        return False
    with modify_yaml(str(path)) as data:
        stages = data["stages"]
        entries = {s: stages[s] for s in current}
        for s in current:
            del stages[s]
        for s in kept + added:
            stages[s] = entries[s]
    if load_yaml(str(path)) != old:  # dict equality ignores order: the content must not move
        raise FailedStep(f"{path}: reordering changed its content; restore it from git")
    return True


def commit_hint(done: list[str]) -> str:
    """What to commit after a run: the lineage and the numbers (the artifacts go to the DVC remote)."""
    if not done:
        return "nothing ran: nothing to commit"
    return ("to keep this run: `git add dvc.lock results reports && git commit`, and `dvc push` for the "
            "artifacts (docs/reproducing.md)")


def table(runs: dict[str, StageRun]) -> str:
    """The stages as a person reads them: counts first, then one line per stage that is not done."""
    counts: dict[str, int] = {}
    for run in runs.values():
        counts[run.state] = counts.get(run.state, 0) + 1
    lines = [", ".join(f"{n} {state}" for state, n in sorted(counts.items()))]
    width = max((len(s) for s in runs), default=5)
    for stage, run in runs.items():
        if run.state == "done":
            continue
        where = f"job {run.job}" if run.job and not run.job.startswith("slot") else (run.job or "")
        lines.append(f"  {run.state:<9} {stage:<{width}}  {where:<12} {run.reason or ''}"
                     + (f"  log: {run.log}" if run.state in ("failed", "running") else "").rstrip())
    return "\n".join(line.rstrip() for line in lines)
