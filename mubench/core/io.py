"""Atomic file output, hashing, JSONL helpers and run records (versions, seeds, device)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


OWNER_FILE = ".mubench-output"
# temporary siblings: ".NAME." + 8 characters of mkdtemp/mkstemp + ".tmp"
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")


class UnsafeOutputError(RuntimeError):
    """A stage was asked to replace something it does not own (a user's directory, the repository)."""


class OutputBusyError(RuntimeError):
    """Another live process is writing the same output (its temporary sibling is locked)."""


LOCK_FILE = ".mubench-lock"  # inside a temporary sibling folder: flocked while its writer lives
_LOCKS: dict[str, int] = {}  # temporary path -> the open file descriptor holding its lock


def _lock(tmp: Path, fd: int | None = None) -> None:
    """Take the writer's lock on a temporary sibling (a folder: a lock file inside it; a file: the file itself)."""
    import fcntl

    fd = os.open(tmp / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644) if fd is None else os.dup(fd)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _LOCKS[str(tmp)] = fd


def _unlock(tmp: Path) -> None:
    fd = _LOCKS.pop(str(tmp), None)
    if fd is not None:
        os.close(fd)


def _live(entry: Path) -> bool:
    """Whether a temporary sibling is being written by a live process (its lock is held)."""
    import fcntl

    lock = entry / LOCK_FILE if entry.is_dir() else entry
    if not lock.exists():
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def normal_modes(folder: Path) -> None:
    """Give every file under ``folder`` the mode of a normal new file (0644 under umask 022): libraries that
    write through a temporary file (transformers' weights shards) leave mkstemp's 0600."""
    mode = 0o666 & ~_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_sibling(path: Path) -> Path:
    """A temporary folder beside ``path``, with the mode of a normal new folder (mkdtemp's is 0700, which
    other users of a shared workspace or a bind mount could not read once it is renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())
    _lock(tmp)
    return tmp


def sweep_leftovers(target: str | Path) -> list[Path]:
    """Remove the temporary siblings of ``target`` that a killed write left behind; returns what went."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    swept = []
    for entry in target.parent.iterdir():
        match = _TMP_NAME.match(entry.name)
        if match and match["name"] == target.name and not entry.is_symlink():
            if str(entry) not in _LOCKS and _live(entry):
                raise OutputBusyError(f"{target}: another mubench process is writing it now ({entry.name}); wait "
                                      "for it to finish (or stop it), then run this again")
            if str(entry) in _LOCKS:
                continue
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            swept.append(entry)
    return swept


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and parent in child.parents


def check_replaceable(target: Path, owner: str) -> None:
    """Raise UnsafeOutputError unless ``target`` may be (re)written by the stage ``owner``: not the working
    directory or one above it, and either absent, empty, or marked as a previous output of the same stage
    (its ``OWNER_FILE`` names ``owner``)."""
    resolved, cwd = target.resolve(), Path.cwd().resolve()
    if resolved == cwd or _inside(cwd, resolved):
        raise UnsafeOutputError(f"{target}: is the working directory or holds it; refusing to replace it")
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UnsafeOutputError(f"{target}: exists and is not a directory `{owner}` wrote; move or delete it "
                                "yourself")
    if not target.exists() or not any(target.iterdir()):
        return
    marker = target / OWNER_FILE
    found = marker.read_text(encoding="utf-8", errors="replace").strip() if marker.is_file() else None
    if found != owner:
        what = f"an output of `{found}`" if found else f"no {OWNER_FILE} marker"
        raise UnsafeOutputError(f"{target}: not a previous output of `{owner}` ({what}); refusing to replace it "
                                "(move or delete it yourself)")


_CLAIMS: list[Path] = []
_CREATED: list[Path] = []


def release_claims() -> None:
    """Drop this process's output claims (a stage that finished; the CLI calls it, and so does exit)."""
    for claim in _CLAIMS:
        shutil.rmtree(claim, ignore_errors=True)
        _unlock(claim)
    for folder in _CREATED:  # the folders a claim made, deepest first, where nothing else was written
        with contextlib.suppress(OSError):
            folder.rmdir()
    _CLAIMS.clear()
    _CREATED.clear()


def claim_outputs(owner: str, *paths: str | Path) -> None:
    """At a stage's start: refuse before any work if an output directory is not the stage's to replace, or if
    another live process is writing it (OutputBusyError); sweep what a killed earlier run left beside it; then
    hold a locked claim beside each output until this process ends, so a second instance refuses in turn instead
    of sweeping this one's work."""
    import atexit

    for path in paths:
        check_replaceable(Path(path), owner)
        sweep_leftovers(path)
    if not _CLAIMS:
        atexit.register(release_claims)
    for path in map(Path, paths):
        missing = [p for p in path.parents if not p.exists()]  # deepest first
        _CLAIMS.append(_tmp_sibling(path))
        _CREATED.extend(missing)


@contextlib.contextmanager
def atomic_dir(path: str | Path, owner: str) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``path`` in one rename.

    ``owner`` names the stage (``mubench build``); the directory is marked with it, and an existing ``path``
    is replaced only when it is empty or carries the same mark (never a user's directory, never the working
    directory). Leftovers of a killed earlier write are swept first."""
    target = Path(path)
    check_replaceable(target, owner)
    sweep_leftovers(target)
    tmp = _tmp_sibling(target)
    old = None
    try:
        yield tmp
        (tmp / OWNER_FILE).write_text(owner + "\n", encoding="utf-8")
        if target.exists():
            check_replaceable(target, owner)  # it may have appeared while the stage ran
            old = _tmp_sibling(target)
            os.replace(target, old / "previous")
        os.replace(tmp, target)
        (target / LOCK_FILE).unlink()  # held through the rename: the output itself keeps no lock file
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
            if leftover is not None:
                _unlock(leftover)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to a temp file beside ``path``, then rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        raise UnsafeOutputError(f"{target}: is a directory; refusing to replace it with a file")
    sweep_leftovers(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        _lock(Path(tmp), fd)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from other users
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _unlock(Path(tmp))


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


class NotUtf8Error(ValueError):
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
        raise ValueError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    lines = [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


class LineError(ValueError):
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


class EmptyInputError(ValueError):
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
