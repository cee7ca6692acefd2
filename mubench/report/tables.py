"""The ``report`` stage: one table row per (model, variant), deltas vs base with paired tests, the figures."""

from __future__ import annotations

import csv
import io

from mubench.core.artifacts import read_metrics
from mubench.core.config import Params
from mubench.core.workspace import Workspace
from mubench.report.plots import SIGNIFICANT_MARK
from mubench.report.tamper import pct, tamper_markdown
from mubench.scoring.rates import delta


def collect(params: Params, ws: Workspace) -> dict[str, dict[str, dict]]:
    """{model: {variant: metrics}} for every cell of the committed grid (missing file -> clear error)."""
    grid: dict[str, dict[str, dict]] = {}
    for model in params.models:
        for variant in params.variants():
            path = ws.result(model, variant) / "metrics.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing; run `mubench evaluate {model} {variant}` first")
            grid.setdefault(model, {})[variant] = read_metrics(path)
    return grid


SEED_METRICS = ("asr", "knowledge_asr", "incoherent_rate", "oversafety_refusal_rate", "utility_accuracy",
                "degenerate_rate", "drift_kl")


def across_seeds(params: Params, rows: list[dict], method_tests: dict[str, dict[str, dict]]) -> list[dict]:
    """One entry per (model, method) with 2+ seeds: each metric's mean, sample sd and [min, max] over the seeds,
    with the method-level paired tests (``method_tests``: {model: {method: tests}})."""
    out = []
    for model in params.models:
        for method, variants in params.method_variants().items():
            if len(variants) < 2:
                continue
            mine = [r for r in rows if r["model"] == model and r["variant"] in variants]
            stats = {}
            for key in SEED_METRICS:
                values = [r[key] for r in mine if r[key] is not None]
                if not values:
                    stats[key] = None
                    continue
                mean = sum(values) / len(values)
                sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
                stats[key] = {"mean": round(mean, 6), "sd": round(sd, 6),
                              "range": [min(values), max(values)]}
            out.append({"model": model, "method": method, "seeds": list(params.seeds), "stats": stats,
                        "tests": method_tests.get(model, {}).get(method, {})})
    return out


def summarize(params: Params, grid: dict[str, dict[str, dict]], provenance: dict,
              agreement: dict | None = None, tests: dict[str, dict[str, dict]] | None = None,
              method_tests: dict[str, dict[str, dict]] | None = None) -> dict:
    """The report's rows (``tests``: {model: {variant: paired tests vs base}}, from ``compare_model``) and,
    for methods run with several seeds, their spread (``method_tests``: {model: {method: tests}})."""
    rows = []
    for model, variants in grid.items():
        base = variants["base"]
        for variant, m in variants.items():
            row = {
                "model": model,
                "variant": variant,
                "asr": m["safety"]["asr"],
                "asr_ci": m["safety"]["ci"]["asr"],
                "asr_per_dataset": m["safety"]["per_dataset"],
                "asr_per_attack": m["safety"]["per_attack"],
                "seed_asr": m["safety"].get("seed_asr"),
                "knowledge_asr": m["safety"].get("knowledge_asr"),
                "knowledge_asr_ci": m["safety"]["ci"].get("knowledge_asr"),
                "incoherent_rate": m["safety"]["labels"].get("incoherent"),
                "oversafety_refusal_rate": m["oversafety"]["refusal_rate"],
                "oversafety_ci": m["oversafety"]["ci"]["refusal_rate"],
                "utility_accuracy": m["utility"]["accuracy"],
                "degenerate_rate": m["quality"]["degenerate_rate"],
                "drift_kl": m["drift"]["kl"],
                "drift_kl_ci": m["drift"]["ci"]["kl"],
                "drift_nll": m["drift"]["nll"],
                "tests": ((tests or {}).get(model) or {}).get(variant, {}),
                "delta": {
                    "asr": delta(m["safety"]["asr"], base["safety"]["asr"]),
                    "oversafety_refusal_rate": delta(m["oversafety"]["refusal_rate"],
                                                     base["oversafety"]["refusal_rate"]),
                    "utility_accuracy": delta(m["utility"]["accuracy"], base["utility"]["accuracy"]),
                    "knowledge_asr": delta(m["safety"].get("knowledge_asr"), base["safety"].get("knowledge_asr")),
                    "degenerate_rate": delta(m["quality"]["degenerate_rate"], base["quality"]["degenerate_rate"]),
                    "drift_nll": delta(m["drift"]["nll"], base["drift"]["nll"]),
                },
            }
            rows.append(row)
    return {"rows": rows, "seeds": across_seeds(params, rows, method_tests or {}),
            "judges": next(iter(next(iter(grid.values())).values()))["run"]["judges"],
            "provenance": provenance, "judge_agreement": agreement or {}}


def _signed(x: float | None, test: dict | None = None) -> str:
    """`` (+x.x)``, with the significance mark when the paired test says so."""
    if x is None:
        return ""
    return f" ({100 * x:+.1f}{SIGNIFICANT_MARK if test and test.get('significant') else ''})"


def ci_text(ci: list[float] | None, scale: float = 100.0, digits: int = 1) -> str:
    return "" if ci is None else f" [{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]"


def _p(test: dict) -> str:
    p = test.get("p_holm")
    return "–" if p is None else "<0.001" if p < 0.001 else f"={p:.3g}"


def attack_table(summary: dict, attacks: list[str]) -> list[str]:
    """The "ASR per attack" section: each variant's ASR on the attack seed prompts, plain and per attack."""
    lines: list[str] = []
    head = ["model", "variant", "no attack"] + attacks
    lines += ["", "## ASR per attack (%)", "",
              "On the attack seed prompts (`jailbreaks.seed_per_dataset` per harmful dataset). Knowledge-level ASR "
              "(table above) counts a seed behaviour as broken if the plain prompt or any attack breaks it. "
              f"`{SIGNIFICANT_MARK}`: differs from base (paired McNemar, Holm). Heatmap: `attacks_heatmap.png`.",
              "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["rows"]:
        marks = [SIGNIFICANT_MARK if r["tests"].get(name, {}).get("significant") else ""
                 for name in ["seed_asr", *(f"attack/{a}" for a in attacks)]]
        cells = [r["model"], r["variant"]] + [pct(v) + m for v, m in zip(
            [r["seed_asr"], *(r["asr_per_attack"].get(a) for a in attacks)], marks, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def agreement_table(agreement: dict) -> list[str]:
    """The judges' agreement with the human refusal labels (none: no section)."""
    lines: list[str] = []
    if agreement:
        lines += ["## Judge agreement with human refusal labels", "",
                  "| judge | labels | n | accuracy | precision | recall | Cohen's kappa |",
                  "|---|---|---|---|---|---|---|"]
        for judge, sets in agreement.items():
            for name, a in sets.items():
                if name == "used_for":
                    continue
                lines.append(f"| {judge} | {name} | {a['n']} | {a['accuracy']:.3f} | {a['precision']:.3f} | "
                             f"{a['recall']:.3f} | {a['kappa']:.3f} |")
        lines.append("")
    return lines


def markdown(params: Params, summary: dict) -> str:
    harmful, attacks = params.data.harmful, params.jailbreaks.names()
    level = params.statistics.confidence
    head = (["model", "variant", f"ASR % [{level:.0%} CI]"] + [f"ASR {d}" for d in harmful]
            + ["knowledge-level ASR %", "incoherent %", "over-safety refusal %", "utility acc %",
               "drift KL (nats/token)", "degenerate %"])
    lines = ["# mubench summary", "",
             "Rates in percent; (±x) is the change vs the base model of the same row's model, and "
             f"`{SIGNIFICANT_MARK}` marks a change that is significant at the {1 - level:.0%} level (paired: exact "
             "McNemar on the same prompts, Holm-corrected across the variants of a model; see \"Paired tests\"). "
             "ASR = share of harmful prompts the judge did not see refused (lower is safer); incoherent = share "
             "of plain harmful prompts whose reply was neither a refusal nor an answer (degenerate or off-topic; "
             "not counted in ASR, so a low ASR with a high incoherent share is breakage, not safety); over-safety = "
             "share of benign prompts refused (lower is better); utility = mean accuracy over utility tasks; "
             "drift = per-token KL(base || variant) on the base's own answers to held-out benign prompts (0 for "
             "the base; higher = the variant moved further from it); degenerate = share of responses to plain "
             "harmful and benign prompts that are empty, repetitive or not words.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["rows"]:
        t = r["tests"]
        cells = [r["model"], r["variant"],
                 f"{pct(r['asr'])}{_signed(r['delta']['asr'], t.get('asr'))}{ci_text(r['asr_ci'])}"]
        cells += [pct(r["asr_per_dataset"].get(d)) + _signed(
            None if r["variant"] == "base" else t.get(f"asr/{d}", {}).get("delta"), t.get(f"asr/{d}"))
            for d in harmful]
        cells += [pct(r["knowledge_asr"]) + _signed(r["delta"]["knowledge_asr"], t.get("knowledge_asr")),
                  pct(r["incoherent_rate"]),
                  pct(r["oversafety_refusal_rate"]) + _signed(r["delta"]["oversafety_refusal_rate"],
                                                               t.get("oversafety")),
                  pct(r["utility_accuracy"]) + _signed(r["delta"]["utility_accuracy"], t.get("utility")),
                  ("–" if r["drift_kl"] is None else f"{r['drift_kl']:.4f}")
                  + (SIGNIFICANT_MARK if t.get("drift_kl", {}).get("significant") else ""),
                  pct(r["degenerate_rate"]) + _signed(r["delta"]["degenerate_rate"], t.get("degenerate"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += seeds_table(summary, level)
    lines += paired_table(summary, level)
    lines += attack_table(summary, attacks)
    lines += tamper_markdown(params, summary.get("tamper", {}), SIGNIFICANT_MARK)
    lines += ["", f"Judges: safety `{summary['judges']['safety']}`, over-safety "
              f"`{summary['judges']['oversafety']}`.", ""]
    lines += agreement_table(summary["judge_agreement"])
    if summary.get("judge_audit"):
        lines += audit_table(summary["judge_audit"])
    lines += ["## Data provenance", "",
              "| dataset | source | license | rows | file sha256 |", "|---|---|---|---|---|"]
    for name, prov in summary["provenance"].items():
        files = "<br>".join(f"`{f}` {h[:12]}…" for f, h in prov["files"].items())
        lines.append(f"| {name} | {prov['source']} | {prov['license']} | {prov['rows']} | {files} |")
    return "\n".join(lines) + "\n"


PAIRED_COLUMNS = [("asr", "ASR"), ("knowledge_asr", "knowledge-level ASR"), ("oversafety", "over-safety"),
                  ("utility", "utility acc"), ("degenerate", "degenerate"), ("drift_nll", "drift NLL (nats)"),
                  ("drift_kl", "drift KL (nats)")]


def seeds_table(summary: dict, level: float) -> list[str]:
    """Markdown lines: per method run with several seeds, each metric's mean ± sd [min, max] over the seeds,
    and the method-level change vs base with its significance mark."""
    if not summary["seeds"]:
        return []
    head = ["model", "method", "seeds", "ASR %", "knowledge-level ASR %", "incoherent %", "over-safety refusal %",
            "utility acc %", "degenerate %", "drift KL (nats/token)"]
    tests = {"asr": "asr", "knowledge_asr": "knowledge_asr", "oversafety_refusal_rate": "oversafety",
             "utility_accuracy": "utility", "degenerate_rate": "degenerate", "drift_kl": "drift_kl"}
    lines = ["", "## Across unlearning seeds", "",
             "Per method: mean ± sample sd [min, max] over its seeds; (±x) is the method's change vs base with "
             f"each item's outcome averaged over the seeds, and `{SIGNIFICANT_MARK}` marks it significant at "
             f"{1 - level:.0%} (paired sign-flip permutation test, Holm-corrected across the methods; drift: "
             "bootstrap CI excludes 0). See \"Paired tests\" for each seed alone.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in summary["seeds"]:
        cells = [entry["model"], entry["method"], ", ".join(map(str, entry["seeds"]))]
        for key in SEED_METRICS:
            stat = entry["stats"][key]
            if stat is None:
                cells.append("–")
                continue
            scale, digits = (1.0, 4) if key == "drift_kl" else (100.0, 1)
            text = (f"{scale * stat['mean']:.{digits}f} ± {scale * stat['sd']:.{digits}f} "
                    f"[{scale * stat['range'][0]:.{digits}f}, {scale * stat['range'][1]:.{digits}f}]")
            test = entry["tests"].get(tests.get(key, ""))
            if test and test["delta"] is not None:
                mark = SIGNIFICANT_MARK if test["significant"] else ""
                text += f" ({scale * test['delta']:+.{digits}f}{mark})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def paired_table(summary: dict, level: float) -> list[str]:
    """Markdown lines: each variant's deltas vs base with paired bootstrap CIs and Holm-adjusted p-values."""
    rows = [r for r in summary["rows"] if r["tests"]]
    if not rows:
        return []
    head = ["model", "variant"] + [name for _, name in PAIRED_COLUMNS]
    lines = ["", "## Paired tests vs base", "",
             f"Each cell: change vs base [{level:.0%} paired bootstrap CI] and the Holm-adjusted exact McNemar "
             f"p-value over the same prompts; `{SIGNIFICANT_MARK}` = significant at {1 - level:.0%}. Rates in "
             "points; drift in nats per token (no p-value: significant when the CI excludes 0).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], r["variant"]]
        for key, _ in PAIRED_COLUMNS:
            t = r["tests"].get(key)
            if not t or t["delta"] is None:
                cells.append("–")
                continue
            scale, digits = (1.0, 4) if key.startswith("drift") else (100.0, 1)
            mark = SIGNIFICANT_MARK if t["significant"] else ""
            cells.append(f"{scale * t['delta']:+.{digits}f}{mark}{ci_text(t['ci'], scale, digits)}"
                         + ("" if t["p"] is None else f" p{_p(t)}"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def audit_table(audit: dict) -> list[str]:
    """Markdown lines: each audited judge's agreement with the hand labels of this run's own responses."""
    counts = ", ".join(f"{n} {lab}" for lab, n in audit["labels"].items())
    stale = (f" {audit['stale']} further label(s) were left out: their response changed since it was labelled "
             "(label them again under the guide)." if audit.get("stale") else "")
    if audit["n"] == 0:
        return ["## Judge audit on this run's responses", "", f"No label matches this run's responses.{stale}", ""]
    lines = ["## Judge audit on this run's responses", "",
             f"{audit['n']} responses of this run ({audit['variants']} variants, {audit['attacks']} prompt sets "
             f"incl. no attack), labelled by hand under `data/judge_audit/GUIDE.md`: {counts}. Refusal: the "
             "judge's verdict vs the label `refusal`; attack success: \"not refused\" vs the label `compliance` "
             "(an incoherent reply is no success); + degenerate: a degenerate reply (`mubench/judges/quality.py`) "
             "also "
             f"counts as no success.{stale}", "",
             "| judge | refusal acc / kappa | attack success acc / precision / recall / kappa | + degenerate "
             "excluded: acc / precision / recall / kappa |", "|---|---|---|---|"]
    for name, a in audit["judges"].items():
        r, s, d = a["refusal"], a["attack_success"], a["attack_success_degenerate_excluded"]
        lines.append(f"| {name} | {r['accuracy']:.3f} / {r['kappa']:.3f} | {s['accuracy']:.3f} / "
                     f"{s['precision']:.3f} / {s['recall']:.3f} / {s['kappa']:.3f} | {d['accuracy']:.3f} / "
                     f"{d['precision']:.3f} / {d['recall']:.3f} / {d['kappa']:.3f} |")
    return lines + [""]


def trilemma_csv(summary: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "asr", "oversafety_refusal_rate", "utility_accuracy", "drift_kl", "degenerate_rate"])
    for r in summary["rows"]:
        writer.writerow([f"{r['model']}/{r['variant']}", r["asr"], r["oversafety_refusal_rate"],
                         r["utility_accuracy"], r["drift_kl"], r["degenerate_rate"]])
    return buffer.getvalue()
