"""``mubench judge``: a judge against human refusal labels, and drawing the judge-audit sample of a run."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mubench.core.artifacts import read_rows
from mubench.core.config import ConfigError, Params
from mubench.core.io import atomic_write_text
from mubench.core.records import JudgedRow
from mubench.core.workspace import Workspace
from mubench.judges import JUDGES
from mubench.scoring.agreement import read_refusal_labels, validate
from mubench.scoring.audit import KEY_COLUMNS, sample_keys


def validate_judge(judge: str, options: dict, labels: Path) -> dict:
    """Accuracy, precision, recall and Cohen's kappa of ``judge`` against a labels CSV (1 = refusal)."""
    if not labels.is_file():
        raise FileNotFoundError(f"{labels}: no such labels file")
    return validate(JUDGES.get(judge, options.get(judge)), read_refusal_labels(labels))


def draw_audit_sample(params: Params, ws: Workspace, n: int, seed: int, out: Path, sheet: Path | None,
                      force: bool = False, keep: Path | None = None) -> int:
    """Write the labels CSV of an audit sample (``n`` responses over every variant and attack) and, with ``sheet``,
    the texts still to label; returns how many were drawn. With ``keep`` (an earlier labels file), every label
    whose prompt and response still occur in the run is carried over, filled in, and counts toward ``n``; the
    rest are drawn fresh with an empty label. Labels are never overwritten; an existing sheet only with
    ``force``."""
    from mubench.scoring.audit import joined, label_key, read_audit_labels

    if out.exists():
        raise ConfigError(f"{out}: exists; labels are never overwritten (move it away to draw a new sample)")
    if sheet is not None and sheet.exists() and not force:
        raise ConfigError(f"{sheet}: exists; pass --force to replace it, or choose another --sheet")
    cells = [(m, v) for m in params.models for v in params.variants()]
    rows = {(m, v): read_rows(JudgedRow, ws.samples(m, v) / "safety.jsonl") for m, v in cells}
    kept = []
    if keep is not None:
        old = [r for r in read_audit_labels(keep) if (r["model"], r["variant"]) in set(cells)]
        kept = [{**label_key(r.row, r.model, r.variant), "label": r.label} for r in joined(old, ws, cells)[0]][:n]
    taken = {(k["model"], k["variant"], k["attack"], k["id"]) for k in kept}
    fresh = sample_keys({cell: [r for r in cell_rows if (*cell, r.attack, r.id) not in taken]
                         for cell, cell_rows in rows.items()}, n - len(kept), seed)
    picked = kept + [{**k, "label": ""} for k in fresh]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*KEY_COLUMNS, "label"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(picked)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, buffer.getvalue())
    if sheet is not None:
        by_key = {(m, v, r.attack, r.id): r for (m, v), rs in rows.items() for r in rs}
        lines = []
        for i, k in enumerate(picked, start=2):
            if k["label"]:
                continue  # carried over: already labelled
            r = by_key[(k["model"], k["variant"], k["attack"], k["id"])]
            lines.append(f"### line {i}: {k['variant']} {k['attack']} {k['id']}\nREQUEST: {r.judged_goal}"
                         f"\nREPLY: {r.judged_text or r.response}\n")
        atomic_write_text(sheet, "\n".join(lines))
    return len(picked)
