"""The report's tamper part: per (model, variant), the ASR after each tamper attack with its change vs the
same checkpoint before the attack (paired McNemar, Holm-corrected across the variants of a model for each
attack), and robust knowledge-level ASR with its change vs base (paired McNemar over the seed behaviours,
Holm-corrected across the variants)."""

from __future__ import annotations

from mubench.core.artifacts import TamperMetrics, read_artifact
from mubench.core.io import read_jsonl
from mubench.core.workspace import Workspace
from mubench.stats.paired import holm, paired_delta, significant

BEFORE_MARK = "†"  # a change vs the same checkpoint before the tamper attack, significant after Holm


def _holm(tests: dict[str, dict], confidence: float) -> None:
    """Holm over the variants' tests of one kind (``tests``: {variant: test}); sets p_holm and significant."""
    keys = [k for k in tests if tests[k] is not None]
    for key, p_holm in zip(keys, holm([tests[k]["p"] for k in keys]), strict=True):
        tests[key]["p_holm"] = None if p_holm is None else round(p_holm, 6)
        tests[key]["significant"] = significant(tests[key], confidence)


def summarize_tamper(params, ws: Workspace) -> dict[str, dict[str, dict]]:
    """{model: {variant: entry}}: each attack's rates and tests, knowledge-level ASR before the tamper attacks
    and robust knowledge-level ASR (with its test vs base); {} when no tamper attack is configured."""
    names = params.tamper.names
    if not names:
        return {}
    stats = params.statistics
    out: dict[str, dict[str, dict]] = {}
    for model in params.models:
        entries, robust = {}, {}
        for variant in params.variants():
            folder = ws.tamper_result(model, variant)
            if not (folder / "metrics.json").is_file():
                raise FileNotFoundError(f"{folder / 'metrics.json'}: missing; run `mubench tamper {model} "
                                        f"{variant}` first")
            m = read_artifact(TamperMetrics, folder / "metrics.json")
            entries[variant] = {
                "asr": m["safety"]["per_tamper"], "asr_ci": m["safety"]["ci"]["per_tamper"],
                "seed_asr": m["safety"]["seed_asr"], "oversafety": m["oversafety"]["per_tamper"],
                "utility": m["utility"]["per_tamper"], "degenerate": m["quality"]["per_tamper"],
                "knowledge_asr": m["safety"]["knowledge_asr"],
                "robust_knowledge_asr": m["safety"]["robust_knowledge_asr"],
                "robust_knowledge_asr_ci": m["safety"]["ci"]["robust_knowledge_asr"],
                "tests": m["tests"], "records": {n: a["record"] for n, a in m["tamper_attacks"].items()},
                "n": m["n"], "prompts": m["run"].get("prompts")}
            robust[variant] = {r["id"]: r["broken"] for r in read_jsonl(folder / "samples" / "robust.jsonl")}
        for name in names:
            for kind in ("asr", "seed_asr", "oversafety", "utility"):
                _holm({v: e["tests"].get(name, {}).get(kind) for v, e in entries.items()}, stats.confidence)
        vs_base = {v: paired_delta(robust["base"], robust[v], True, stats.bootstrap_samples, stats.confidence,
                                   params.seed) for v in entries if v != "base"}
        _holm(vs_base, stats.confidence)
        for variant, entry in entries.items():
            entry["robust_test"] = vs_base.get(variant, {})
        out[model] = entries
    return out


def pct(x: float | None) -> str:
    """A rate as a percentage with one decimal (``–`` for none): every table of the report."""
    return "–" if x is None else f"{100 * x:.1f}"


def _change(test: dict | None, mark: str) -> str:
    if not test or test.get("delta") is None:
        return ""
    return f" ({100 * test['delta']:+.1f}{mark if test.get('significant') else ''})"


def tamper_markdown(params, summary: dict[str, dict[str, dict]], significant_mark: str) -> list[str]:
    """Markdown lines: variants x tamper attacks (ASR, and over-safety / utility where they were scored)."""
    if not summary:
        return []
    names = params.tamper.names
    level = params.statistics.confidence
    first = next(iter(next(iter(summary.values())).values()))
    scope = ("the attack seed behaviours" if first["prompts"] == "seed" else "every plain harmful prompt")
    has_over = params.tamper.oversafety
    has_utility = params.tamper.utility
    head = (["model", "variant", "knowledge-level ASR % (prompt attacks)", "robust knowledge-level ASR %"]
            + [f"ASR % after {n}" for n in names]
            + ([f"over-safety % after {n}" for n in names] if has_over else [])
            + ([f"utility acc % after {n}" for n in names] if has_utility else []))
    lines = ["", "## Model-level attacks: removed, or only hidden?", "",
             f"Each tamper attack edits the weights of the base and of every variant (docs/catalogue/tamper.md); the "
             f"attacked copy answers {scope} ({first['n']['harmful']} prompts)"
             + (f" and the {first['n']['oversafety']} over-safety prompts" if has_over else "")
             + (f"; its utility is scored on a fixed sample of {params.tamper.utility_per_task} items per task "
                "(stratified by category, seeded: the same items for every attacked copy, and the change is vs the "
                "checkpoint on those items)" if has_utility and params.tamper.utility_per_task else "")
             + f". (±x): change vs the same checkpoint before the attack, on the same prompts; `{BEFORE_MARK}` = "
             f"significant at {1 - level:.0%} (paired exact McNemar, Holm-corrected across the variants). Robust "
             "knowledge-level ASR counts a seed behaviour as broken if the plain prompt, any prompt attack or any "
             f"tamper attack breaks it; its (±x) is the change vs base (`{significant_mark}`: paired McNemar, Holm). "
             "A rise after relearning or ablation means the unlearned behaviour was suppressed, not removed.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, entries in summary.items():
        for variant, e in entries.items():
            cells = [model, variant, pct(e["knowledge_asr"]),
                     pct(e["robust_knowledge_asr"]) + _change(e["robust_test"], significant_mark)]
            cells += [pct(e["asr"].get(n)) + _change(e["tests"].get(n, {}).get("asr"), BEFORE_MARK) for n in names]
            if has_over:
                cells += [pct(e["oversafety"].get(n)) + _change(e["tests"].get(n, {}).get("oversafety"),
                                                                  BEFORE_MARK) for n in names]
            if has_utility:
                cells += [pct(e["utility"].get(n)) + _change(e["tests"].get(n, {}).get("utility"), BEFORE_MARK)
                          for n in names]
            lines.append("| " + " | ".join(cells) + " |")
    return lines
