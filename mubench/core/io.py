"""Atomic file output (through the locked temporary siblings of ``core.outputs``), hashing, JSONL helpers and
run records (versions, seeds, device)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mubench.core.errors import InvalidValue
from mubench.core.outputs import (
    CLAIMS,
    LOCK_FILE,
    OWNER_FILE,
    UnsafeOutputError,
    check_replaceable,
    sweep_leftovers,
    temporary_sibling,
    umask,
)
from mubench.core.records import Record


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def atomic_dir(path: str | Path, owner: str) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``path`` in one rename.

    ``owner`` names the stage (``mubench build``); the directory is marked with it, and an existing ``path``
    is replaced only when it is empty or carries the same mark (never a user's directory, never the working
    directory). Leftovers of a killed earlier write are swept first."""
    target = Path(path)
    check_replaceable(target, owner)
    sweep_leftovers(target)
    tmp = temporary_sibling(target)
    old = None
    try:
        yield tmp
        (tmp / OWNER_FILE).write_text(owner + "\n", encoding="utf-8")
        if target.exists():
            check_replaceable(target, owner)  # it may have appeared while the stage ran
            old = temporary_sibling(target)
            os.replace(target, old / "previous")
        os.replace(tmp, target)
        (target / LOCK_FILE).unlink()  # held through the rename: the output itself keeps no lock file
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
            if leftover is not None:
                CLAIMS.unlock(leftover)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to a temp file beside ``path``, then rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        raise UnsafeOutputError(f"{target}: is a directory; refusing to replace it with a file")
    sweep_leftovers(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        CLAIMS.lock(Path(tmp), fd)
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 would hide the file from other users
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        CLAIMS.unlock(Path(tmp))


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


class NotUtf8Error(InvalidValue):
    """A file that is not UTF-8 text; ``byte`` is the offset of the first bad byte."""

    def __init__(self, path: Path, byte: int) -> None:
        super().__init__(f"{path}: not UTF-8 text (byte {byte}); save it as UTF-8")
        self.byte = byte


def read_utf8(path: str | Path, raw_newlines: bool = False) -> str:
    """A text file as UTF-8 (a leading BOM dropped; ``\r\n`` and ``\r`` read as ``\n`` unless ``raw_newlines``);
    bytes that are not UTF-8 raise NotUtf8Error, which callers re-raise in their own error type."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotUtf8Error(path, exc.start) from None
    return text if raw_newlines else text.replace("\r\n", "\n").replace("\r", "\n")


def _text(path: Path) -> str:
    return read_utf8(path)


def read_json(path: str | Path) -> Any:
    """A JSON file; a syntax error names the file and its line."""
    path = Path(path)
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise InvalidValue(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any] | Record]) -> None:
    """One JSON object per line, keys sorted; a record is written as its ``to_json()`` (the JSON edge)."""
    lines = [json.dumps(row.to_json() if isinstance(row, Record) else row, sort_keys=True, ensure_ascii=False)
             for row in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


class LineError(InvalidValue):
    """A JSONL line that is not a JSON object; ``line`` and ``problem`` let readers phrase it their way."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path}: line {line}: {problem}")
        self.line, self.problem = line, problem


def jsonl_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of ``text``; a LineError names the first bad line."""
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LineError(path, number, f"not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(row, dict):
            raise LineError(path, number, f"expected a JSON object, got {type(row).__name__}")
        rows.append((number, row))
    return rows


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """One JSON object per line (blank lines skipped); an error names the file and the line."""
    return [row for _, row in read_numbered_jsonl(path)]


BUILT_HINT = "re-run `mubench build` (`dvc repro build`) and check data.sizes"


class EmptyInputError(InvalidValue):
    """An input file a stage needs rows from holds none (the one-line error, before any model is loaded)."""


def require_rows(*paths: str | Path, hint: str = "re-run the stage that writes it (`dvc repro`)") -> None:
    """Fail in one line, naming the file, when an input JSONL file holds no rows. Stages call it at their
    start: an empty input would otherwise end in a ZeroDivisionError or StopIteration after the generation work."""
    for path in map(Path, paths):
        with open(path, encoding="utf-8") as handle:
            if not any(line.strip() for line in handle):
                raise EmptyInputError(f"{path}: holds no rows; {hint}")


def require_free_disk(where: str | Path, need_bytes: float, what: str, margin: float = 0.1) -> None:
    """Fail in one line when the file system holding ``where`` has less than ``need_bytes`` (plus ``margin``)
    free. Stages that write checkpoints call it at their start, not after minutes of training."""
    import shutil

    probe = Path(where)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need_bytes * (1 + margin) > free:
        raise OSError(f"not enough free disk for {what}: needs about {need_bytes / 1e9:.2f} GB "
                      f"(+{margin:.0%} margin), {free / 1e9:.2f} GB free at {probe}; free some space or move the "
                      "workspace")


def read_numbered_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line of a JSONL file."""
    path = Path(path)
    return jsonl_rows(_text(path), path)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a number (recorded next to every artifact)."""
    from importlib import metadata

    names = ["mubench", "torch", "transformers", "accelerate", "lm_eval", "safetensors", "numpy", "dvc"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_record(**extra: Any) -> dict[str, Any]:
    """Provenance block written beside artifacts: versions, platform and the CPU kernel paths
    (``mubench.core.kernels``), plus stage fields (no clock time, so two runs give identical files)."""
    from mubench.core.kernels import kernel_record

    return {"versions": package_versions(), "platform": platform.machine(), "cpu_kernels": kernel_record(), **extra}


def stable_json_hash(obj: Any) -> str:
    return sha256_text(json.dumps(obj, sort_keys=True, ensure_ascii=False))
