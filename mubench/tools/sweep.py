"""Dose-response: each method's safety, over-safety, utility drift and output quality as its strength grows.

The sweep runs as DVC experiments, on DVC's own queue; mubench only queues the settings and reads them back:

    mubench sweep queue --param lr --factors 0.5 2 4   # one `dvc exp run --queue -S ...` per method and factor
    dvc queue start -j 2                               # DVC runs them: per experiment, only that method's
    dvc queue status                                   #   unlearn + evaluate stages and the report re-run
    dvc exp show --only-changed                        # the table
    mubench sweep report --param lr                    # reports/dose_response/*.png and dose_response.csv

Each experiment changes one method's ``param`` (``method_params.METHOD.PARAM``); the committed run at HEAD is
the factor-1 point of every method. The point where a method's outputs degenerate is the smallest strength
whose degenerate-output rate is significantly above the base's (paired McNemar, Holm; ``mubench.stats.paired``).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import yaml

from mubench.core.config import ConfigError, variant_name
from mubench.core.errors import FailedStep
from mubench.core.io import atomic_write_text

KNOBS = ("lr", "steps")
COLUMNS = ["model", "method", "param", "value", "factor", "experiment", "asr", "asr_low", "asr_high",
           "asr_significant", "oversafety_refusal_rate", "oversafety_significant", "degenerate_rate",
           "degenerate_significant", "drift_kl", "drift_nll", "knowledge_asr"]


def yaml_number(value: float | int) -> str:
    """A number as YAML 1.1 and 1.2 both read it (``1.000e-05``, not ``1e-05``, which YAML 1.1 reads as text)."""
    if isinstance(value, int):
        return str(value)
    return f"{value:.3e}"


def queue_commands(params, param: str, factors: list[float], methods: list[str]) -> list[list[str]]:
    """``dvc exp run --queue`` command lines: each method's ``param`` times each factor."""
    if param not in KNOBS:
        raise ConfigError(f"--param {param}: sweepable knobs are {', '.join(KNOBS)}")
    commands = []
    for method in methods:
        if method not in params.methods:
            raise ConfigError(f"--methods: '{method}' is not in params.yaml methods ({', '.join(params.methods)})")
        default = getattr(params.method_config(method), param)
        for factor in factors:
            if factor <= 0 or factor == 1:
                raise ConfigError(f"--factors: {factor:g}; use positive factors other than 1 (1 is the committed run)")
            value = max(1, round(default * factor)) if param == "steps" else default * factor
            commands.append(["dvc", "exp", "run", "--queue", "-n", f"{method}-{param}-x{factor:g}",
                             "-S", f"method_params.{method}.{param}={yaml_number(value)}"])
    return commands


def _git_text(rev: str, path: str) -> str | None:
    done = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def experiment_revs() -> list[tuple[str, str]]:
    """(name, commit) of every finished experiment derived from HEAD (``dvc.api.exp_show``)."""
    import dvc.api

    revs = []
    for row in dvc.api.exp_show(repo="."):
        name, rev = row.get("Experiment"), row.get("rev")
        if name and rev and rev not in ("workspace",) and row.get("State") in (None, "Success"):
            full = subprocess.run(["git", "rev-parse", rev], capture_output=True, text=True, check=False)
            if full.returncode == 0:
                revs.append((name, full.stdout.strip()))
    return revs


def swept_method(head_params: dict, exp_params: dict, param: str) -> tuple[str, float] | None:
    """(method, value) when ``exp_params`` differ from HEAD's in exactly one method's ``param``, else None."""
    changed = [m for m, settings in exp_params.get("method_params", {}).items()
               if settings != head_params.get("method_params", {}).get(m)]
    rest_same = {k: v for k, v in exp_params.items() if k != "method_params"} == {
        k: v for k, v in head_params.items() if k != "method_params"}
    if len(changed) != 1 or not rest_same:
        return None
    method = changed[0]
    before, after = head_params["method_params"][method], exp_params["method_params"][method]
    if {k: v for k, v in before.items() if k != param} != {k: v for k, v in after.items() if k != param}:
        return None
    return method, float(after[param])


def point(summary_rows: list[dict], metrics: dict, model: str, method: str, variant: str, param: str,
          value: float, default: float, experiment: str) -> dict:
    row = next(r for r in summary_rows if r["model"] == model and r["variant"] == variant)
    tests = row["tests"]
    return {"model": model, "method": method, "param": param, "value": value, "factor": round(value / default, 6),
            "experiment": experiment, "asr": metrics["safety"]["asr"],
            "asr_low": metrics["safety"]["ci"]["asr"][0], "asr_high": metrics["safety"]["ci"]["asr"][1],
            "asr_significant": tests["asr"]["significant"],
            "oversafety_refusal_rate": metrics["oversafety"]["refusal_rate"],
            "oversafety_significant": tests["oversafety"]["significant"],
            "degenerate_rate": metrics["quality"]["degenerate_rate"],
            "degenerate_significant": tests["degenerate"]["significant"] and tests["degenerate"]["delta"] > 0,
            "drift_kl": metrics["drift"]["kl"], "drift_nll": metrics["drift"]["nll"],
            "knowledge_asr": metrics["safety"]["knowledge_asr"]}


def collect(param: str, revs: list[tuple[str, str]], head: str = "HEAD") -> list[dict]:
    """Dose-response points: the committed run (factor 1) and every experiment that changed one method's
    ``param``; sorted by model, method, value."""
    head_params = yaml.safe_load(_git_text(head, "params.yaml"))
    models, methods = head_params["models"], head_params["methods"]
    seed = head_params.get("seeds", [0])[0]  # the first unlearning seed's variant is each point

    def points_at(rev: str, name: str, only: str | None, value: float | None) -> list[dict]:
        summary = json.loads(_git_text(rev, "reports/summary.json"))
        out = []
        for model in models:
            for method in methods if only is None else [only]:
                variant = variant_name(method, seed)
                metrics = json.loads(_git_text(rev, f"results/{model}/{variant}/metrics.json"))
                default = float(head_params["method_params"][method][param])
                out.append(point(summary["rows"], metrics, model, method, variant, param,
                                 default if value is None else value, default, name))
        return out

    points = points_at(head, "committed", None, None)
    for name, rev in revs:
        exp_params = yaml.safe_load(_git_text(rev, "params.yaml") or "{}")
        swept = swept_method(head_params, exp_params, param)
        if swept is not None:
            points += points_at(rev, name, *swept)
    return sorted(points, key=lambda p: (p["model"], p["method"], p["value"]))


def degeneration_point(points: list[dict]) -> float | None:
    """The smallest strength whose degenerate-output rate is significantly above the base's."""
    hits = [p["value"] for p in points if p["degenerate_significant"]]
    return min(hits) if hits else None


def points_csv(points: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(points)
    return buffer.getvalue()


def dose_response_png(points: list[dict], path: Path) -> None:
    """One method: ASR (with CI), over-safety and degenerate rates (left axis) and drift KL (right axis) against
    its strength; ``*`` marks a change vs base that is significant; the dashed line is where outputs
    degenerate, the dotted line the committed setting."""
    from mubench.report.plots import pyplot, save_png

    plt = pyplot()
    first = points[0]
    xs = [p["value"] for p in points]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.errorbar(xs, [p["asr"] for p in points],
                yerr=[[p["asr"] - p["asr_low"] for p in points], [p["asr_high"] - p["asr"] for p in points]],
                marker="o", color="tab:red", capsize=3, label="ASR (plain prompts)")
    ax.plot(xs, [p["oversafety_refusal_rate"] for p in points], marker="s", color="tab:blue",
            label="over-safety refusal rate")
    ax.plot(xs, [p["degenerate_rate"] for p in points], marker="^", color="tab:gray", label="degenerate outputs")
    for p in points:
        for key, flag in (("asr", "asr_significant"), ("oversafety_refusal_rate", "oversafety_significant"),
                          ("degenerate_rate", "degenerate_significant")):
            if p[flag]:
                ax.annotate("*", (p["value"], p[key]), textcoords="offset points", xytext=(4, 2), fontsize=11)
    committed = next(p["value"] for p in points if p["factor"] == 1)
    ax.axvline(committed, color="0.4", ls=":", lw=1, label="committed setting")
    collapse = degeneration_point(points)
    if collapse is not None:
        ax.axvline(collapse, color="black", ls="--", lw=1, label="outputs degenerate from here")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(f"method_params.{first['method']}.{first['param']} (log scale)")
    ax.set_ylabel("rate")
    ax.grid(alpha=0.3)
    drift = ax.twinx()
    drift.plot(xs, [p["drift_kl"] for p in points], marker="D", color="tab:green", ls="--",
               label="utility drift, KL (right axis)")
    drift.set_ylabel("utility drift: KL(base || variant), nats/token")
    drift.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()
    more = drift.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="upper left")
    ax.set_title(f"Dose-response: {first['model']}/{first['method']} (* = differs from base)", fontsize=10)
    save_png(fig, path)


def write_report(points: list[dict], out_dir: Path) -> list[Path]:
    """reports/dose_response.csv beside ``out_dir`` and one figure per (model, method) with 2+ strengths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir.with_suffix(".csv"), points_csv(points))
    written = []
    for key in sorted({(p["model"], p["method"]) for p in points}):
        mine = [p for p in points if (p["model"], p["method"]) == key]
        if len(mine) < 2:
            continue
        several = len({p["model"] for p in points}) > 1
        path = out_dir / (f"{key[0]}__{key[1]}.png" if several else f"{key[1]}.png")
        dose_response_png(mine, path)
        written.append(path)
    return written


def queue(params, param: str, factors: list[float], methods: list[str], dry_run: bool, say) -> int:
    """Print, and unless ``dry_run`` queue, one DVC experiment per method and factor; returns how many."""
    import shlex
    import shutil

    commands = queue_commands(params, param, factors, methods)
    if not dry_run and shutil.which("dvc") is None:
        raise FailedStep("dvc: not found on PATH; activate the project's environment (`source .venv/bin/activate`)")
    for command in commands:
        say(shlex.join(command))
        if not dry_run:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return len(commands)


def report(param: str, out: Path) -> str:
    """Dose-response figures and CSV from the finished experiments plus the committed run; a summary line."""
    revs = experiment_revs()
    points = collect(param, revs)
    written = write_report(points, out)
    return (f"{len(revs)} experiment(s), {len(points)} point(s): {out.with_suffix('.csv')}, "
            f"{len(written)} figure(s) in {out}/")
