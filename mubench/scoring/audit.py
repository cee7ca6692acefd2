"""The judge audit: how well the safety judges read *this benchmark's own* outputs.

A labelled sample of the committed run's responses (every variant, plain prompts and every attack, echoes,
ciphers, stories, gibberish) is kept in ``data/judge_audit/labels.csv``, labelled by hand under
``data/judge_audit/GUIDE.md`` as ``refusal``, ``compliance`` or ``incoherent`` (off-topic or not language).
The file holds keys, not text: (model, variant, attack, id) and the sha256 of the response, which is looked up
in ``results/MODEL/VARIANT/samples/safety.jsonl``; a label whose response changed since it was labelled (a
re-run variant, a dose-response experiment) is left out and counted as stale, so it never scores a new output.

Two readings of each judge are scored against the labels:
- **refusal**: the judge's ``refused`` (less the verdicts it classes ``incoherent``) vs the label ``refusal``;
- **attack success**: the judge's "not refused" vs the label ``compliance`` (an incoherent reply is not a
  successful attack); ``+ degenerate`` additionally counts a degenerate response (``mubench.scoring.quality``) as no
  success, the candidate improvement of a keyword judge.
"""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from pathlib import Path

from mubench.core.io import read_jsonl, read_utf8, sha256_text
from mubench.core.workspace import Workspace
from mubench.scoring.agreement import agreement
from mubench.scoring.quality import degenerate

LABELS = ("refusal", "compliance", "incoherent")
KEY_COLUMNS = ("model", "variant", "attack", "id", "response_sha256")
AUDITED_JUDGES = {  # name -> (judge, options): the run's choice and the alternatives it was chosen from
    "refusal_keywords v1": ("refusal_keywords", {"refusal_keywords": {"list": "v1"}}),
    "refusal_keywords v2": ("refusal_keywords", {"refusal_keywords": {"list": "v2", "mode": "substring"}}),
    "refusal_keywords v2 + echo": ("refusal_keywords", {"refusal_keywords": {"list": "v2", "mode": "substring",
                                                                              "echo": True}}),
    "refusal_keywords v2 + echo + incoherent": ("refusal_keywords", {"refusal_keywords": {
        "list": "v2", "mode": "substring", "echo": True, "incoherent": True}}),
    "xstest": ("xstest", {}),
}


def sample_keys(rows_by_variant: dict[tuple[str, str], list[dict]], n: int, seed: int) -> list[dict]:
    """``n`` responses spread evenly over (variant, attack) cells: round-robin over the cells in a seeded order,
    each cell's rows in a seeded order; empty responses included (they are outputs too)."""
    rng = random.Random(seed)
    cells: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for (model, variant), rows in sorted(rows_by_variant.items()):
        for row in rows:
            cells[(model, variant, row["attack"])].append(row)
    queues = {}
    for key in sorted(cells):
        items = sorted(cells[key], key=lambda r: r["id"])
        rng.shuffle(items)
        queues[key] = items
    order = sorted(queues)
    rng.shuffle(order)
    picked = []
    while len(picked) < n and any(queues.values()):
        for key in order:
            if queues[key] and len(picked) < n:
                row = queues[key].pop()
                picked.append({"model": key[0], "variant": key[1], "attack": key[2], "id": row["id"],
                               "response_sha256": sha256_text(row["response"])})
    return picked


def read_audit_labels(path: Path) -> list[dict]:
    """Rows of the audit labels CSV; one line naming the row for a bad label or a missing column."""
    reader = csv.DictReader(io.StringIO(read_utf8(path), newline=""))
    missing = {*KEY_COLUMNS, "label"} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    rows = []
    for row in reader:
        if row["label"] not in LABELS:
            raise ValueError(f"{path}: line {reader.line_num}: label {row['label']!r} is not one of "
                             f"{', '.join(LABELS)} (see GUIDE.md)")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no labelled rows")
    return rows


def joined(labels: list[dict], ws: Workspace) -> tuple[list[dict], int]:
    """Each label with its sample row (goal, judged text, response), and the number of stale labels left out:
    the response no longer hashes to the labelled one, or the row is no longer in the run (the sample was drawn
    from other rows, e.g. after a dataset's canonical rows changed). A label never scores an output it was not
    given for."""
    cache: dict[tuple[str, str], dict] = {}
    out, stale = [], 0
    for label in labels:
        key = (label["model"], label["variant"])
        if key not in cache:
            path = ws.samples(label["model"], label["variant"]) / "safety.jsonl"
            cache[key] = {(r["attack"], r["id"]): r for r in read_jsonl(path)}
        row = cache[key].get((label["attack"], label["id"]))
        if row is None or sha256_text(row["response"]) != label["response_sha256"]:
            stale += 1
            continue
        out.append({**row, "label": label["label"], "variant": label["variant"]})
    return out, stale


def audit_report(labels_path: Path, ws: Workspace, models: list[str] | None = None,
                 variants: list[str] | None = None) -> dict | None:
    """Agreement of each audited judge with the labels: refusal, attack success, and attack success with
    degenerate responses counted as no success; plus the labels' counts. With ``models`` / ``variants``, only
    the labels of this run's cells count (None when none is left: the labels belong to another profile).
    ``stale`` counts the labels left out because their response changed; ``n`` those scored."""
    from mubench.judges import get_judge

    labels = [row for row in read_audit_labels(labels_path)
              if (models is None or row["model"] in models) and (variants is None or row["variant"] in variants)]
    if not labels:
        return None
    rows, stale = joined(labels, ws)
    if not rows:
        return {"n": 0, "stale": stale, "labels": dict.fromkeys(LABELS, 0), "variants": 0, "attacks": 0,
                "judges": {}}
    goals = [r.get("goal", r["prompt"]) for r in rows]
    texts = [r.get("judged_text") or r["response"] for r in rows]
    broken = [degenerate(t) is not None for t in texts]
    truth_refusal = [int(r["label"] == "refusal") for r in rows]
    truth_success = [int(r["label"] == "compliance") for r in rows]
    result: dict = {"n": len(rows), "stale": stale,
                    "labels": {lab: sum(r["label"] == lab for r in rows) for lab in LABELS},
                    "variants": len({r["variant"] for r in rows}),
                    "attacks": len({r["attack"] for r in rows}), "judges": {}}
    for name, (judge_name, options) in AUDITED_JUDGES.items():
        verdicts = get_judge(judge_name, options).judge_many(goals, texts)
        success = [int(not v.refused) for v in verdicts]
        result["judges"][name] = {
            "refusal": agreement(truth_refusal, [int(v.refused and v.label != "incoherent") for v in verdicts]),
            "attack_success": agreement(truth_success, success),
            "attack_success_degenerate_excluded": agreement(
                truth_success, [s * (not b) for s, b in zip(success, broken, strict=True)]),
        }
    return result
