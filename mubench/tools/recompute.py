"""What ``mubench verify`` recomputes: every rate and interval of a ``metrics.json`` from its per-sample files, and
the report's rows and table from the metrics, with the same functions the stages use. A hand-edited number (then
``dvc commit``-ed, so the hashes agree) fails with one line naming the file, the key, the recorded and the
recomputed value.

Not recomputable from the per-sample files: utility ``acc_norm`` (lm-eval's length-normalised score is not kept
per item; its ``acc`` and ``exact_match`` are).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mubench.core.config import Params
from mubench.core.io import read_json, read_jsonl
from mubench.core.workspace import Workspace


class Mismatch(ValueError):
    """A recorded number that its inputs do not give."""


def first_difference(recorded: Any, recomputed: Any, key: str = "", skip: tuple[str, ...] = ()) -> str | None:
    """The first key path where two JSON values differ (floats compared to 1e-9), with both values; None if equal."""
    if key in skip:
        return None
    if isinstance(recorded, dict) and isinstance(recomputed, dict):
        for k in sorted(set(recorded) | set(recomputed)):
            sub = f"{key}.{k}" if key else str(k)
            if k not in recorded or k not in recomputed:
                side = "recorded" if k in recorded else "recomputed"
                return f"{sub}: only in the {side} values"
            found = first_difference(recorded[k], recomputed[k], sub, skip)
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(recomputed, list) and len(recorded) == len(recomputed):
        for i, (a, b) in enumerate(zip(recorded, recomputed, strict=True)):
            found = first_difference(a, b, f"{key}[{i}]", skip)
            if found:
                return found
        return None
    if isinstance(recorded, int | float) and isinstance(recomputed, int | float) \
            and not isinstance(recorded, bool) and not isinstance(recomputed, bool):
        if math.isclose(recorded, recomputed, rel_tol=0, abs_tol=1e-9):
            return None
    elif recorded == recomputed:
        return None
    return f"{key}: recorded {recorded!r}, recomputed {recomputed!r}"


def recompute_metrics(params: Params, samples_dir: Path, recorded: dict) -> dict:
    """``metrics.json`` (but ``run``) from ``samples/``: judged rows, utility items, drift rows."""
    from mubench.scoring.judging import Judges
    from mubench.scoring.rates import compute_metrics

    safety = read_jsonl(samples_dir / "safety.jsonl")
    over = read_jsonl(samples_dir / "oversafety.jsonl")
    drift = read_jsonl(samples_dir / "drift.jsonl")
    items = read_jsonl(samples_dir / "utility.jsonl")
    utility = {}
    for task in params.data.utility:
        rows = [r for r in items if r["task"] == task]
        correct = [int(r["correct"]) for r in rows]
        kept = recorded["utility"]["per_task"].get(task, {})
        acc = sum(correct) / len(correct) if correct else 0.0
        utility[task] = {"acc": acc, "acc_norm": kept.get("acc_norm"), "n": len(rows), "correct": correct,
                         **({"exact_match": acc} if "exact_match" in kept else {})}
    return compute_metrics(params, safety, over, utility, drift, Judges.of(params).labels())


def check_metrics(params: Params, ws: Workspace, model: str, variant: str, metrics: dict) -> str:
    """One line on what was recomputed; Mismatch naming the file and key when a number does not follow."""
    path = ws.result(model, variant) / "metrics.json"
    again = recompute_metrics(params, ws.samples(model, variant), metrics)
    recorded = {k: metrics[k] for k in again}
    found = first_difference(recorded, again)
    if found:
        raise Mismatch(f"{path}: {found} (from {ws.samples(model, variant)}); re-run `mubench evaluate {model} "
                       f"{variant}` (or `dvc repro`)")
    return "every rate and interval recomputed from samples/ (utility acc_norm is lm-eval's, not per item)"


def check_report(params: Params, ws: Workspace) -> str:
    """The report's rows, seed spreads, markdown table and findings rebuilt from the metrics and samples."""
    from mubench.report.findings import findings_page
    from mubench.report.tables import markdown
    from mubench.stages.report import build_summary

    summary_file = ws.reports / "summary.json"
    recorded = read_json(summary_file)
    again = build_summary(params, ws)  # dict order matters to the markdown, which the JSON file sorts
    found = first_difference(recorded, json.loads(json.dumps(again)))
    if found:
        raise Mismatch(f"{summary_file}: {found}; re-run `mubench report` (or `dvc repro`)")
    table = (ws.reports / "summary.md").read_text(encoding="utf-8")
    if table != markdown(params, again):
        raise Mismatch(f"{ws.reports / 'summary.md'}: its text is not what {summary_file.name} gives; re-run "
                       "`mubench report` (or `dvc repro`)")
    findings = ws.reports / "findings.md"
    if not findings.is_file() or findings.read_text(encoding="utf-8") != findings_page(
            again, params.jailbreaks.names(), params.tamper.names):
        raise Mismatch(f"{findings}: missing, or not the sentences {summary_file.name} gives; re-run "
                       "`mubench report` (or `dvc repro`)")
    return f"{len(again['rows'])} rows, paired tests, summary.md and findings.md rebuilt from the metrics and samples"
