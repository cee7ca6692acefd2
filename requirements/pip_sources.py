"""Where ``make setup`` gets its packages: which lock fits this machine, and which index serves its torch wheel.

PyPI never hosts PyTorch's ``+cpu`` builds; PyTorch's own CPU wheel index does (the lock's sha256 is that index's
file). So setup must add that index whenever pip, as the user configured it, cannot already supply the pinned
wheel, and it must do so with no flag from the user. ``--require-hashes`` stays on: whichever index serves a
file, pip installs it only if its sha256 is the lock's.

Standard library only (it runs before the virtual environment holds anything but pip). Commands, each printing
one line for the Makefile:

- ``check``: exit 1 with one line saying what to do when this interpreter is not Python 3.11 (the locks are
  resolved for 3.11).
- ``lock``: ``requirements/cuda.lock`` where an NVIDIA driver answers (``nvidia-smi -L`` lists a GPU), else
  ``requirements/cpu.lock``. ``make setup LOCK=...`` overrides it.
- ``pip-args LOCK [PIP OPTIONS...]``: the extra pip options that LOCK needs here: nothing where the lock's torch
  is on PyPI (the CUDA build) or where pip's configuration, with the given options (``PIP_EXTRA``), already finds
  the pinned file (asked of pip itself, with the pin's hash, through ``pip install --dry-run``); otherwise
  PyTorch's CPU index as an extra index.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
HERE = Path(__file__).resolve().parent
CPU_LOCK, CUDA_LOCK = "requirements/cpu.lock", "requirements/cuda.lock"
TORCH_PIN = re.compile(r"^torch==(\S+?)\s*\\?\s*$")
HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")
PYTHON = (3, 11)


def check_python(version: tuple[int, int] = sys.version_info[:2]) -> str | None:
    """None when this interpreter can install the locks, else the one line that says what to do."""
    if tuple(version) == PYTHON:
        return None
    have = ".".join(map(str, version))
    return (f"error: make setup needs Python 3.11 (the lock files are resolved for it), not {have}: install "
            "python3.11 with its venv module (Debian/Ubuntu: apt install python3.11 python3.11-venv; elsewhere "
            "pyenv install 3.11), or pass PYTHON=/path/to/python3.11, or use the image (docs/container.md)")


def has_nvidia_gpu() -> bool:
    """True where an NVIDIA driver answers and lists at least one GPU (``nvidia-smi -L``)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "GPU" in proc.stdout


def default_lock() -> str:
    return CUDA_LOCK if has_nvidia_gpu() else CPU_LOCK


def torch_pin(lock_text: str) -> tuple[str, list[str]] | None:
    """The lock's torch version and its hashes (None when the lock has no torch)."""
    lines = lock_text.splitlines()
    for i, line in enumerate(lines):
        match = TORCH_PIN.match(line)
        if match:
            hashes = []
            for follow in lines[i + 1:]:
                if not follow.startswith(" "):
                    break
                hashes += HASH.findall(follow)
            return match.group(1), hashes
    return None


def configured_pip_finds(version: str, hashes: list[str], python: str = sys.executable,
                         options: tuple[str, ...] = ()) -> bool:
    """Whether pip, with the user's own configuration and nothing added, finds torch==VERSION with one of the
    pinned hashes (a dry run: nothing is installed; a local wheel is hashed where it lies, nothing is fetched)."""
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "torch.txt"
        req.write_text(f"torch=={version} " + " ".join(f"--hash={h}" for h in hashes) + "\n", encoding="utf-8")
        proc = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                               "--only-binary", ":all:", "--require-hashes", "--quiet", "-r", str(req), *options],
                              capture_output=True, text=True)
    return proc.returncode == 0


def pip_args(lock: str, python: str = sys.executable, options: tuple[str, ...] = ()) -> list[str]:
    """Extra pip options for installing LOCK on this machine (see the module docstring)."""
    path = Path(lock) if Path(lock).is_absolute() else HERE.parent / lock
    pin = torch_pin(path.read_text(encoding="utf-8"))
    if pin is None or "+cpu" not in pin[0]:
        return []
    version, hashes = pin
    if configured_pip_finds(version, hashes, python, options):
        print(f"torch {version}: found by pip as configured (with PIP_EXTRA)", file=sys.stderr)
        return []
    print(f"torch {version}: not on PyPI; adding PyTorch's CPU index ({TORCH_CPU_INDEX}), hashes still checked",
          file=sys.stderr)
    return ["--extra-index-url", TORCH_CPU_INDEX]


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "check":
        problem = check_python()
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    if command == "lock":
        print(default_lock())
        return 0
    if command == "pip-args" and len(argv) >= 2:
        print(" ".join(pip_args(argv[1], options=tuple(argv[2:]))))
        return 0
    print("usage: python requirements/pip_sources.py check | lock | pip-args LOCK [PIP OPTIONS...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
