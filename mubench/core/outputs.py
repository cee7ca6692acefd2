"""Who may write an output, and who is writing it now.

A stage writes each output through a temporary sibling that it locks while it lives; at its start it claims its
outputs (a locked sibling beside each, held until the process ends), so a second instance refuses instead of
sweeping the first one's work. ``check_replaceable`` refuses to replace anything the stage does not own (a user's
folder, the working directory). The process's locks and claims live in one object, ``CLAIMS``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from mubench.core.errors import FailedStep

OWNER_FILE = ".mubench-output"
# temporary siblings: ".NAME." + 8 characters of mkdtemp/mkstemp + ".tmp"
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")


class UnsafeOutputError(FailedStep):
    """A stage was asked to replace something it does not own (a user's directory, the repository)."""


class OutputBusyError(FailedStep):
    """Another live process is writing the same output (its temporary sibling is locked)."""


LOCK_FILE = ".mubench-lock"  # inside a temporary sibling folder: flocked while its writer lives


class OutputClaims:
    """This process's hold on outputs: the open descriptor that locks each temporary sibling it writes, the claims
    it holds beside its stage's outputs, and the folders those claims created (removed again if left empty)."""

    def __init__(self) -> None:
        self.locks: dict[str, int] = {}  # temporary path -> the open file descriptor holding its lock
        self.claims: list[Path] = []
        self.created: list[Path] = []

    def lock(self, tmp: Path, fd: int | None = None) -> None:
        """Take the writer's lock on a temporary sibling (a folder: a lock file inside it; a file: the file)."""
        import fcntl

        fd = os.open(tmp / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644) if fd is None else os.dup(fd)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.locks[str(tmp)] = fd

    def unlock(self, tmp: Path) -> None:
        fd = self.locks.pop(str(tmp), None)
        if fd is not None:
            os.close(fd)

    def holds(self, entry: Path) -> bool:
        return str(entry) in self.locks

    def claim(self, owner: str, paths: list[Path]) -> None:
        import atexit

        for path in paths:
            check_replaceable(path, owner)
            sweep_leftovers(path)
        if not self.claims:
            atexit.register(self.release)
        for path in paths:
            missing = [p for p in path.parents if not p.exists()]  # deepest first
            self.claims.append(temporary_sibling(path))
            self.created.extend(missing)

    def release(self) -> None:
        for claim in self.claims:
            shutil.rmtree(claim, ignore_errors=True)
            self.unlock(claim)
        for folder in self.created:  # the folders a claim made, deepest first, where nothing else was written
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.claims.clear()
        self.created.clear()


CLAIMS = OutputClaims()


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
    mode = 0o666 & ~umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_sibling(path: Path) -> Path:
    """A temporary folder beside ``path``, with the mode of a normal new folder (mkdtemp's is 0700, which
    other users of a shared workspace or a bind mount could not read once it is renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~umask())
    CLAIMS.lock(tmp)
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
            if not CLAIMS.holds(entry) and _live(entry):
                raise OutputBusyError(f"{target}: another mubench process is writing it now ({entry.name}); wait "
                                      "for it to finish (or stop it), then run this again")
            if CLAIMS.holds(entry):
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


def release_claims() -> None:
    """Drop this process's output claims (a stage that finished; the CLI calls it, and so does exit)."""
    CLAIMS.release()


def claim_outputs(owner: str, *paths: str | Path) -> None:
    """At a stage's start: refuse before any work if an output directory is not the stage's to replace, or if
    another live process is writing it (OutputBusyError); sweep what a killed earlier run left beside it; then
    hold a locked claim beside each output until this process ends, so a second instance refuses in turn instead
    of sweeping this one's work."""
    CLAIMS.claim(owner, [Path(p) for p in paths])
