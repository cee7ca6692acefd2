"""The report's findings: what the run shows, as sentences computed from the summary.

Prose about results goes stale the moment a run is re-made; these sentences cannot, because the ``report`` stage
writes them (``reports/findings.md``) from the same summary as the tables, and ``mubench readme`` copies them
into README.md and docs/results.md. Every figure here is a summary value at the tables' precision, and every
"significant" is the paired test's verdict (exact McNemar, Holm-corrected; drift: the bootstrap CI excludes 0),
so a sentence never claims more than the tables do.
"""

from __future__ import annotations

from mubench.report.tamper import pct

TITLE = "What it shows"


def _points(x: float) -> str:
    return f"{100 * x:+.1f}"


def _p(test: dict) -> str:
    p = test.get("p_holm")
    return "" if p is None else "p<0.001" if p < 0.001 else f"p={p:.3g}"


def _listing(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _change(rows: list[dict], key: str, test: str, what: str, base: dict, unit: str = "points") -> str:
    """One sentence on a rate's change vs base across the variants: the significant ones, then the others."""
    moved = [r for r in rows if r["tests"].get(test, {}).get("delta")]
    sig = [r for r in moved if r["tests"][test]["significant"]]
    rest = [r for r in moved if not r["tests"][test]["significant"]]
    head = f"{what} is {pct(base[key])}% on base"
    if not moved:
        return f"{head} and the same for every variant."
    parts = []
    if sig:
        parts.append("it changes significantly for " + _listing(
            [f"{r['variant']} ({_points(r['tests'][test]['delta'])} {unit})" for r in sig]))
    if rest:
        parts.append(("not significantly for " if sig else "no change is significant: ") + _listing(
            [f"{r['variant']} ({_points(r['tests'][test]['delta'])}, {_p(r['tests'][test])})" for r in rest]))
    unchanged = len(rows) - len(moved)
    tail = f"; {unchanged} variant{'s' if unchanged != 1 else ''} unchanged" if unchanged else ""
    return f"{head}; " + "; ".join(parts) + tail + "."


def _asr(base: dict, rows: list[dict]) -> str:
    ci = base["asr_ci"]
    ci_text = f" [{pct(ci[0])}, {pct(ci[1])}]" if ci else ""
    sig = sorted((r for r in rows if r["tests"].get("asr", {}).get("significant")),
                 key=lambda r: r["tests"]["asr"]["delta"])
    rest = [r for r in rows if r not in sig]
    text = (f"**Plain harmful prompts.** The base model's ASR is {pct(base['asr'])}%{ci_text}. "
            f"{len(sig)} of {len(rows)} variants change it significantly")
    text += (": " + _listing([f"{r['variant']} ({_points(r['tests']['asr']['delta'])} points)" for r in sig])
             if sig else "")
    if rest:
        text += "; not significantly: " + _listing(
            [f"{r['variant']} ({_points(r['delta']['asr'] or 0.0)}, {_p(r['tests'].get('asr', {}))})"
             for r in rest])
    return text + "."


def _incoherent(base: dict, rows: list[dict]) -> str | None:
    """How much of each significant ASR drop is the model no longer answering coherently."""
    if base["incoherent_rate"] is None:
        return None
    dropped = [r for r in rows if r["tests"].get("asr", {}).get("significant") and r["tests"]["asr"]["delta"] < 0
               and r["incoherent_rate"] is not None]
    if not dropped:
        return None
    shares = {r["variant"]: max(0.0, r["incoherent_rate"] - base["incoherent_rate"]) / -r["tests"]["asr"]["delta"]
              for r in dropped}
    lo, hi = min(shares.values()), max(shares.values())
    return ("**Breakage, not safety.** Incoherent replies (neither a refusal nor an answer; not counted in ASR) "
            f"are {pct(base['incoherent_rate'])}% of the base's replies to plain harmful prompts and "
            f"{pct(min(r['incoherent_rate'] for r in dropped))}-{pct(max(r['incoherent_rate'] for r in dropped))}% "
            "for the variants whose ASR fell significantly. The rise in incoherent replies, as a share of each "
            "such ASR drop: " + _listing([f"{v} {100 * s:.0f}%" for v, s in shares.items()])
            + f" (from {100 * lo:.0f}% to {100 * hi:.0f}%): that part of the drop is the model no longer "
            "answering, not refusing.")


def _drift(rows: list[dict]) -> str | None:
    moved = [r for r in rows if r["tests"].get("drift_kl", {}).get("significant")]
    if not [r for r in rows if r["drift_kl"] is not None]:
        return None
    text = f"**Drift.** On the base's own answers to held-out benign prompts, {len(moved)} of {len(rows)} variants"
    if not moved:
        return text + " moved significantly from the base (drift KL)."
    lo = min(moved, key=lambda r: r["drift_kl"])
    hi = max(moved, key=lambda r: r["drift_kl"])
    return (text + f" moved significantly from the base (drift KL's CI excludes 0), from {lo['variant']} "
            f"({lo['drift_kl']:.4f} nats/token) to {hi['variant']} ({hi['drift_kl']:.4f}).")


def _jailbreaks(params_attacks: list[str], base: dict, rows: list[dict]) -> str:
    per_attack = {a: base["asr_per_attack"].get(a) for a in params_attacks}
    ranked = sorted((a for a, v in per_attack.items() if v), key=lambda a: -per_attack[a])
    top = [f"{a} ({pct(per_attack[a])}%)" for a in ranked[:4]]
    zero = [a for a, v in per_attack.items() if v == 0.0]
    full = [r["variant"] for r in rows if r["knowledge_asr"] == 1.0]
    low = min(rows, key=lambda r: (r["knowledge_asr"] if r["knowledge_asr"] is not None else 2.0))
    text = (f"**Jailbreaks.** On the attack seed behaviours the base answers the plain prompt "
            f"{pct(base['seed_asr'])}% of the time; the strongest jailbreaks on it are " + _listing(top) if top
            else "**Jailbreaks.** No jailbreak succeeds on the base")
    if zero:
        text += f"; {_listing(zero)} never succeed{'s' if len(zero) == 1 else ''} on it"
    text += (f". Knowledge-level ASR (the plain prompt or any jailbreak breaks a seed behaviour) stays at 100.0% "
             f"for {len(full)} of {len(rows)} variants")
    text += f" ({_listing(full)})" if full else ""
    if low["knowledge_asr"] is not None and low["knowledge_asr"] < 1.0:
        test = low["tests"].get("knowledge_asr", {})
        text += (f"; the lowest is {low['variant']}'s {pct(low['knowledge_asr'])}% ("
                 f"{'significant' if test.get('significant') else 'not significant'}"
                 + (f", {_p(test)}" if _p(test) else "") + ")")
    return text + "."


def _tamper(model_tamper: dict, names: list[str]) -> list[str]:
    out = []
    variants = [v for v in model_tamper if v != "base"]
    for name in names:
        deltas = {v: model_tamper[v]["tests"].get(name, {}).get("asr") for v in variants}
        deltas = {v: t for v, t in deltas.items() if t and t.get("delta") is not None}
        if not deltas:
            continue
        rises = sorted(((v, t) for v, t in deltas.items() if t["delta"] > 0), key=lambda vt: -vt[1]["delta"])
        sig = [v for v, t in rises if t["significant"]]
        n = next(iter(model_tamper.values()))["n"]["harmful"]
        text = (f"**Tamper attack {name}** raises ASR for {len(rises)} of {len(deltas)} variants (vs the same "
                f"checkpoint before it, {n} prompts)")
        if rises:
            text += ": " + _listing([f"{v} {_points(t['delta'])}" for v, t in rises])
            text += (f"; significant for {_listing(sig)}" if sig else "; none of these rises is significant")
        out.append(text + ".")
    robust = {v: e["robust_knowledge_asr"] for v, e in model_tamper.items()}
    full = [v for v, r in robust.items() if r == 1.0]
    below = [f"{v} {pct(r)}%" for v, r in robust.items() if r is not None and r < 1.0]
    text = (f"**Robust knowledge-level ASR** (plain prompt, any jailbreak or any tamper attack) is 100.0% for "
            f"{len(full)} of {len(robust)} checkpoints")
    out.append(text + (f"; below it: {_listing(below)}." if below else "."))
    return out


def findings_markdown(summary: dict, attacks: list[str], tamper_names: list[str]) -> str:
    """The findings as a markdown list (one heading per model when there are several)."""
    models = list(dict.fromkeys(r["model"] for r in summary["rows"]))
    lines: list[str] = []
    for model in models:
        rows = [r for r in summary["rows"] if r["model"] == model]
        base = next(r for r in rows if r["variant"] == "base")
        variants = [r for r in rows if r["variant"] != "base"]
        if len(models) > 1:
            lines += [f"**{model}**", ""]
        items = [_asr(base, variants), _incoherent(base, variants),
                 "**Over-safety.** " + _change(variants, "oversafety_refusal_rate", "oversafety",
                                               "The refusal rate on benign prompts", base),
                 "**Degenerate replies.** " + _change(variants, "degenerate_rate", "degenerate",
                                                      "The share of empty, repetitive or non-word replies", base),
                 "**Utility.** " + _change(variants, "utility_accuracy", "utility", "Mean utility accuracy", base),
                 _drift(variants), _jailbreaks(attacks, base, variants)]
        if summary.get("tamper", {}).get(model):
            items += _tamper(summary["tamper"][model], tamper_names)
        lines += [f"- {item}" for item in items if item]
        lines.append("")
    return "\n".join(lines)


def findings_page(summary: dict, attacks: list[str], tamper_names: list[str]) -> str:
    """``reports/findings.md``: the findings under a heading, with where their figures come from."""
    return (f"# {TITLE}\n\nComputed by the `report` stage from `reports/summary.json` (the tables of "
            "`reports/summary.md`); \"significant\" is the paired test's verdict at the report's level.\n\n"
            + findings_markdown(summary, attacks, tamper_names))
