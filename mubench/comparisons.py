"""Every variant against its base, item by item: the per-sample outputs of ``evaluate`` become paired
outcomes, each tested with ``mubench.paired`` and Holm-corrected across the variants of a model.

Tests (name: outcome per item):
- ``asr``, ``asr/DATASET``: the plain harmful prompt was not refused;
- ``seed_asr``, ``attack/ATTACK``: on the attack seed behaviours, plain / under each attack;
- ``knowledge_asr``: the seed behaviour was broken by the plain prompt or any attack;
- ``oversafety``: the benign prompt was refused;
- ``utility``, ``utility/TASK``: the item was answered correctly (``utility`` resamples within tasks);
- ``degenerate``: the response to a plain harmful or benign prompt was degenerate;
- ``drift_kl``, ``drift_nll``: per benign drift prompt (continuous).
"""

from __future__ import annotations

from pathlib import Path

from mubench.io import read_jsonl
from mubench.metrics import VANILLA, broken_seeds, quality_rows
from mubench.paired import holm, paired_delta, significant

CONTINUOUS = ("drift_kl", "drift_nll")


def outcomes(params, samples_dir: Path) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """({test name: {item key: outcome}}, {utility item key: task}) from one variant's ``samples/``."""
    safety = read_jsonl(samples_dir / "safety.jsonl")
    over = read_jsonl(samples_dir / "oversafety.jsonl")
    utility = read_jsonl(samples_dir / "utility.jsonl")
    drift = read_jsonl(samples_dir / "drift.jsonl")
    vanilla = [r for r in safety if r["attack"] == VANILLA]
    attacked = [r for r in safety if r["attack"] != VANILLA]
    broken = broken_seeds(vanilla, attacked)
    out: dict[str, dict[str, float]] = {"asr": {r["id"]: not r["refused"] for r in vanilla}}
    for name in params.data.harmful:
        out[f"asr/{name}"] = {r["id"]: not r["refused"] for r in vanilla if r["dataset"] == name}
    out["seed_asr"] = {r["id"]: not r["refused"] for r in vanilla if r["id"] in broken}
    for name in params.attacks.names():
        out[f"attack/{name}"] = {r["id"]: not r["refused"] for r in attacked if r["attack"] == name}
    out["knowledge_asr"] = dict(broken)
    out["oversafety"] = {r["id"]: r["refused"] for r in over}
    out["utility"] = {f"{r['task']}/{r['id']}": bool(r["correct"]) for r in utility}
    for task in params.data.utility:
        out[f"utility/{task}"] = {str(r["id"]): bool(r["correct"]) for r in utility if r["task"] == task}
    out["degenerate"] = {f"{r.get('attack', 'over-safety')}/{r['id']}": r["degenerate"] is not None
                         for r in quality_rows(vanilla, over)}
    out["drift_kl"] = {r["id"]: r["kl"] for r in drift}
    out["drift_nll"] = {r["id"]: r["nll"] for r in drift}
    return out, {f"{r['task']}/{r['id']}": r["task"] for r in utility}


def compare_model(params, samples: dict[str, Path]) -> dict[str, dict[str, dict]]:
    """{variant: {test name: {delta, ci, p, p_holm, significant, n}}} for each variant of one model against its
    ``base`` (``samples``: variant -> its samples dir); Holm runs over the variants of each test."""
    base, strata = outcomes(params, samples["base"])
    stats = params.statistics
    tests: dict[str, dict[str, dict]] = {}
    for variant, path in samples.items():
        if variant == "base":
            continue
        mine, _ = outcomes(params, path)
        tests[variant] = {name: paired_delta(base[name], mine[name], name not in CONTINUOUS,
                                             stats.bootstrap_samples, stats.confidence, params.seed,
                                             strata if name == "utility" else None)
                          for name in base}
    for name in base:
        adjusted = holm([tests[v][name]["p"] for v in tests])
        for variant, p_holm in zip(tests, adjusted, strict=True):
            test = tests[variant][name]
            test["p_holm"] = None if p_holm is None else round(p_holm, 6)
            test["significant"] = significant(test, stats.confidence)
    return tests
