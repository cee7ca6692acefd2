"""`make setup` works on a machine that is not ours: with only PyPI and PyTorch's CPU index, no pip configuration
and no local wheel folder, it picks the lock for the machine, adds the index that serves the +cpu torch wheel
itself, and every other pinned file is on PyPI under the lock's hash.

The stripped environment: no pip configuration file (``PIP_CONFIG_FILE=/dev/null`` makes pip read none), none of
this machine's ``PIP_*`` variables, a fresh HOME, and a PATH of /usr/bin and /bin. The network tests need PyPI;
outside CI they skip where it cannot be reached, in CI (``CI=true``) they fail."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT

REQ = ROOT / "requirements"
SCRIPT = REQ / "pip_sources.py"
PYPI = "https://pypi.org/simple/"
LOCAL_SOURCE = re.compile(r"file://|/opt/|--find-links|-f\s+/|wheels/")


def sources():
    spec = importlib.util.spec_from_file_location("pip_sources", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stripped_env(tmp_path: Path, path: str = "/usr/bin:/bin") -> dict[str, str]:
    """An environment with nothing of this machine's pip set-up in it."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": path, "HOME": str(home), "PIP_CONFIG_FILE": os.devnull, "LANG": "C.UTF-8",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "XDG_CONFIG_HOME": str(home / ".config")}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT)


def pypi_reachable() -> bool:
    try:
        with urllib.request.urlopen(PYPI + "pip/", timeout=20):
            return True
    except OSError:
        return False


def needs_pypi():
    if not pypi_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail("PyPI cannot be reached from CI")
        pytest.skip("PyPI cannot be reached")


def test_python_other_than_3_11_is_one_line_that_says_what_to_do():
    tool = sources()
    assert tool.check_python((3, 11)) is None
    line = tool.check_python((3, 12))
    assert "\n" not in line and "not 3.12" in line and "PYTHON=" in line and "docs/container.md" in line


def test_the_lock_follows_the_nvidia_driver(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = stripped_env(tmp_path, f"{bin_dir}:/usr/bin:/bin")
    assert run(["lock"], stripped_env(tmp_path)).stdout.strip() == "requirements/cpu.lock"
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'\n")
    smi.chmod(0o755)
    assert run(["lock"], env).stdout.strip() == "requirements/cuda.lock"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver'\n"
                   "exit 9\n")  # a driver that does not answer: no CUDA lock
    assert run(["lock"], env).stdout.strip() == "requirements/cpu.lock"


def test_the_torch_pin_and_its_hash_are_read_from_the_lock():
    version, hashes = sources().torch_pin((REQ / "cpu.lock").read_text(encoding="utf-8"))
    assert version == "2.13.0+cpu" and len(hashes) == 1 and hashes[0].startswith("sha256:")
    assert sources().torch_pin((REQ / "cuda.lock").read_text(encoding="utf-8"))[0] == "2.13.0"


def test_nothing_in_setup_depends_on_a_local_wheel_folder():
    for path in [ROOT / "Makefile", SCRIPT, *sorted(REQ.glob("*.lock")), *sorted(REQ.glob("*.in"))]:
        text = path.read_text(encoding="utf-8")
        assert not LOCAL_SOURCE.search(text), f"{path.name}: {LOCAL_SOURCE.search(text).group(0)!r}"


def test_stripped_environment_adds_pytorchs_cpu_index_itself(tmp_path):
    """pip is asked (dry run, with the pin's hash) in an environment with no pip configuration: PyPI has no
    +cpu build, so setup adds PyTorch's CPU index; the CUDA lock's torch comes from PyPI, nothing added."""
    needs_pypi()
    env = stripped_env(tmp_path)
    cpu = run(["pip-args", "requirements/cpu.lock"], env)
    assert cpu.returncode == 0, cpu.stderr
    assert cpu.stdout.split() == ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]
    assert "hashes still checked" in cpu.stderr
    cuda = run(["pip-args", "requirements/cuda.lock"], env)
    assert cuda.returncode == 0 and cuda.stdout.strip() == ""


def pypi_hashes(name: str) -> dict[str, str]:
    """{sha256: the file's Requires-Python} of every file PyPI serves for a project (the JSON simple API pip
    itself reads)."""
    request = urllib.request.Request(PYPI + name + "/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        data = json.load(response)
    return {"sha256:" + f["hashes"]["sha256"]: f.get("requires-python") or ""
            for f in data["files"] if "sha256" in f.get("hashes", {})}


def test_every_pinned_file_but_the_cpu_torch_is_on_pypi_under_its_hash():
    """What `make setup` installs from the four locks, checked against PyPI's own index: every pin has a file
    whose sha256 the lock lists, except torch 2.13.0+cpu, which is on PyTorch's CPU index only (where that index
    cannot be reached the test cannot fetch it; its hash is pinned in the lock and checked by pip at install).
    And each pin has such a file for every Python 3.11 release from 3.11.2 (Debian bookworm's, the image's base):
    pymdown-extensions 13 needs 3.11.5 and failed set-up there."""
    from packaging.specifiers import SpecifierSet

    needs_pypi()
    spec = importlib.util.spec_from_file_location("subset_lock", REQ / "subset_lock.py")
    tool = importlib.util.module_from_spec(spec)
    sys.modules["subset_lock"] = tool
    spec.loader.exec_module(tool)
    wanted: dict[str, set[str]] = {}
    for lock in ["cpu.lock", "cuda.lock", "build.lock", "docs.lock"]:
        for entry in tool.parse_lock((REQ / lock).read_text(encoding="utf-8")):
            pin = entry.lines[0].split("==", 1)[1].split()[0]
            hashes = {h for line in entry.lines for h in re.findall(r"--hash=(sha256:[0-9a-f]{64})", line)}
            wanted.setdefault(f"{entry.name}=={pin}", set()).update(hashes)
    names = sorted({key.split("==")[0] for key in wanted})
    with ThreadPoolExecutor(16) as pool:
        served = dict(zip(names, pool.map(pypi_hashes, names), strict=True))
    missing = sorted(key for key, hashes in wanted.items() if not hashes & served[key.split("==")[0]].keys())
    assert missing == ["torch==2.13.0+cpu"], missing
    too_new = sorted(key for key, hashes in wanted.items() if key not in missing
                     and not any("3.11.2" in SpecifierSet(served[key.split("==")[0]][h]) for h in hashes
                                 if h in served[key.split("==")[0]]))
    assert too_new == [], too_new
