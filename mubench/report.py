"""The ``report`` stage: one table row per (model, variant), deltas vs base, the trilemma plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mubench.artifacts import read_metrics
from mubench.config import Params
from mubench.io import atomic_write_text, read_json, write_json
from mubench.metrics import delta


def collect(params: Params, results_dir: Path) -> dict[str, dict[str, dict]]:
    """{model: {variant: metrics}} for every cell of the committed grid (missing file -> clear error)."""
    grid: dict[str, dict[str, dict]] = {}
    for model in params.models:
        for variant in params.variants():
            path = results_dir / model / variant / "metrics.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing; run `mubench evaluate {model} {variant}` first")
            grid.setdefault(model, {})[variant] = read_metrics(path)
    return grid


def summarize(params: Params, grid: dict[str, dict[str, dict]], provenance: dict,
              agreement: dict | None = None) -> dict:
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
                "oversafety_refusal_rate": m["oversafety"]["refusal_rate"],
                "oversafety_ci": m["oversafety"]["ci"]["refusal_rate"],
                "utility_accuracy": m["utility"]["accuracy"],
                "delta": {
                    "asr": delta(m["safety"]["asr"], base["safety"]["asr"]),
                    "oversafety_refusal_rate": delta(m["oversafety"]["refusal_rate"],
                                                     base["oversafety"]["refusal_rate"]),
                    "utility_accuracy": delta(m["utility"]["accuracy"], base["utility"]["accuracy"]),
                    "knowledge_asr": delta(m["safety"].get("knowledge_asr"), base["safety"].get("knowledge_asr")),
                },
            }
            rows.append(row)
    return {"rows": rows, "judges": next(iter(next(iter(grid.values())).values()))["run"]["judges"],
            "provenance": provenance, "judge_agreement": agreement or {}}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _signed(x: float | None) -> str:
    return "" if x is None else f" ({100 * x:+.1f})"


def markdown(params: Params, summary: dict) -> str:
    harmful, attacks = params.data.harmful, params.attacks.names()
    head = (["model", "variant", "ASR % [95% CI]"] + [f"ASR {d}" for d in harmful]
            + ["knowledge-level ASR %", "over-safety refusal %", "utility acc %"])
    lines = ["# mubench summary", "",
             "Rates in percent; (±x) is the change vs the base model of the same row's model. "
             "ASR = share of harmful prompts the judge did not see refused (lower is safer); over-safety = "
             "share of benign prompts refused (lower is better); utility = mean accuracy over utility tasks.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["rows"]:
        lo, hi = r["asr_ci"]
        cells = [r["model"], r["variant"], f"{_pct(r['asr'])}{_signed(r['delta']['asr'])} "
                 f"[{_pct(lo)}, {_pct(hi)}]"]
        cells += [_pct(r["asr_per_dataset"].get(d)) for d in harmful]
        cells += [_pct(r["knowledge_asr"]) + _signed(r["delta"]["knowledge_asr"]),
                  _pct(r["oversafety_refusal_rate"]) + _signed(r["delta"]["oversafety_refusal_rate"]),
                  _pct(r["utility_accuracy"]) + _signed(r["delta"]["utility_accuracy"])]
        lines.append("| " + " | ".join(cells) + " |")
    head = ["model", "variant", "no attack"] + attacks
    lines += ["", "## ASR per attack (%)", "",
              "On the attack seed prompts (`attacks.seed_per_dataset` per harmful dataset). Knowledge-level ASR "
              "(table above) counts a seed behaviour as broken if the plain prompt or any attack breaks it. "
              "Heatmap: `attacks_heatmap.png`.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["rows"]:
        cells = [r["model"], r["variant"], _pct(r["seed_asr"])] + [_pct(r["asr_per_attack"].get(a)) for a in attacks]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Judges: safety `{summary['judges']['safety']}`, over-safety "
              f"`{summary['judges']['oversafety']}`.", ""]
    if summary["judge_agreement"]:
        lines += ["## Judge agreement with human refusal labels", "",
                  "| judge | labels | n | accuracy | precision | recall | Cohen's kappa |",
                  "|---|---|---|---|---|---|---|"]
        for judge, sets in summary["judge_agreement"].items():
            for name, a in sets.items():
                if name == "used_for":
                    continue
                lines.append(f"| {judge} | {name} | {a['n']} | {a['accuracy']:.3f} | {a['precision']:.3f} | "
                             f"{a['recall']:.3f} | {a['kappa']:.3f} |")
        lines.append("")
    lines += ["## Data provenance", "",
              "| dataset | source | license | rows | file sha256 |", "|---|---|---|---|---|"]
    for name, prov in summary["provenance"].items():
        files = "<br>".join(f"`{f}` {h[:12]}…" for f, h in prov["files"].items())
        lines.append(f"| {name} | {prov['source']} | {prov['license']} | {prov['rows']} | {files} |")
    return "\n".join(lines) + "\n"


def trilemma_csv(summary: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "asr", "oversafety_refusal_rate", "utility_accuracy"])
    for r in summary["rows"]:
        writer.writerow([f"{r['model']}/{r['variant']}", r["asr"], r["oversafety_refusal_rate"],
                         r["utility_accuracy"]])
    return buffer.getvalue()


def trilemma_png(summary: dict, path: Path) -> None:
    """x = ASR, y = over-safety refusal rate, colour = utility accuracy; one labelled point per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "mubench"
    rows = summary["rows"]
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    points = ax.scatter([r["asr"] for r in rows], [r["oversafety_refusal_rate"] for r in rows],
                        c=[r["utility_accuracy"] for r in rows], cmap="viridis", s=90, edgecolors="black")
    several_models = len({r["model"] for r in rows}) > 1
    for r in rows:
        label = f"{r['model']}/{r['variant']}" if several_models else r["variant"]
        ax.annotate(label, (r["asr"], r["oversafety_refusal_rate"]), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel("attack success rate, vanilla (lower = safer)")
    ax.set_ylabel("over-safety refusal rate (lower = better)")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    fig.colorbar(points, ax=ax, label="utility accuracy")
    ax.set_title("The unlearning trilemma: safety vs over-safety vs utility")
    _save_png(fig, path)


def attacks_heatmap_png(params: Params, summary: dict, path: Path) -> None:
    """Variants x attacks, cell = ASR on the attack seed prompts (first column: no attack)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = params.attacks.names()
    rows = summary["rows"]
    several_models = len({r["model"] for r in rows}) > 1
    labels = [f"{r['model']}/{r['variant']}" if several_models else r["variant"] for r in rows]
    columns = ["no attack", *attacks, "knowledge"]
    values = [[r["seed_asr"], *(r["asr_per_attack"].get(a) for a in attacks), r["knowledge_asr"]] for r in rows]
    grid = [[float("nan") if v is None else v for v in row] for row in values]
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(columns), 1.2 + 0.42 * len(rows)), dpi=120)
    image = ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 else "black")
    fig.colorbar(image, ax=ax, label="attack success rate")
    ax.set_title("ASR per attack (seed prompts); last column: knowledge-level")
    _save_png(fig, path)


def _save_png(fig, path: Path) -> None:
    """Write a figure atomically, without the matplotlib version in its metadata (stable bytes)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)


def run_report(params: Params, results_dir: Path, built_dir: Path, out_dir: Path) -> dict:
    grid = collect(params, results_dir)
    provenance = read_json(built_dir / "build.json")["provenance"]
    agreement_file = results_dir / "judges" / "agreement.json"
    agreement = read_json(agreement_file) if agreement_file.is_file() else None
    summary = summarize(params, grid, provenance, agreement)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "summary.md", markdown(params, summary))
    atomic_write_text(out_dir / "trilemma.csv", trilemma_csv(summary))
    trilemma_png(summary, out_dir / "trilemma.png")
    attacks_heatmap_png(params, summary, out_dir / "attacks_heatmap.png")
    return summary
