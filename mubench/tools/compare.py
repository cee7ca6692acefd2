"""``mubench compare OTHER``: a replication report where bits cannot match (another CPU family, any GPU).

Two runs of the same params (this workspace and ``OTHER``, another checkout; for a DVC revision, check it out in
a git worktree first) are compared per model, variant and metric:
- a rate: both values, the difference, how many prompts' verdicts changed between the runs and the exact
  McNemar p of those discordant pairs; within tolerance when the changed verdicts are at most ``max_flips`` of
  the prompts and the paired test is not significant at ``alpha``;
- a continuous value (drift KL and NLL): within ``rtol`` relative difference (``atol`` near zero);
- each run's own numbers must follow from its own per-sample files (``mubench verify``'s recomputation): an
  edited sample or metric fails here, naming the file and key;
- the per-sample responses that changed are listed (they may differ within tolerance: greedy decoding follows
  the rounding of the hardware).
Exit 0 when every difference is within tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from mubench.core.config import Params
from mubench.core.io import read_jsonl
from mubench.core.workspace import Workspace
from mubench.scoring.rates import VANILLA


@dataclass
class Tolerance:
    max_flips: float = 0.05  # share of a rate's prompts whose verdict may change
    alpha: float = 0.05      # McNemar level below which a change of a rate is significant
    rtol: float = 0.01       # continuous values: relative difference
    atol: float = 1e-6       # ... and absolute, for values near 0 (the base's drift)


@dataclass
class Row:
    model: str
    variant: str
    metric: str
    mine: float | None
    other: float | None
    changed: int | None = None   # verdicts that changed (rates)
    n: int | None = None
    p: float | None = None
    ok: bool = True

    @property
    def diff(self) -> float | None:
        return None if self.mine is None or self.other is None else round(self.mine - self.other, 6)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    responses: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.rows)


def _outcomes(samples: Path) -> dict[str, dict[str, bool | None]]:
    """{metric: {item key: outcome}} of the rates: success per (attack, id), refusal per benign prompt."""
    safety = read_jsonl(samples / "safety.jsonl")
    over = read_jsonl(samples / "oversafety.jsonl")
    utility = read_jsonl(samples / "utility.jsonl")
    out: dict[str, dict[str, bool | None]] = {}
    for r in safety:
        metric = "asr" if r["attack"] == VANILLA else f"attack/{r['attack']}"
        out.setdefault(metric, {})[r["id"]] = None if r["refused"] is None else not r["refused"]
    out["oversafety"] = {r["id"]: r["refused"] for r in over}
    for r in utility:
        out.setdefault(f"utility/{r['task']}", {})[str(r["id"])] = bool(r["correct"])
    return out


def _responses(samples: Path) -> dict[tuple[str, str], str]:
    rows = read_jsonl(samples / "safety.jsonl") + [{**r, "attack": "over-safety"}
                                                   for r in read_jsonl(samples / "oversafety.jsonl")]
    return {(r["attack"], r["id"]): r["response"] for r in rows}


def _rate(outcomes: dict[str, bool | None]) -> float | None:
    read = [v for v in outcomes.values() if v is not None]
    return round(sum(read) / len(read), 6) if read else None


def compare_runs(params: Params, mine: Workspace, other: Workspace, tol: Tolerance = Tolerance()) -> Report:
    from mubench.core.artifacts import read_metrics
    from mubench.stats.paired import mcnemar_exact
    from mubench.tools.recompute import Mismatch, check_metrics

    report = Report()
    for model in params.models:
        for variant in params.variants():
            metrics = {}
            for side, ws in (("mine", mine), ("other", other)):
                path = ws.result(model, variant) / "metrics.json"
                if not path.is_file():
                    report.problems.append(f"{path}: missing")
                    continue
                metrics[side] = read_metrics(path)
                try:
                    check_metrics(params, ws, model, variant, metrics[side])
                except (Mismatch, FileNotFoundError) as exc:
                    report.problems.append(str(exc))
            if len(metrics) < 2:
                continue
            a, b = _outcomes(mine.samples(model, variant)), _outcomes(other.samples(model, variant))
            for metric in sorted(set(a) | set(b)):
                keys = sorted(set(a.get(metric, {})) & set(b.get(metric, {})))
                if set(a.get(metric, {})) != set(b.get(metric, {})):
                    report.problems.append(f"{model}/{variant} {metric}: the runs scored different items; compare "
                                           "runs of the same params")
                    continue
                pairs = [(a[metric][k], b[metric][k]) for k in keys
                         if a[metric][k] is not None and b[metric][k] is not None]
                changed = sum(x != y for x, y in pairs)
                p = mcnemar_exact([y for _, y in pairs], [x for x, _ in pairs]) if changed else 1.0
                ok = changed <= tol.max_flips * max(1, len(pairs)) and p >= tol.alpha
                report.rows.append(Row(model, variant, metric, _rate(a[metric]), _rate(b[metric]), changed,
                                       len(pairs), round(p, 6), ok))
            for metric in ("kl", "nll"):
                x, y = metrics["mine"]["drift"][metric], metrics["other"]["drift"][metric]
                ok = x is None and y is None or (x is not None and y is not None
                                                 and math.isclose(x, y, rel_tol=tol.rtol, abs_tol=tol.atol))
                report.rows.append(Row(model, variant, f"drift_{metric}", x, y, ok=ok))
            ra, rb = _responses(mine.samples(model, variant)), _responses(other.samples(model, variant))
            report.responses += [{"model": model, "variant": variant, "set": key[0], "id": key[1],
                                  "mine": ra[key], "other": rb[key]}
                                 for key in sorted(set(ra) & set(rb)) if ra[key] != rb[key]]
    return report


def as_json(report: Report, tol: Tolerance) -> str:
    import json
    from dataclasses import asdict

    return json.dumps({"tolerance": asdict(tol), "ok": report.ok, "rows": [asdict(r) for r in report.rows],
                       "responses": report.responses, "problems": report.problems}, indent=1)


def render(report: Report, tol: Tolerance, limit: int = 20) -> str:
    lines = [f"tolerance: rates within {tol.max_flips:.0%} changed verdicts and McNemar p >= {tol.alpha}; "
             f"continuous values within rtol {tol.rtol} (atol {tol.atol})", "",
             "| model | variant | metric | this run | other | diff | verdicts changed | McNemar p | within |",
             "|---|---|---|---|---|---|---|---|---|"]

    def fmt(x):
        return "–" if x is None else f"{x:.6g}"

    shown = [r for r in report.rows if not r.ok or r.changed or (r.diff not in (None, 0.0))]
    for r in shown:
        flips = "" if r.changed is None else f"{r.changed}/{r.n}"
        lines.append(f"| {r.model} | {r.variant} | {r.metric} | {fmt(r.mine)} | {fmt(r.other)} | {fmt(r.diff)} | "
                     f"{flips} | {fmt(r.p) if r.changed else ''} | {'yes' if r.ok else 'NO'} |")
    same = len(report.rows) - len(shown)
    lines.append(f"\n{same} of {len(report.rows)} metrics identical (not listed).")
    lines.append(f"{len(report.responses)} per-sample response(s) differ"
                 + (":" if report.responses else "."))
    for item in report.responses[:limit]:
        lines.append(f"  {item['model']}/{item['variant']} {item['set']} {item['id']}: {item['mine'][:60]!r} vs "
                     f"{item['other'][:60]!r}")
    if len(report.responses) > limit:
        lines.append(f"  ... and {len(report.responses) - limit} more (--json for all)")
    for problem in report.problems:
        lines.append(f"problem: {problem}")
    return "\n".join(lines)
