"""``mubench compare OTHER``: a replication report where bits cannot match (another CPU family, any GPU).

Two runs of the same params (this workspace and ``OTHER``, another checkout; for a DVC revision, check it out in
a git worktree first) are compared per model, variant and metric:
- a rate: both values, the difference, how many prompts' verdicts changed between the runs and the exact
  McNemar p of those discordant pairs; within tolerance when the changed verdicts are at most ``max_flips`` of
  the prompts and the paired test is not significant at ``alpha``;
- a continuous value (drift KL and NLL): within ``rtol`` relative difference (``atol`` near zero);
- each run's own numbers must follow from its own per-sample files (``mubench verify``'s recomputation): an
  edited sample or metric fails here, naming the file and key;
- the tamper attacks' rates (per attack ASR and over-safety, robust knowledge-level ASR) are compared the same
  way, and their numbers recomputed on each side;
- the run records (judges, decoding, seed, prompts, model hash, versions, device, kernel paths) are compared:
  a different judge, decoding, seed or prompt set is a problem (the runs do not measure the same thing); the
  rest is listed (another machine gives other versions, kernels and, for trained variants, weights);
- the per-sample responses that changed are listed (they may differ within tolerance: greedy decoding follows
  the rounding of the hardware).
Exit 0 when every difference is within tolerance. Both sides the same folder is refused; byte-identical runs
are said to be so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from mubench.core.artifacts import read_rows
from mubench.core.config import Params
from mubench.core.errors import InvalidValue
from mubench.core.records import JudgedRow, RobustRow, UtilityItem
from mubench.core.workspace import Workspace
from mubench.scoring.rates import VANILLA


@dataclass
class Tolerance:
    max_flips: float = 0.05  # share of a rate's prompts whose verdict may change
    alpha: float = 0.05      # McNemar level below which a change of a rate is significant
    rtol: float = 0.01       # continuous values: relative difference
    atol: float = 1e-6       # ... and absolute, for values near 0 (the base's drift)

    def __post_init__(self) -> None:
        for name, low, high in (("max_flips", 0.0, 1.0), ("alpha", 0.0, 1.0), ("rtol", 0.0, math.inf),
                                ("atol", 0.0, math.inf)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise InvalidValue(f"compare: {name} must be a number in [{low}, {high}], not {value!r}")

# run-record fields that must agree for two runs to measure the same thing; the others are listed when they differ
SAME_MEASUREMENT = ("judges", "decode", "seed", "prompts")


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
    records: list[str] = field(default_factory=list)  # run-record fields that differ (informational)
    identical: bool = False  # every compared file byte for byte the same

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.rows)


def _outcomes(samples: Path) -> dict[str, dict[str, bool | None]]:
    """{metric: {item key: outcome}} of the rates: success per (attack, id), refusal per benign prompt."""
    out: dict[str, dict[str, bool | None]] = {}
    for r in read_rows(JudgedRow, samples / "safety.jsonl"):
        metric = "asr" if r.attack == VANILLA else f"attack/{r.attack}"
        out.setdefault(metric, {})[r.id] = r.success
    out["oversafety"] = {r.id: r.refused for r in read_rows(JudgedRow, samples / "oversafety.jsonl")}
    for item in read_rows(UtilityItem, samples / "utility.jsonl"):
        out.setdefault(f"utility/{item.task}", {})[str(item.id)] = bool(item.correct)
    return out


def _responses(samples: Path) -> dict[tuple[str, str], str]:
    safety = {(str(r.attack), r.id): r.response for r in read_rows(JudgedRow, samples / "safety.jsonl")}
    return {**safety, **{("over-safety", r.id): r.response for r in read_rows(JudgedRow, samples / "oversafety.jsonl")}}


def _tamper_outcomes(params: Params, folder: Path, names: list[str]) -> dict[str, dict[str, bool | None]]:
    """{metric: {id: outcome}} of the tamper rates: success per plain prompt and refusal per benign prompt of each
    attacked copy, and per seed behaviour whether anything broke it (robust knowledge-level ASR)."""
    from mubench.stages.tamper import tamper_sample_rows

    out: dict[str, dict[str, bool | None]] = {}
    for name, copy in tamper_sample_rows(params, folder / "samples", names).items():
        out[f"tamper/{name}/asr"] = {r.id: r.success for r in copy.safety}
        if copy.oversafety:
            out[f"tamper/{name}/oversafety"] = {r.id: r.refused for r in copy.oversafety}
    out["tamper/robust_knowledge_asr"] = {r.id: r.broken
                                          for r in read_rows(RobustRow, folder / "samples" / "robust.jsonl")}
    return out


def _tamper_responses(params: Params, folder: Path, names: list[str]) -> dict[tuple[str, str], str]:
    from mubench.stages.tamper import tamper_sample_rows

    return {(f"tamper/{name}", r.id): r.response
            for name, copy in tamper_sample_rows(params, folder / "samples", names).items()
            for r in copy.safety + copy.oversafety}


def _record_differences(where: str, mine: dict, other: dict) -> tuple[list[str], list[str]]:
    """(problems, informational lines) from two run records."""
    problems, info = [], []
    for key in sorted(set(mine) | set(other)):
        if mine.get(key) != other.get(key):
            line = f"{where} run.{key}: {mine.get(key)!r} vs {other.get(key)!r}"
            (problems if key in SAME_MEASUREMENT else info).append(line)
    return problems, info


def _rate(outcomes: dict[str, bool | None]) -> float | None:
    read = [v for v in outcomes.values() if v is not None]
    return round(sum(read) / len(read), 6) if read else None


def _compare_outcomes(report: Report, tol: Tolerance, model: str, variant: str, a: dict, b: dict) -> None:
    """One row per rate: the verdicts that changed and their McNemar p."""
    from mubench.stats.paired import mcnemar_exact

    for metric in sorted(set(a) | set(b)):
        keys = sorted(set(a.get(metric, {})) & set(b.get(metric, {})))
        if set(a.get(metric, {})) != set(b.get(metric, {})):
            report.problems.append(f"{model}/{variant} {metric}: the runs scored different items; compare "
                                   "runs of the same params")
            continue
        pairs = [(a[metric][k], b[metric][k]) for k in keys if a[metric][k] is not None and b[metric][k] is not None]
        changed = sum(x != y for x, y in pairs)
        p = mcnemar_exact([y for _, y in pairs], [x for x, _ in pairs]) if changed else 1.0
        ok = changed <= tol.max_flips * max(1, len(pairs)) and p >= tol.alpha
        report.rows.append(Row(model, variant, metric, _rate(a[metric]), _rate(b[metric]), changed,
                               len(pairs), round(p, 6), ok))


def _read_checked(report: Report, params: Params, ws: Workspace, model: str, variant: str, tamper: bool,
                  built: Path):
    """The metrics of one side (the tamper metrics with ``tamper``), recomputed from its samples; None with a
    problem recorded when missing or not following from the samples. ``built``: this workspace's prompt sets
    (the same params build the same sets; the other checkout may hold only results/)."""
    from mubench.core.artifacts import TamperMetrics, read_artifact, read_metrics
    from mubench.tools.recompute import Mismatch, check_metrics, check_tamper

    path = (ws.tamper_result(model, variant) if tamper else ws.result(model, variant)) / "metrics.json"
    if not path.is_file():
        report.problems.append(f"{path}: missing")
        return None
    try:
        metrics = read_artifact(TamperMetrics, path) if tamper else read_metrics(path)
    except ValueError as exc:
        report.problems.append(str(exc))
        return None
    try:
        if tamper:
            check_tamper(params, ws, model, variant, metrics, built)
        else:
            check_metrics(params, ws, model, variant, metrics)
    except (Mismatch, FileNotFoundError, ValueError) as exc:
        report.problems.append(str(exc))
    return metrics


def _same_bytes(mine: Workspace, other: Workspace) -> bool:
    """Whether every file under both results/ folders is the same bytes (a copy, or the same run)."""
    def files(ws: Workspace) -> dict[str, bytes]:
        return {str(p.relative_to(ws.results)): p.read_bytes() for p in sorted(ws.results.rglob("*"))
                if p.is_file() and p.name != ".gitignore"}

    return files(mine) == files(other)


def compare_runs(params: Params, mine: Workspace, other: Workspace, tol: Tolerance = Tolerance()) -> Report:
    if mine.results.resolve() == other.results.resolve():
        raise InvalidValue(f"compare: {other.root} is this workspace itself; pass the root of another run's checkout")
    report = Report()
    for model in params.models:
        for variant in params.variants():
            metrics = {side: _read_checked(report, params, ws, model, variant, False, mine.built)
                       for side, ws in (("mine", mine), ("other", other))}
            if None in metrics.values():
                continue
            problems, info = _record_differences(f"{model}/{variant}", metrics["mine"]["run"],
                                                 metrics["other"]["run"])
            report.problems += problems
            report.records += info
            _compare_outcomes(report, tol, model, variant, _outcomes(mine.samples(model, variant)),
                              _outcomes(other.samples(model, variant)))
            for metric in ("kl", "nll"):
                x, y = metrics["mine"]["drift"][metric], metrics["other"]["drift"][metric]
                ok = x is None and y is None or (x is not None and y is not None
                                                 and math.isclose(x, y, rel_tol=tol.rtol, abs_tol=tol.atol))
                report.rows.append(Row(model, variant, f"drift_{metric}", x, y, ok=ok))
            ra, rb = _responses(mine.samples(model, variant)), _responses(other.samples(model, variant))
            if params.tamper.names:
                tampered = {side: _read_checked(report, params, ws, model, variant, True, mine.built)
                            for side, ws in (("mine", mine), ("other", other))}
                if None not in tampered.values():
                    problems, info = _record_differences(f"{model}/{variant} tamper", tampered["mine"]["run"],
                                                         tampered["other"]["run"])
                    report.problems += problems
                    report.records += info
                    names = [n for n in params.tamper.names if n in tampered["mine"]["tamper_attacks"]]
                    folders = (mine.tamper_result(model, variant), other.tamper_result(model, variant))
                    _compare_outcomes(report, tol, model, variant, _tamper_outcomes(params, folders[0], names),
                                      _tamper_outcomes(params, folders[1], names))
                    ra.update(_tamper_responses(params, folders[0], names))
                    rb.update(_tamper_responses(params, folders[1], names))
            report.responses += [{"model": model, "variant": variant, "set": key[0], "id": key[1],
                                  "mine": ra[key], "other": rb[key]}
                                 for key in sorted(set(ra) & set(rb)) if ra[key] != rb[key]]
    report.identical = _same_bytes(mine, other)
    return report


def as_json(report: Report, tol: Tolerance) -> str:
    import json
    from dataclasses import asdict

    return json.dumps({"tolerance": asdict(tol), "ok": report.ok, "identical": report.identical,
                       "rows": [asdict(r) for r in report.rows], "responses": report.responses,
                       "run_records": report.records, "problems": report.problems}, indent=1)


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
    if report.records:
        lines.append(f"{len(report.records)} run-record field(s) differ (expected on other hardware or versions):")
        lines += [f"  {line[:200]}" for line in report.records[:limit]]
    for problem in report.problems:
        lines.append(f"problem: {problem}")
    if report.identical:
        lines.append("Both sides are byte-identical (every file under results/): the same run, or a copy of it.")
    return "\n".join(lines)
