"""A real single-node Slurm cluster for the tests: munged, slurmctld and slurmd from Debian's packages, started as
root in a scratch folder with their own ports and munge socket, stopped afterwards. No mock: jobs really queue,
depend on each other (``afterok``), time out and get cancelled.

``cluster()`` yields the environment (``SLURM_CONF``) that points Slurm's commands at it; it skips outside CI
when the packages or root are missing, and fails in CI (``CI=true``), where `.ci/run` installs them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

NEEDED = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
MUNGE_KEY = Path("/etc/munge/munge.key")


def missing() -> str | None:
    """Why no cluster can start here, or None."""
    if os.geteuid() != 0:
        return "the test cluster runs its daemons as root"
    absent = [n for n in NEEDED if shutil.which(n) is None and not Path("/usr/sbin", n).exists()]
    if absent:
        return f"Slurm/munge not installed ({', '.join(absent)}; apt-get install slurmctld slurmd munge)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(base: Path, host: str, cpus: int, memory_mb: int) -> str:
    ctld, slurmd = _free_port(), _free_port()
    return "\n".join([
        "ClusterName=mubenchtest", f"SlurmctldHost={host}", "AuthType=auth/munge",
        f"AuthInfo=socket={base}/munge/sock", "CredType=cred/munge", "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none", "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=1", "SlurmUser=root", "SlurmdUser=root",
        f"StateSaveLocation={base}/state", f"SlurmdSpoolDir={base}/spool",
        f"SlurmctldPidFile={base}/slurmctld.pid", f"SlurmdPidFile={base}/slurmd.pid",
        f"SlurmctldLogFile={base}/log/slurmctld.log", f"SlurmdLogFile={base}/log/slurmd.log",
        f"SlurmctldPort={ctld}", f"SlurmdPort={slurmd}", "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none", "JobAcctGatherType=jobacct_gather/none", "ReturnToService=2",
        "MpiDefault=none", "KillWait=15", "MinJobAge=3600", "InactiveLimit=0", "OverTimeLimit=0",
        f"NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""])


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin") / name)


@contextmanager
def cluster(base: Path, cpus: int = 2, memory_mb: int = 8000):
    why = missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Slurm test cluster in CI: {why}")
        pytest.skip(why)
    for sub in ("state", "spool", "log", "munge"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "munge").chmod(0o700)
    key = base / "munge" / "key"
    if MUNGE_KEY.is_file():
        shutil.copy(MUNGE_KEY, key)
    else:
        key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    host = socket.gethostname().split(".")[0]
    conf = base / "slurm.conf"
    conf.write_text(_config(base, host, cpus, memory_mb))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    try:
        subprocess.run([_sbin("munged"), "--force", f"--key-file={key}", f"--socket={base}/munge/sock",
                        f"--pid-file={base}/munge/pid", f"--log-file={base}/munge/log",
                        f"--seed-file={base}/munge/seed"], check=True, env=env)
        started.append(base / "munge" / "pid")
        subprocess.run([_sbin("slurmctld"), "-i"], check=True, env=env)
        started.append(base / "slurmctld.pid")
        subprocess.run([_sbin("slurmd")], check=True, env=env)
        started.append(base / "slurmd.pid")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env).stdout
            if state.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the test cluster's node did not come up: {state.strip()!r}; logs in {base}/log")
        yield env
    finally:
        subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True)
        for pid_file in reversed(started):
            try:
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, 15)
            except (OSError, ValueError):
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
