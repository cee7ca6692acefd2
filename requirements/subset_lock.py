"""Cut a hashed pip-compile lock down to the closure of some roots, keeping every pin and hash as they are.

The full locks (``cpu.lock``, ``cuda.lock``) include the ``dev`` extra (pytest, ruff, hadolint) for ``make setup``.
The image needs only what mubench runs on, and a second resolution would move pins, so the runtime locks are
derived from the full ones: a package is kept when it is a root or when a kept package requires it (the
``# via`` lines pip-compile writes name every requirer). Two subsets are made:

- runtime (``*-runtime.lock``): roots = ``[project] dependencies`` of pyproject.toml plus the ``.in`` file;
- build (``build.lock``): setuptools alone, installed first so that the four sdists in the locks
  (word2number, sqlitedict, antlr4-python3-runtime, rouge-score) are built by a hashed setuptools
  (``--no-build-isolation``) instead of build dependencies pip would fetch unchecked.

Usage: ``python requirements/subset_lock.py runtime requirements/cpu.lock requirements/cpu.in > OUT``
or ``python requirements/subset_lock.py build requirements/cpu.lock > OUT`` (``make lock`` runs both).
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def canonical(name: str) -> str:
    """PEP 503 normalised name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Entry:
    name: str  # canonical
    lines: tuple[str, ...]  # the pin, its hashes and its via comments, verbatim
    parents: tuple[str, ...]  # canonical names of the packages that require it (pseudo-parents dropped)


def parse_lock(text: str) -> list[Entry]:
    """The lock's pinned entries, in file order."""
    entries: list[Entry] = []
    current: list[str] | None = None

    def close() -> None:
        if current is not None:
            entries.append(Entry(canonical(PIN.match(current[0]).group(1)), tuple(current), _parents(current)))

    for line in text.splitlines():
        if PIN.match(line):
            close()
            current = [line]
        elif current is not None and line.startswith(" "):
            current.append(line)
        else:  # a blank line or a comment at column 0 ends an entry
            close()
            current = None
    close()
    return entries


def _parents(lines: list[str]) -> tuple[str, ...]:
    parents, in_via = [], False
    for line in lines[1:]:
        text = line.strip()
        if text.startswith("# via"):
            in_via = True
            rest = text[len("# via"):].strip()
            if rest:
                parents.append(rest)
        elif in_via and text.startswith("#"):
            parents.append(text.lstrip("#").strip())
    # "mubench (pyproject.toml)" and "-r requirements/x.in" are roots' markers, not packages
    return tuple(canonical(p) for p in parents if " " not in p and not p.startswith("-"))


def project_roots(pyproject: Path = PYPROJECT) -> set[str]:
    """Canonical names of pyproject's ``[project] dependencies`` (no extras)."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return {canonical(REQUIREMENT_NAME.match(d).group(1)) for d in deps}


def in_file_roots(path: Path) -> set[str]:
    """Canonical names of the requirements in a pip-compile ``.in`` file."""
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(canonical(REQUIREMENT_NAME.match(line).group(1)))
    return names


def closure(entries: list[Entry], roots: set[str]) -> set[str]:
    """The roots and everything a kept package requires, transitively (a fixed point over the via graph)."""
    known = {e.name for e in entries}
    missing = sorted(roots - known)
    if missing:
        raise ValueError(f"roots not pinned in the lock: {', '.join(missing)}")
    kept = set(roots)
    changed = True
    while changed:
        changed = False
        for e in entries:
            if e.name not in kept and any(p in kept for p in e.parents):
                kept.add(e.name)
                changed = True
    return kept


def subset(text: str, roots: set[str], source: str, what: str) -> str:
    """The lock text of the closure of ``roots``: the kept entries verbatim, in the full lock's order."""
    entries = parse_lock(text)
    kept = closure(entries, roots)
    out = [f"# {what}: derived from {source} by requirements/subset_lock.py (`make lock`); do not edit.",
           "# Every pin and hash is the full lock's; only entries outside the closure are left out.", "#"]
    for e in entries:
        if e.name in kept:
            out.extend(e.lines)
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "runtime":
        lock, in_file = Path(argv[1]), Path(argv[2])
        roots = project_roots() | in_file_roots(in_file)
        what = "runtime lock (no dev extra)"
    elif len(argv) == 2 and argv[0] == "build":
        lock, roots, what = Path(argv[1]), {"setuptools"}, "build lock (what builds the sdists)"
    else:
        print("usage: subset_lock.py runtime LOCK IN_FILE | subset_lock.py build LOCK", file=sys.stderr)
        return 2
    sys.stdout.write(subset(lock.read_text(encoding="utf-8"), roots, lock.as_posix(), what))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
