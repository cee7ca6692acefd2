"""The ``report`` stage: tables (summary.md / summary.json / trilemma.csv), paired tests vs base, the judge
audit, the findings as sentences (findings.md, which the README and docs quote), the figures over every variant
of the run, and the sample explorer (reports/explorer)."""

from __future__ import annotations

from mubench.core.config import Params
from mubench.core.io import atomic_write_text, read_json, write_json
from mubench.core.workspace import Workspace
from mubench.report.explorer import write_explorer
from mubench.report.findings import findings_page
from mubench.report.plots import attacks_heatmap_png, trilemma_png
from mubench.report.tables import collect, markdown, summarize, trilemma_csv
from mubench.report.tamper import summarize_tamper
from mubench.stats.comparisons import compare_model


def build_summary(params: Params, ws: Workspace) -> dict:
    """The report's summary from the metrics and samples, in memory (``mubench verify`` rebuilds it too)."""
    grid = collect(params, ws)
    provenance = read_json(ws.built / "build.json")["provenance"]
    agreement = read_json(ws.judge_agreement) if ws.judge_agreement.is_file() else None
    compared = {model: compare_model(params, {v: ws.samples(model, v) for v in variants})
                for model, variants in grid.items()}
    summary = summarize(params, grid, provenance, agreement, {m: c[0] for m, c in compared.items()},
                        {m: c[1] for m, c in compared.items()})
    summary["tamper"] = summarize_tamper(params, ws)
    if ws.audit_labels.is_file():
        from mubench.scoring.audit import audit_report

        audit = audit_report(ws.audit_labels, ws, params.models, params.variants())
        if audit is not None:
            summary["judge_audit"] = audit
    return summary


def run_report(params: Params, ws: Workspace) -> dict:
    """Write every report file into ``reports/``; returns the summary (summary.json)."""
    summary = build_summary(params, ws)
    out_dir = ws.reports
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "summary.md", markdown(params, summary))
    atomic_write_text(out_dir / "findings.md", findings_page(summary, params.jailbreaks.names(), params.tamper.names))
    atomic_write_text(out_dir / "trilemma.csv", trilemma_csv(summary))
    trilemma_png(summary, out_dir / "trilemma.png")
    attacks_heatmap_png(params.jailbreaks.names(), summary, out_dir / "attacks_heatmap.png", params.tamper.names)
    write_explorer(params, ws, summary)  # reports/explorer: every number linked to the rows it counts
    return summary
