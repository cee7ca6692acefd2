"""The sample explorer (``reports/explorer/``): the report's tables in a browser, each number a link to the rows
it counts.

Open ``index.html`` from disk: no server, no network. Scripts and styles are inlined (``explorer_assets/``).
The data are one script file per (model, variant), ``data/MODEL/VARIANT.js``, loaded with a ``<script>`` tag
when a view needs it. A script tag works from ``file://``, where ``fetch`` of a JSON file does not. So a paper
run with a million rows opens as fast as the smoke run.

Which rows a number counts is not re-derived in JavaScript. Each data file lists, per test, the items that
``mubench.stats.comparisons.outcomes`` (the paired tests' own definition, the same rows as
``mubench.scoring.rates``) gives, with their outcome, as indices into the file's rows. A cell links to a
test. The page shows exactly those rows, or, for a paired test, the base/variant pairs whose outcomes differ
(the discordant pairs behind the McNemar p-value).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mubench.core.artifacts import read_rows
from mubench.core.config import Params
from mubench.core.io import atomic_dir
from mubench.core.records import DatasetRow, DriftRow, JudgedRow, UtilityItem
from mubench.core.workspace import Workspace
from mubench.report.tables import ci_text
from mubench.report.tamper import pct
from mubench.scoring.rates import VANILLA
from mubench.stats.comparisons import outcomes

ASSETS = Path(__file__).with_name("explorer_assets")
OWNER = "mubench report"
ROW_FIELDS = ("id", "dataset", "attack", "category", "goal", "prompt", "response", "judged_text", "refused",
              "judge_label", "judge_reason", "degenerate")


def _utility_text(ws: Workspace, tasks: list[str]) -> dict[tuple[str, str], DatasetRow]:
    """(task, id) -> the built item (question, choices, answer), for the utility rows' text."""
    out = {}
    for task in tasks:
        path = ws.built / "utility" / f"{task}.jsonl"
        if path.is_file():
            for row in read_rows(DatasetRow, path):
                out[(task, row.id)] = row
    return out


def shown(row: JudgedRow, **extra: Any) -> dict[str, Any]:
    """A judged row as the explorer shows it (``ROW_FIELDS``; a field the row lacks is null), plus ``extra``."""
    return {**{k: getattr(row, k, None) for k in ROW_FIELDS}, **extra}


# the rows a test's item keys name, for the tests read off one kind of row
TEST_ROWS = {"asr": "safety/vanilla", "seed_asr": "safety/vanilla", "knowledge_asr": "safety/vanilla",
             "oversafety": "oversafety", "utility": "utility", "drift_kl": "drift", "drift_nll": "drift"}


def row_key(test: str, key: str) -> tuple[str, str]:
    """The (kind, key) of the row behind item ``key`` of paired test ``test``."""
    family = test.split("/")[0]
    if family == "asr":
        return "safety/vanilla", key
    if family == "attack":
        return f"safety/{test.split('/', 1)[1]}", key
    if family == "utility" and "/" in test:
        return "utility", f"{test.split('/', 1)[1]}/{key}"
    if family == "degenerate":
        attack, rid = key.split("/", 1)
        return ("oversafety", rid) if attack == "over-safety" else ("safety/vanilla", rid)
    return TEST_ROWS[test], key


def variant_data(params: Params, ws: Workspace, model: str, variant: str, audit: dict,
                 utility_text: dict) -> dict[str, Any]:
    """Every row of one variant (plain and attacked harmful prompts, benign prompts, utility items, drift
    prompts, tamper attacks), and per test the items it counts: {test: [[row index, outcome], ...]}."""
    samples = ws.samples(model, variant)
    rows: list[dict] = []
    index: dict[tuple[str, str], int] = {}

    def add(kind: str, row: dict, key: str) -> None:
        index[(kind, key)] = len(rows)
        rows.append(row)

    for row in read_rows(JudgedRow, samples / "safety.jsonl"):
        label = audit.get((model, variant, row.attack, row.id))
        # a hand label of this row's prompt and response (scoring.audit.joined)
        add(f"safety/{row.attack}", shown(row, **({"audit": label} if label is not None else {}), set="harmful"),
            row.id)
    for row in read_rows(JudgedRow, samples / "oversafety.jsonl"):
        add("oversafety", shown(row, attack="over-safety", set="over-safety"), row.id)
    for item in read_rows(UtilityItem, samples / "utility.jsonl"):
        built = utility_text.get((item.task, str(item.id)))
        text = (built.prompt, built.choices, built.answer) if built is not None else (None, None, None)
        add("utility", {"id": item.id, "dataset": item.task, "attack": "utility", "set": "utility",
                        "prompt": text[0], "choices": text[1], "answer": text[2], "correct": bool(item.correct),
                        "response": getattr(item, "response", None)},
            f"{item.task}/{item.id}")
    for drift in read_rows(DriftRow, samples / "drift.jsonl"):
        add("drift", {"id": drift.id, "attack": "drift", "set": "drift", "kl": drift.kl, "nll": drift.nll,
                      "tokens": drift.tokens}, drift.id)
    tamper_dir = ws.tamper_result(model, variant) / "samples"
    for name in params.tamper.names:
        path = tamper_dir / f"{name}.jsonl"
        if path.is_file():
            for row in read_rows(JudgedRow, path):
                if row.attack == VANILLA:  # its over-safety rows carry no attack
                    add(f"tamper/{name}", shown(row, attack=f"tamper:{name}", set="tamper"), row.id)

    items, _ = outcomes(params, samples)
    tests: dict[str, list] = {}
    for test, by_key in items.items():
        for key, outcome in by_key.items():
            if outcome is not None:  # an unreadable verdict is in no rate
                tests.setdefault(test, []).append([index[row_key(test, key)], outcome])
    # as the tamper stage counts: rows read both after the attack and by this checkpoint's own evaluate
    read_before = {rid for (kind, rid), i in index.items()
                   if kind == "safety/vanilla" and rows[i]["refused"] is not None}  # rows: the page's JSON
    for name in params.tamper.names:
        tests[f"tamper/{name}"] = [[i, not rows[i]["refused"]] for (kind, rid), i in index.items()
                                   if kind == f"tamper/{name}" and rows[i]["refused"] is not None
                                   and rid in read_before]
    return {"model": model, "variant": variant, "rows": rows, "tests": tests}


def _cell(text: str, model: str, variant: str, test: str | None, **extra: Any) -> dict:
    return {"text": text, **({"model": model, "variant": variant, "test": test} if test else {}), **extra}


def summary_tables(params: Params, summary: dict) -> list[dict]:
    """The report's tables with every number a link: {title, note, columns, rows: [[cell, ...]]}; a cell is
    {text, model?, variant?, test?, pairs?, filter?}."""
    main, attacks, paired = [], [], []
    tests = ("asr", "knowledge_asr", "oversafety", "utility", "degenerate", "drift_nll", "drift_kl")
    for row in summary["rows"]:
        m, v = row["model"], row["variant"]
        lead = [_cell(m, m, v, None), _cell(v, m, v, None)]
        main.append(lead + [
            _cell(f"{pct(row['asr'])}{ci_text(row.get('asr_ci'))}", m, v, "asr"),
            *[_cell(pct(row["asr_per_dataset"].get(d)), m, v, f"asr/{d}") for d in params.data.harmful],
            _cell(pct(row.get("knowledge_asr")), m, v, "knowledge_asr"),
            _cell(pct(row.get("incoherent_rate")), m, v, "asr", filter={"judge_label": "incoherent"}),
            _cell(pct(row.get("oversafety_refusal_rate")), m, v, "oversafety"),
            _cell(pct(row.get("utility_accuracy")), m, v, "utility"),
            _cell("–" if row.get("drift_kl") is None else f"{row['drift_kl']:.4f}", m, v, "drift_kl"),
            _cell(pct(row.get("degenerate_rate")), m, v, "degenerate")])
        attacks.append(lead + [_cell(pct(row.get("seed_asr")), m, v, "seed_asr")]
                       + [_cell(pct(row["asr_per_attack"].get(a)), m, v, f"attack/{a}")
                          for a in params.jailbreaks.names()])
        if v != "base" and row.get("tests"):
            paired.append(lead + [_cell(_test_text(row["tests"].get(t), t), m, v, t, pairs=True) for t in tests])
    tables = [
        {"id": "summary", "title": "Safety, over-safety, utility",
         "note": "Rates in percent. A number links to the rows it counts; the outcome column says how each row "
                 "counted. Incoherent: the plain harmful prompts the judge labelled incoherent.",
         "columns": ["model", "variant", "ASR % [95% CI]", *[f"ASR {d}" for d in params.data.harmful],
                     "knowledge-level ASR %", "incoherent %", "over-safety refusal %", "utility acc %",
                     "drift KL (nats/token)", "degenerate %"], "rows": main},
        {"id": "paired", "title": "Paired tests vs base",
         "note": "Change vs base and the Holm-adjusted exact McNemar p-value. A cell links to the base/variant "
                 "pairs whose outcomes differ (the discordant pairs the test counts).",
         "columns": ["model", "variant", *tests], "rows": paired},
        {"id": "attacks", "title": "ASR per attack (%)",
         "note": "On the attack seed prompts; a cell links to that attack's rows (decoded text for the encoding "
                 "attacks).",
         "columns": ["model", "variant", "no attack", *params.jailbreaks.names()], "rows": attacks},
    ]
    tamper = summary.get("tamper") or {}
    if tamper:
        rows = []
        for m, variants in tamper.items():
            for v, entry in variants.items():
                rows.append([_cell(m, m, v, None), _cell(v, m, v, None)]
                            + [_cell(pct(entry["asr"].get(n)), m, v, f"tamper/{n}") for n in params.tamper.names])
        tables.append({"id": "tamper", "title": "ASR after each tamper attack (%)",
                       "note": "Each tamper attack edits the weights; a cell links to the attacked copy's answers.",
                       "columns": ["model", "variant", *params.tamper.names], "rows": rows})
    return tables


def _test_text(test: dict | None, name: str) -> str:
    if not test or test.get("delta") is None:
        return "–"
    scale, digits = (1, 4) if name.startswith("drift") else (100, 1)
    p = test.get("p_holm")
    p_text = "" if p is None else " p<0.001" if p < 0.001 else f" p={p:.3g}"
    return f"{scale * test['delta']:+.{digits}f}{'*' if test.get('significant') else ''}{p_text}"


def page(tables: list[dict], files: dict[str, str], title: str) -> str:
    """index.html: the template with the stylesheet, the script and the tables inlined."""
    template = (ASSETS / "index.html").read_text(encoding="utf-8")
    data = json.dumps({"title": title, "tables": tables, "files": files}, ensure_ascii=False, sort_keys=True)
    return (template.replace("/*STYLE*/", (ASSETS / "explorer.css").read_text(encoding="utf-8"))
            .replace("/*SCRIPT*/", (ASSETS / "explorer.js").read_text(encoding="utf-8"))
            .replace("/*DATA*/", data.replace("</", "<\\/")))


def explorer_files(params: Params, ws: Workspace, summary: dict) -> dict[str, str]:
    """The explorer's files by path under ``reports/explorer``: index.html and one data file per variant."""
    from mubench.scoring.audit import audit_matches

    audit = audit_matches(ws, [(m, v) for m in params.models for v in params.variants()])
    utility_text = _utility_text(ws, params.data.utility)
    files, out = {}, {}
    for model in params.models:
        for variant in params.variants():
            rel = f"data/{model}/{variant}.js"
            data = variant_data(params, ws, model, variant, audit, utility_text)
            out[rel] = "MUBENCH.loaded(" + json.dumps(data, ensure_ascii=False, sort_keys=True).replace(
                "</", "<\\/") + ");\n"
            files[f"{model}/{variant}"] = rel
    out["index.html"] = page(summary_tables(params, summary), files, "mubench sample explorer")
    return out


def write_explorer(params: Params, ws: Workspace, summary: dict) -> dict[str, int]:
    """Write ``reports/explorer`` (``explorer_files``); returns {file: bytes}."""
    files = explorer_files(params, ws, summary)
    with atomic_dir(ws.reports / "explorer", OWNER) as tmp:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
    return {rel: len(text.encode("utf-8")) for rel, text in files.items()}
