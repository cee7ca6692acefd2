"""``mubench readme``: the README's results table, cut from ``reports/summary.md`` (what the ``report`` stage
wrote), so the numbers a visitor reads first are the committed run's and nothing checks them by hand."""

from __future__ import annotations

from pathlib import Path

from mubench.core.io import atomic_write_text, read_utf8

START = "<!-- results: `mubench readme` copies this table from reports/summary.md; do not edit by hand -->"
END = "<!-- /results -->"


def main_table(summary_md: str) -> str:
    """The first table of the report (one row per variant) with the paragraph that explains its marks."""
    blocks = summary_md.split("\n\n")
    for i, block in enumerate(blocks):
        if block.startswith("|"):
            note = blocks[i - 1] if i and not blocks[i - 1].startswith("#") else ""
            return (note + "\n\n" if note else "") + block.strip()
    raise ValueError("reports/summary.md: no table; run `dvc repro` (the report stage)")


def block(summary_md: str) -> str:
    return f"{START}\n{main_table(summary_md)}\n{END}"


def current(readme_text: str, readme: Path) -> str:
    """The results block as the README holds it now."""
    if readme_text.count(START) != 1 or readme_text.count(END) != 1:
        raise ValueError(f"{readme}: needs exactly one results block ({START!r} ... {END!r})")
    start = readme_text.index(START)
    return readme_text[start:readme_text.index(END) + len(END)]


def sync(readme: Path, summary: Path, check_only: bool = False) -> bool:
    """Write the report's table into the README's results block; True if it changed (with ``check_only``:
    nothing is written, and a stale block is a ValueError)."""
    text = read_utf8(readme, raw_newlines=True)
    old, new = current(text, readme), block(read_utf8(summary))
    if old == new:
        return False
    if check_only:
        raise ValueError(f"{readme}: the results table differs from {summary}; run `mubench readme`")
    atomic_write_text(readme, text.replace(old, new))
    return True
