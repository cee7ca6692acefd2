"""``mubench readme``: the README's and the docs' statements about the committed run, copied from what the
``report`` stage wrote, so the numbers a visitor reads are the run's and nothing checks them by hand.

A page holds generated blocks between two HTML comments (invisible on GitHub and in the docs site):
- ``results``: the report's main table with the paragraph that explains its marks (``reports/summary.md``);
- ``findings``: the findings as sentences (``reports/findings.md``, without its heading).
README.md holds both; docs/results.md holds both. ``--check`` fails on a stale block and writes nothing (the
docs tests run it).

Each block starts with a stamp naming the params.yaml of the run it quotes (its sha256), because a page quotes
one run: after `mubench profile tiny && dvc repro` the README still quotes the committed run, and `verify` must
tell that apart from a hand-edited figure (it checks a page only when the stamp is the workspace's params.yaml).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from mubench.core.errors import InvalidValue
from mubench.core.io import atomic_write_text, read_utf8

START = "<!-- results: `mubench readme` copies this table from reports/summary.md; do not edit by hand -->"
END = "<!-- /results -->"
FINDINGS_START = "<!-- findings: `mubench readme` copies these from reports/findings.md; do not edit by hand -->"
FINDINGS_END = "<!-- /findings -->"
# the pages that quote the committed run, relative to the project root
PAGES = ("README.md", "docs/results.md")


STAMP = "<!-- quotes the run of params.yaml sha256:{} -->"
STAMP_RE = re.compile(re.escape(STAMP).replace(re.escape("{}"), "([0-9a-f]{12})"))


def params_stamp(params_file: Path) -> str:
    """The first 12 hex digits of the params file's sha256: which run a page quotes."""
    return hashlib.sha256(params_file.read_bytes()).hexdigest()[:12]


def quoted_params(page: Path) -> set[str]:
    """The params stamps of the generated blocks ``page`` holds (empty: no block, or none stamped)."""
    text = read_utf8(page, raw_newlines=True)
    found = set()
    for start, end, _, _ in BLOCKS.values():
        block = current(text, page, start, end)
        if block is not None:
            match = STAMP_RE.search(block)
            found.add(match.group(1) if match else "")
    return found


def main_table(summary_md: str) -> str:
    """The first table of the report (one row per variant) with the paragraph that explains its marks."""
    blocks = summary_md.split("\n\n")
    for i, block in enumerate(blocks):
        if block.startswith("|"):
            note = blocks[i - 1] if i and not blocks[i - 1].startswith("#") else ""
            return (note + "\n\n" if note else "") + block.strip()
    raise InvalidValue("reports/summary.md: no table; run `dvc repro` (the report stage)")


def findings_body(findings_md: str) -> str:
    """reports/findings.md without its heading line."""
    lines = findings_md.strip().splitlines()
    return "\n".join(lines[1:] if lines and lines[0].startswith("# ") else lines).strip()


# name -> (start marker, end marker, report file, its text -> the block's body)
BLOCKS: dict[str, tuple[str, str, str, Callable[[str], str]]] = {
    "results": (START, END, "summary.md", main_table),
    "findings": (FINDINGS_START, FINDINGS_END, "findings.md", findings_body),
}


def current(text: str, page: Path, start: str = START, end: str = END) -> str | None:
    """The block as the page holds it now; None when the page has none (a marker without its pair is an error)."""
    if text.count(start) == 0 and text.count(end) == 0:
        return None
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise InvalidValue(f"{page}: needs exactly one generated block ({start!r} ... {end!r})")
    i = text.index(start)
    return text[i:text.index(end) + len(end)]


def sync_page(page: Path, reports: Path, check_only: bool = False, params_file: Path | None = None) -> list[str]:
    """Rewrite every generated block of ``page`` from ``reports`` (stamped with ``params_file``, by default the
    params.yaml beside the report folder); the names of the blocks that changed (with ``check_only``: nothing is
    written, and a stale block is a ValueError)."""
    stamp = STAMP.format(params_stamp(params_file or reports.parent / "params.yaml"))
    text = read_utf8(page, raw_newlines=True)
    changed, new_text = [], text
    for name, (start, end, source, body) in BLOCKS.items():
        old = current(text, page, start, end)
        if old is None:
            continue
        new = f"{start}\n{stamp}\n{body(read_utf8(reports / source))}\n{end}"
        if old != new:
            if check_only:
                raise InvalidValue(f"{page}: the {name} block differs from {reports / source}; run `mubench readme`")
            changed.append(name)
            new_text = new_text.replace(old, new)
    if changed:
        atomic_write_text(page, new_text)
    return changed


def sync(readme: Path, summary: Path, check_only: bool = False) -> bool:
    """The README's blocks from the report folder of ``summary``; True if one changed. The README must have a
    results block."""
    text = read_utf8(readme, raw_newlines=True)
    if current(text, readme) is None:
        raise InvalidValue(f"{readme}: needs exactly one results block ({START!r} ... {END!r})")
    return bool(sync_page(readme, summary.parent, check_only))


def sync_all(root: Path, reports: Path, check_only: bool = False) -> dict[str, list[str]]:
    """Every page of ``PAGES``: {page: the blocks that changed}; each page must hold the findings block."""
    out = {}
    for rel in PAGES:
        page = root / rel
        if current(read_utf8(page, raw_newlines=True), page, FINDINGS_START, FINDINGS_END) is None:
            raise InvalidValue(f"{page}: has no findings block ({FINDINGS_START!r} ... {FINDINGS_END!r})")
        out[rel] = sync_page(page, reports, check_only)
    return out
