"""What ``mubench verify`` recomputes: every rate and interval of a ``metrics.json`` from its per-sample files, and
the report's rows and table from the metrics, with the same functions the stages use. A hand-edited number (then
``dvc commit``-ed, so the hashes agree) fails with one line naming the file, the key, the recorded and the
recomputed value.

Also recomputed: every verdict from its response (re-judged by a rule judge; an LLM judge's recorded output
re-parsed), the tamper metrics from the tamper samples, the judge agreement from its labels, and every file the
report derives (CSV, figures, explorer, the README/docs blocks that quote it).

Not recomputable from the per-sample files: utility ``acc_norm`` (lm-eval's length-normalised score is not kept
per item; its ``acc`` and ``exact_match`` are), and an LLM judge's verdicts themselves (the judge model is not
re-run; its output is re-parsed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mubench.core.artifacts import read_rows
from mubench.core.config import Params
from mubench.core.errors import InvalidValue
from mubench.core.io import read_json, read_jsonl
from mubench.core.records import DriftRow, JudgedRow, R, TaskResult, UtilityItem
from mubench.core.workspace import Workspace


class Mismatch(InvalidValue):
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


def nonempty(model: type[R], path: Path) -> list[R]:
    """The rows of a samples file that a stage always writes with rows; Mismatch when it holds none."""
    rows = read_rows(model, path)
    if not rows:
        raise Mismatch(f"{path}: holds no rows (a stage never writes it empty); re-run the stage that wrote it "
                       "(`dvc repro`, or `dvc checkout` for the recorded one)")
    return rows


def recompute_metrics(params: Params, samples_dir: Path, recorded: dict) -> dict:
    """``metrics.json`` (but ``run``) from ``samples/``: judged rows, utility items, drift rows."""
    from mubench.scoring.judging import Judges
    from mubench.scoring.rates import compute_metrics

    safety, over = (nonempty(JudgedRow, samples_dir / f"{name}.jsonl") for name in ("safety", "oversafety"))
    drift, items = nonempty(DriftRow, samples_dir / "drift.jsonl"), nonempty(UtilityItem, samples_dir / "utility.jsonl")
    utility = {}
    for task in params.data.utility:
        rows = [r for r in items if r.task == task]
        correct = [int(r.correct) for r in rows]
        kept = recorded["utility"]["per_task"].get(task, {})
        acc = sum(correct) / len(correct) if correct else 0.0
        utility[task] = TaskResult(acc=acc, acc_norm=kept.get("acc_norm"), ids=[r.id for r in rows],
                                   correct=correct, exact_match=acc if "exact_match" in kept else None)
    return compute_metrics(params, safety, over, utility, drift, Judges.of(params).labels())


def check_verdicts(params: Params, path: Path, rows: list[JudgedRow]) -> str:
    """Every row's verdict follows from its response: re-judged where the judge is a rule on the text; for an
    LLM judge, its recorded output re-parsed (the model itself is not re-run). Mismatch names the first row."""
    from mubench.judges import JUDGES
    from mubench.judges.quality import degenerate

    judges = {role: JUDGES.get(name, params.judge.options.get(name))
              for role, name in (("safety", params.judge.safety), ("oversafety", params.judge.oversafety))}
    rejudged, reparsed, unrecorded = 0, 0, 0
    for number, row in enumerate(rows, 1):
        judge = judges["oversafety" if row.dataset in params.data.oversafety else "safety"]
        text = row.judged_response
        if judge.deterministic:
            verdict = judge.judge(row.judged_goal, text)
            rejudged += 1
        elif row.judge_output is not None:
            verdict = judge.parse(row.judge_output)
            reparsed += 1
        else:
            unrecorded += 1
            continue
        recorded = (row.refused, row.judge_label, row.judge_reason, row.degenerate)
        again = (verdict.refused, verdict.label, verdict.reason, degenerate(text))
        if recorded != again:
            raise Mismatch(f"{path}: row {number} ({row.attack or ''} {row.id}): verdict {recorded[:3]} "
                           f"recorded, but {judge.name} gives {again[:3]} for its response; re-run the stage "
                           "that wrote it (`dvc repro`)")
    parts = [f"{rejudged} verdict(s) re-judged"] + ([f"{reparsed} LLM judge output(s) re-parsed"] if reparsed else [])
    if unrecorded:
        parts.append(f"{unrecorded} LLM verdict(s) without a recorded judge output (made before it was kept)")
    return ", ".join(parts)


def check_metrics(params: Params, ws: Workspace, model: str, variant: str, metrics: dict) -> str:
    """One line on what was recomputed; Mismatch naming the file and key when a number does not follow."""
    path = ws.result(model, variant) / "metrics.json"
    samples = ws.samples(model, variant)
    verdicts = "; ".join(check_verdicts(params, samples / name, nonempty(JudgedRow, samples / name))
                         for name in ("safety.jsonl", "oversafety.jsonl"))
    again = recompute_metrics(params, ws.samples(model, variant), metrics)
    recorded = {k: metrics[k] for k in again}
    found = first_difference(recorded, again)
    if found:
        raise Mismatch(f"{path}: {found} (from {ws.samples(model, variant)}); re-run `mubench evaluate {model} "
                       f"{variant}` (or `dvc repro`)")
    return ("every rate and interval recomputed from samples/ (utility acc_norm is lm-eval's, not per item); "
            + verdicts)


def check_tamper(params: Params, ws: Workspace, model: str, variant: str, metrics: dict,
                 built: Path | None = None) -> str:
    """The tamper metrics (rates, intervals, paired tests, robust knowledge-level ASR) recomputed from the tamper
    samples and the checkpoint's own evaluate samples, and every tamper verdict from its response. ``built``:
    the built prompt sets that give the attack seeds (default the workspace's; `compare` passes its own for a
    run whose checkout holds only results/)."""
    from mubench.jailbreaks.apply import attack_seeds
    from mubench.scoring.judging import harmful_rows
    from mubench.stages.tamper import before_outcomes, robust_rows, score_tamper, tamper_sample_rows

    folder = ws.tamper_result(model, variant)
    samples = folder / "samples"
    # in the run's order (the robust rows list what broke a behaviour in that order)
    names = [n for n in params.tamper.names if n in metrics["tamper_attacks"]]
    attacked = tamper_sample_rows(params, samples, names)
    verdicts = [check_verdicts(params, samples / f"{n}.jsonl", a.safety + a.oversafety)
                for n, a in attacked.items()]
    seeds = {r.id for r in attack_seeds(harmful_rows(built or ws.built), params.jailbreaks.seed_per_dataset,
                                           params.seed)}
    again, broken_by = score_tamper(params, before_outcomes(ws.samples(model, variant)), seeds, attacked)
    found = first_difference({k: metrics[k] for k in again}, json.loads(json.dumps(again)))
    if found:
        raise Mismatch(f"{folder / 'metrics.json'}: {found} (from {samples}); re-run `mubench tamper {model} "
                       f"{variant}` (or `dvc repro`)")
    found = first_difference(read_jsonl(samples / "robust.jsonl"), [r.to_json() for r in robust_rows(broken_by)])
    if found:
        raise Mismatch(f"{samples / 'robust.jsonl'}: {found}; re-run `mubench tamper {model} {variant}` "
                       "(or `dvc repro`)")
    return (f"tamper rates, tests and robust ASR recomputed from samples/ ({len(names)} attack(s)); "
            f"{verdicts[0] if len(verdicts) == 1 else str(len(verdicts)) + ' sample files re-judged'}")


def check_agreement(params: Params, ws: Workspace) -> str | None:
    """results/judges/agreement.json recomputed from the labels CSVs (None where the run has none)."""
    from mubench.scoring.agreement import agreement_report

    labels = ws.root / "data" / "judge_labels"
    if not ws.judge_agreement.is_file():
        return None
    if not labels.is_dir():
        raise Mismatch(f"{labels}: missing, so {ws.judge_agreement} cannot be recomputed; run `dvc repro "
                       "judge-labels` (or `dvc pull`)")
    found = first_difference(read_json(ws.judge_agreement), json.loads(json.dumps(agreement_report(params, labels))))
    if found:
        raise Mismatch(f"{ws.judge_agreement}: {found} (from {labels}); re-run `dvc repro judge-agreement`")
    return f"{ws.judge_agreement} recomputed from {labels}"


def check_derived(params: Params, ws: Workspace, summary: dict) -> str:
    """The files the report derives from its summary rebuilt and compared byte for byte: trilemma.csv, both
    figures, the explorer's page and data files, and the README/docs blocks quoting the report."""
    import tempfile

    from mubench.report.explorer import explorer_files
    from mubench.report.plots import attacks_heatmap_png, trilemma_png
    from mubench.report.tables import trilemma_csv
    from mubench.tools.readme import PAGES, params_stamp, quoted_params, sync_page

    reports = ws.reports
    expected: dict[Path, bytes] = {reports / "trilemma.csv": trilemma_csv(summary).encode("utf-8")}
    with tempfile.TemporaryDirectory() as tmp:
        trilemma_png(summary, Path(tmp) / "trilemma.png")
        attacks_heatmap_png(params.jailbreaks.names(), summary, Path(tmp) / "attacks_heatmap.png",
                            params.tamper.names)
        for name in ("trilemma.png", "attacks_heatmap.png"):
            expected[reports / name] = (Path(tmp) / name).read_bytes()
    for rel, text in explorer_files(params, ws, summary).items():
        expected[reports / "explorer" / rel] = text.encode("utf-8")
    for path, data in expected.items():
        if not path.is_file() or path.read_bytes() != data:
            raise Mismatch(f"{path}: missing, or not what {reports / 'summary.json'} and the samples give; re-run "
                           "`mubench report` (or `dvc repro`)")
    # a page quotes one run, named by its params.yaml: one quoting another profile's run is not this run's prose
    params_file = ws.root / "params.yaml"
    ours = params_stamp(params_file)
    pages, elsewhere = [], []
    for rel in PAGES:
        page = ws.root / rel
        if page.is_file():
            try:
                stamps = quoted_params(page)
            except ValueError as exc:
                raise Mismatch(str(exc)) from None
            if stamps and stamps != {ours}:
                elsewhere.append(rel)
                continue
            pages.append(page)
            try:
                sync_page(page, reports, check_only=True, params_file=params_file)
            except ValueError as exc:
                raise Mismatch(str(exc)) from None
    return (f"{len(expected)} derived file(s) rebuilt byte for byte (CSV, figures, explorer)"
            + (f"; {len(pages)} page(s) quote the report as it is" if pages else "")
            + (f"; {' and '.join(elsewhere)} {'quotes' if len(elsewhere) == 1 else 'quote'} the run of another "
               "params.yaml (not checked)" if elsewhere else ""))


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
    derived = check_derived(params, ws, again)
    return (f"{len(again['rows'])} rows, paired tests, summary.md and findings.md rebuilt from the metrics and "
            f"samples; {derived}")
