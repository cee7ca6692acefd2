"""`mubench submit` on a small DVC project of its own (stages are shell commands, so faults are cheap to stage):
the local pool and a real single-node Slurm run DVC's graph side by side with the lineage of a serial
`dvc repro`; a failing stage cancels its dependents; Ctrl-C, `scancel` and a time limit leave no partial output
and no DVC lock behind; submitting again runs only what is missing; a second submission refuses.

The project: a -> (b, c) -> d, each stage writes a file derived from what it reads. A stage fails while a file
``fail_STAGE`` exists and sleeps while ``slow_STAGE`` exists (neither is a DVC dependency)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mubench.tools.dag import load_graph, out_of_date
from mubench.tools.engine_local import run_local
from mubench.tools.submit import clear_stale_locks, read_state, stage_of, table

STEP = r'''
import hashlib, os, sys, time
name, out, ins = sys.argv[1], sys.argv[2], sys.argv[3:]
if os.path.exists("slow_" + name):
    time.sleep(float(open("slow_" + name).read() or 300))
if os.path.exists("fail_" + name):
    sys.exit(3)
text = name + ":" + "".join(open(i).read() for i in ins)
tmp = out + ".tmp"
open(tmp, "w").write(hashlib.sha256(text.encode()).hexdigest() + "\n")
os.replace(tmp, out)
'''
DVC_YAML = """stages:
  a:
    cmd: {py} step.py a a.txt
    deps: [step.py]
    outs: [a.txt]
  b:
    cmd: {py} step.py b b.txt a.txt
    deps: [step.py, a.txt]
    outs: [b.txt]
  c:
    cmd: {py} step.py c c.txt a.txt
    deps: [step.py, a.txt]
    outs: [c.txt]
  d:
    cmd: {py} step.py d d.txt b.txt c.txt
    deps: [step.py, b.txt, c.txt]
    outs: [d.txt]
"""
DVC = str(Path(sys.executable).parent / "dvc")


def sh(args: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


def project(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "step.py").write_text(STEP)
    (path / "dvc.yaml").write_text(DVC_YAML.format(py=sys.executable))
    (path / ".gitignore").write_text("/logs/\n/fail_*\n/slow_*\n")
    sh(["git", "init", "-q"], path)
    sh([DVC, "init", "-q"], path)
    sh([DVC, "config", "core.analytics", "false"], path)
    return path


def serial(tmp_path: Path) -> Path:
    work = project(tmp_path / "serial")
    sh([DVC, "repro"], work)
    return work


def outputs(work: Path) -> dict[str, str]:
    return {name: (work / name).read_text() for name in ("dvc.lock", "a.txt", "b.txt", "c.txt", "d.txt")
            if (work / name).is_file()}


def todo(work: Path):
    graph = load_graph(work)
    return graph.restricted(out_of_date(work, graph))


def local(work: Path, slots: int = 2):
    said: list[str] = []
    runs = run_local(work, lambda: todo(work), slots, False, said.append, poll_s=0.05)
    return runs, said


def rwlock_entries(work: Path) -> int:
    path = work / ".dvc" / "tmp" / "rwlock"
    if not path.is_file():
        return 0
    lock = json.loads(path.read_text() or "{}")
    return len(lock.get("write", {})) + sum(len(v) for v in lock.get("read", {}).values())


def dvc_clean(work: Path) -> bool:
    proc = sh([DVC, "status", "--json"], work)
    return json.loads(proc.stdout or "{}") == {}


# -- the local pool ----------------------------------------------------------------------------------------------
def test_the_graph_is_dvcs_and_only_what_is_out_of_date_runs(tmp_path):
    work = project(tmp_path / "p")
    graph = load_graph(work)
    assert graph.upstream == {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    assert graph.order.index("a") < graph.order.index("b") < graph.order.index("d")
    assert set(todo(work).order) == {"a", "b", "c", "d"}
    sh([DVC, "repro"], work)
    assert todo(work).order == []
    (work / "c.txt").unlink()  # a missing output: c, then what reads it
    assert set(todo(work).order) == {"c", "d"}
    assert graph.critical_path({"a": 1, "b": 5, "c": 2, "d": 1}) == (7, ["a", "b", "d"])


def test_two_slots_run_side_by_side_with_the_lineage_of_a_serial_run(tmp_path):
    reference = outputs(serial(tmp_path))
    work = project(tmp_path / "pool")
    (work / "slow_b").write_text("2")
    (work / "slow_c").write_text("2")
    start = time.monotonic()
    runs, said = local(work)
    elapsed = time.monotonic() - start
    assert all(r.state == "done" for r in runs.values()), table(runs)
    assert said.index("started c on slot 1; log logs/submit/c.log") < said.index(
        next(s for s in said if s.startswith("done b"))), said  # b and c ran together
    assert elapsed < 2 + 2 + 6, elapsed  # not one after the other (plus DVC's start-up per stage)
    assert outputs(work) == reference
    assert dvc_clean(work) and rwlock_entries(work) == 0
    assert read_state(work)["stages"]["d"]["state"] == "done"
    assert "git add dvc.lock results reports" in said[-1]


def test_a_failing_stage_cancels_its_dependents_and_a_resubmission_runs_only_what_is_missing(tmp_path):
    reference = outputs(serial(tmp_path))
    work = project(tmp_path / "pool")
    (work / "fail_b").write_text("")
    runs, said = local(work)
    assert {s: r.state for s, r in runs.items()} == {"a": "done", "b": "failed", "c": "done", "d": "cancelled"}
    assert runs["d"].reason == "upstream b failed" and "cancelled d: upstream b failed" in said
    assert "exit" in runs["b"].reason and (work / runs["b"].log).is_file()
    assert not (work / "b.txt").exists() and not (work / "d.txt").exists()
    assert rwlock_entries(work) == 0
    (work / "fail_b").unlink()
    again, _ = local(work)
    assert sorted(again) == ["b", "d"] and all(r.state == "done" for r in again.values())
    assert outputs(work) == reference and dvc_clean(work)


def submit_cli(work: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """``mubench submit ...`` in ``work`` as a user runs it (its own process)."""
    mubench = str(Path(sys.executable).parent / "mubench")
    return subprocess.Popen([mubench, "submit", *args], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**(env or os.environ), "PYTHONUNBUFFERED": "1"})


def wait_for(condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def local_runner(work: Path) -> subprocess.Popen:
    """The local pool in its own process, on a project whose params.yaml is not mubench's: run_local directly."""
    code = ("import sys; from pathlib import Path; from tests.test_submit import local; "
            "runs, said = local(Path(sys.argv[1])); print('\\n'.join(said))")
    return subprocess.Popen([sys.executable, "-c", code, str(work)], cwd=Path(__file__).resolve().parents[1],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_stops_the_running_stage_cleanly_and_a_second_submission_refuses(tmp_path):
    reference = outputs(serial(tmp_path))
    work = project(tmp_path / "pool")
    (work / "slow_c").write_text("300")
    runner = local_runner(work)
    try:
        wait_for(lambda: (read_state(work) or {}).get("stages", {}).get("c", {}).get("state") == "running",
                 what="stage c to start")
        second = local_runner(work)
        out, err = second.communicate(timeout=120)
        assert second.returncode != 0
        lines = [line for line in err.strip().splitlines() if "a submission is running" in line]
        assert lines and "mubench submit local, pid" in lines[-1], err[-2000:]
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
    state = read_state(work)["stages"]
    assert state["c"]["state"] == "cancelled" and state["d"]["state"] == "cancelled", state
    assert not (work / "c.txt").exists() and not list(work.glob("c.txt*"))  # no partial output
    assert rwlock_entries(work) == 0  # DVC released its locks: the stage command was stopped first
    (work / "slow_c").unlink()
    again, _ = local(work)
    assert sorted(again) == ["c", "d"] and outputs(work) == reference and dvc_clean(work)


def test_stale_lock_entries_of_ended_stages_are_cleared_and_no_others():
    lock = {"write": {"b.txt": {"pid": 1, "cmd": "dvc --wait-for-lock repro --single-item b"}},
            "read": {"a.txt": [{"pid": 1, "cmd": "dvc --wait-for-lock repro --single-item b"},
                               {"pid": 2, "cmd": "dvc --wait-for-lock repro --single-item c"}]}}
    assert stage_of(lock["read"]["a.txt"][1]) == "c" and stage_of({"cmd": "dvc repro"}) is None
    from mubench.tools.submit import drop_lock_entries  # the pure part of clear_stale_locks

    assert drop_lock_entries(lock, lambda info: stage_of(info) not in {"b"})
    assert lock == {"write": {}, "read": {"a.txt": [{"pid": 2, "cmd": "dvc --wait-for-lock repro --single-item c"}]}}


# -- a real Slurm ------------------------------------------------------------------------------------------------
SLURM_CHILD = """
import json, sys
from pathlib import Path
from mubench.tools.engine_slurm import SlurmSettings, refuse_if_live, status, submit_slurm
from mubench.tools.submit import table
from tests.test_submit import todo
work, settings, what = Path(sys.argv[1]), SlurmSettings(**json.loads(sys.argv[2])), sys.argv[3]
if what in ("submit", "submit-only"):
    refuse_if_live(work)  # as the CLI does, before DVC's status (which the running jobs' locks would block)
    submit_slurm(work, todo(work), settings, lambda stage: False, print)
print(table(status(work, what != "submit-only", print, poll_s=0.5, timeout_s=600)))
"""


def slurm_submit(work: Path, env: dict, settings: str = "{}", what: str = "submit") -> subprocess.CompletedProcess:
    """The engine's own functions in a child with the cluster's SLURM_CONF (the project is not mubench's, so not
    through the CLI): ``submit`` (and wait), ``submit-only``, or ``status`` (wait for the recorded jobs)."""
    settings = json.dumps({"minutes": 5, **json.loads(settings)})
    return subprocess.run([sys.executable, "-c", SLURM_CHILD, str(work), settings, what], env=env,
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])


def job_of(work: Path, stage: str) -> str:
    return read_state(work)["stages"][stage]["job"]


@pytest.mark.slow
def test_slurm_runs_the_graph_with_afterok_and_the_serial_lineage(tmp_path, slurm_env):
    reference = outputs(serial(tmp_path))
    work = project(tmp_path / "slurm")
    proc = slurm_submit(work, slurm_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = read_state(work)["stages"]
    assert all(s["state"] == "done" for s in state.values()), proc.stdout
    record = sh(["scontrol", "show", "job", "-o", job_of(work, "d")], work, slurm_env).stdout
    assert "JobName=mubench:d" in record
    assert outputs(work) == reference and dvc_clean(work) and rwlock_entries(work) == 0
    assert (work / "logs" / "submit" / "d.log").is_file()


@pytest.mark.slow
def test_slurm_failure_cancels_dependents_and_resubmission_finishes(tmp_path, slurm_env):
    reference = outputs(serial(tmp_path))
    work = project(tmp_path / "slurm")
    (work / "fail_b").write_text("")
    proc = slurm_submit(work, slurm_env)
    state = read_state(work)["stages"]
    assert {s: v["state"] for s, v in state.items()} == {"a": "done", "b": "failed", "c": "done",
                                                         "d": "cancelled"}, proc.stdout + proc.stderr
    assert state["d"]["reason"] == "an upstream stage failed" and state["b"]["reason"].startswith("exit")
    assert "an upstream stage failed" in proc.stdout and "log: logs/submit/b.log" in proc.stdout
    (work / "fail_b").unlink()
    proc = slurm_submit(work, slurm_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(read_state(work)["stages"]) == ["b", "d"]
    assert outputs(work) == reference and dvc_clean(work)


@pytest.mark.slow
def test_slurm_scancel_and_a_second_submission(tmp_path, slurm_env):
    reference = outputs(serial(tmp_path))
    work = project(tmp_path / "slurm")
    (work / "slow_c").write_text("300")
    proc = slurm_submit(work, slurm_env, "{}", "submit-only")
    assert proc.returncode == 0, proc.stderr[-3000:]
    wait_for(lambda: "RUNNING" in sh(["squeue", "-h", "-o", "%T", "-j", job_of(work, "c")], work,
                                     slurm_env).stdout, 120, "job c to run")
    time.sleep(3)  # DVC has taken its locks and started the stage command
    second = slurm_submit(work, slurm_env)
    assert second.returncode != 0 and "a submission is running over this workspace (Slurm jobs" in second.stderr
    sh(["scancel", job_of(work, "c")], work, slurm_env)
    proc = slurm_submit(work, slurm_env, "{}", "status")
    state = read_state(work)["stages"]
    assert state["c"]["state"] == "cancelled" and state["c"]["reason"] == "cancelled (scancel)", proc.stdout
    assert state["d"]["state"] == "cancelled" and not (work / "c.txt").exists()
    wait_for(lambda: rwlock_entries(work) == 0 or clear_stale_locks(work, {"c"}) >= 0 and rwlock_entries(work) == 0,
             30, "the lock entries to go")
    (work / "slow_c").unlink()
    proc = slurm_submit(work, slurm_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(read_state(work)["stages"]) == ["c", "d"] and outputs(work) == reference and dvc_clean(work)


@pytest.mark.slow
def test_slurm_time_limit_stops_the_stage_and_resubmission_finishes(tmp_path, slurm_env):
    reference = outputs(serial(tmp_path))
    work = project(tmp_path / "slurm")
    (work / "slow_b").write_text("600")
    proc = slurm_submit(work, slurm_env, json.dumps({"minutes_for": {"b": 1}}))
    state = read_state(work)["stages"]
    assert state["b"]["state"] == "failed" and state["b"]["reason"] == "over its time limit", proc.stdout
    assert state["d"]["state"] == "cancelled" and state["c"]["state"] == "done"
    assert not (work / "b.txt").exists()
    log = (work / "logs" / "submit" / "b.log").read_text()
    assert "DUE TO TIME LIMIT" in log and "b: stopped by signal 15" in log, log[-2000:]
    (work / "slow_b").unlink()
    proc = slurm_submit(work, slurm_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(read_state(work)["stages"]) == ["b", "d"] and outputs(work) == reference and dvc_clean(work)
    shutil.rmtree(work / "logs")


def test_a_corrupted_dvc_lock_is_one_line_that_names_it(tmp_path):
    """DVC's own error, not its last line ("Having any troubles? Hit us up at ..."), and not a traceback."""
    import subprocess
    import sys

    from mubench.tools.dag import dvc_message, load_graph, out_of_date

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(Path(sys.executable).with_name("dvc")), "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  a:\n    cmd: echo hi > a.txt\n    outs: [a.txt]\n")
    (tmp_path / "dvc.lock").write_text('schema: "2.0"\nstages: [unclosed\n')
    with pytest.raises(RuntimeError, match=r"^dvc: unable to read: 'dvc.lock', YAML file structure is corrupted"):
        out_of_date(tmp_path, load_graph(tmp_path))
    stderr = ("ERROR: unable to read: 'dvc.lock', YAML file structure is corrupted\n\n"
              "Having any troubles? Hit us up at https://dvc.org/support, we are always happy to help!\n")
    assert dvc_message(stderr) == "unable to read: 'dvc.lock', YAML file structure is corrupted"
    yaml_error = ("'./dvc.lock' is invalid.\n\nWhile parsing a flow sequence, in line 2, column 9\n"
                  "  2 stages: [unclosed\n")
    assert dvc_message(yaml_error) == "'./dvc.lock' is invalid. While parsing a flow sequence, in line 2, column 9"
