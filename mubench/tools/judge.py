"""``mubench judge``: a judge against human refusal labels, and drawing the judge-audit sample of a run."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mubench.core.config import ConfigError, Params
from mubench.core.io import atomic_write_text, read_jsonl
from mubench.core.workspace import Workspace
from mubench.judges import get_judge
from mubench.scoring.agreement import read_refusal_labels, validate
from mubench.scoring.audit import KEY_COLUMNS, sample_keys


def validate_judge(judge: str, options: dict, labels: Path) -> dict:
    """Accuracy, precision, recall and Cohen's kappa of ``judge`` against a labels CSV (1 = refusal)."""
    if not labels.is_file():
        raise FileNotFoundError(f"{labels}: no such labels file")
    return validate(get_judge(judge, options), read_refusal_labels(labels))


def draw_audit_sample(params: Params, ws: Workspace, n: int, seed: int, out: Path, sheet: Path | None) -> int:
    """Write the labels CSV of an audit sample (``n`` responses over every variant and attack, label column
    empty) and, with ``sheet``, the texts to label; returns how many were drawn. Labels are never overwritten."""
    if out.exists():
        raise ConfigError(f"{out}: exists; labels are never overwritten (move it away to draw a new sample)")
    rows = {(m, v): read_jsonl(ws.samples(m, v) / "safety.jsonl") for m in params.models for v in params.variants()}
    picked = sample_keys(rows, n, seed)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*KEY_COLUMNS, "label"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**k, "label": ""} for k in picked)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, buffer.getvalue())
    if sheet is not None:
        by_key = {(m, v, r["attack"], r["id"]): r for (m, v), rs in rows.items() for r in rs}
        lines = []
        for i, k in enumerate(picked, start=2):
            r = by_key[(k["model"], k["variant"], k["attack"], k["id"])]
            lines.append(f"### line {i}: {k['variant']} {k['attack']} {k['id']}\nREQUEST: {r.get('goal', r['prompt'])}"
                         f"\nREPLY: {r.get('judged_text') or r['response']}\n")
        atomic_write_text(sheet, "\n".join(lines))
    return len(picked)
