"""The ``evaluate`` stage: generate -> judge -> utility -> drift -> metrics for one (model, variant).

Writes ``metrics.json`` (the documented schema) and per-sample outputs (prompt, response, judge label,
degenerate-output flag; utility items; drift per benign prompt).
"""

from __future__ import annotations

from pathlib import Path

from mubench.core.artifacts import AttackRow, CorpusPair, Metrics, read_rows, validated
from mubench.core.config import Params
from mubench.core.io import atomic_dir, claim_outputs, read_jsonl, run_record, write_json, write_jsonl
from mubench.core.progress import log
from mubench.core.runtime import compute_dtype, pick_device, seed_everything
from mubench.engine.generate import DecodeParams, GenerationCache, generate_sets
from mubench.engine.models import load_checkpoint, verified_meta
from mubench.jailbreaks import get_attack
from mubench.judges import get_judge
from mubench.plan.evaluate import evaluate_plans
from mubench.plan.trace import ensure_fits
from mubench.scoring.drift import drift_scores
from mubench.scoring.quality import degenerate
from mubench.scoring.rates import VANILLA, compute_metrics
from mubench.scoring.utility import evaluate_utility, generation_tasks, utility_splits

OVERSAFETY = "over-safety"  # the set name of the benign prompts (never an attack name)
DRIFT_MAX_LENGTH = 2048  # tokens of a drift pair (prompt + the base's answer) scored at most


def judged_rows(judge, rows: list[dict], responses: list[str], decode=None) -> list[dict]:
    """Rows with response, judged text (decoded for encoding attacks) and the judge's verdict.

    The judge sees the plain goal (not the attack prompt) and the decoded response."""
    texts = [decode(r) if decode else r for r in responses]
    verdicts = judge.judge_many([row.get("goal", row["prompt"]) for row in rows], texts)
    return [{**row, "response": response, "judged_text": text if decode else None, "refused": v.refused,
             "judge_reason": v.reason, "judge_label": v.label, "degenerate": degenerate(text)}
            for row, response, text, v in zip(rows, responses, texts, verdicts, strict=True)]


def utility_rows(utility: dict) -> list[dict]:
    """Per utility item: task, id, correct; a generation task's items add the response and extracted answer."""
    rows = []
    for task, res in utility.items():
        for k, (i, c) in enumerate(zip(res["ids"], res["correct"], strict=True)):
            row = {"task": task, "id": i, "correct": c}
            if "responses" in res:
                row.update(response=res["responses"][k], extracted=res["extracted"][k])
            rows.append(row)
    return rows


def attack_prompt_file(params: Params, attacks_dir: Path, fitted_dir: Path, model_name: str, name: str) -> Path:
    """Where the attack stage wrote ``name``'s prompts (model-based attacks: per model)."""
    if name in params.attacks.model_based:
        return fitted_dir / model_name / name / "prompts.jsonl"
    return attacks_dir / name / "prompts.jsonl"


def run_evaluate(params: Params, model_name: str, variant: str, ckpt_dir: Path, base_dir: Path, corpus_dir: Path,
                 built_dir: Path, attacks_dir: Path, fitted_dir: Path, out_dir: Path,
                 cache: GenerationCache | None) -> dict:
    claim_outputs("mubench evaluate", out_dir / "samples")
    seed_everything(params.seed)
    device = pick_device(params.device)
    meta = verified_meta(ckpt_dir)
    utility_files = utility_splits(built_dir, params.data.utility)
    ensure_fits(device, evaluate_plans, params, ckpt_dir, f"{model_name}/{variant}", variant != "base",
                generation_tasks(utility_files))
    model, tokenizer = load_checkpoint(ckpt_dir, device, compute_dtype(device))
    decode = DecodeParams(params.generation.max_new_tokens, params.generation.system_prompt)
    batch = params.generation.batch_size
    safety_judge = get_judge(params.judge.safety, params.judge.options)
    over_judge = get_judge(params.judge.oversafety, params.judge.options)

    harmful = [{**r, "goal": r["prompt"], "attack": VANILLA} for r in read_jsonl(built_dir / "harmful.jsonl")]
    attacked = {name: read_rows(AttackRow, attack_prompt_file(params, attacks_dir, fitted_dir, model_name, name))
                for name in params.attacks.names()}
    over = read_jsonl(built_dir / "oversafety.jsonl")
    # one pooled generation over every prompt set (each set's shared template prefix is computed once)
    sets = {VANILLA: harmful, **attacked, OVERSAFETY: over}
    answers = generate_sets(model, tokenizer, {name: [r["prompt"] for r in rows] for name, rows in sets.items()},
                            decode, batch, meta["model_hash"], cache, variant)
    safety_rows = judged_rows(safety_judge, harmful, answers[VANILLA])
    for name, rows in attacked.items():
        attack = get_attack(name, params.attacks.options(name))
        safety_rows += judged_rows(safety_judge, rows, answers[name], decode=attack.decode)
    over_rows = judged_rows(over_judge, over, answers[OVERSAFETY])

    utility = evaluate_utility(model, tokenizer, utility_files, params.utility.num_fewshot,
                               params.utility.batch_size, params.seed, params.utility.generation.model_dump(),
                               meta["model_hash"], cache)
    drift_pairs = read_rows(CorpusPair, corpus_dir / "drift.jsonl")
    if variant == "base":
        base = model
    else:
        base, _ = load_checkpoint(base_dir, device, compute_dtype(device))
    drift = drift_scores(model, base, tokenizer, drift_pairs, params.utility.batch_size, DRIFT_MAX_LENGTH,
                         params.generation.system_prompt)
    del base
    metrics = compute_metrics(params, safety_rows, over_rows, utility, drift,
                              (safety_judge.labels, over_judge.labels))
    metrics["run"] = run_record(model=model_name, variant=variant, model_hash=meta["model_hash"],
                                device=device, seed=params.seed, decode=decode.__dict__,
                                judges={"safety": f"{safety_judge.name}/{safety_judge.version}",
                                        "oversafety": f"{over_judge.name}/{over_judge.version}"})
    with atomic_dir(out_dir / "samples", "mubench evaluate") as tmp:
        write_jsonl(tmp / "safety.jsonl", safety_rows)
        write_jsonl(tmp / "oversafety.jsonl", over_rows)
        write_jsonl(tmp / "utility.jsonl", utility_rows(utility))
        write_jsonl(tmp / "drift.jsonl", drift)
    # through the typed model: a schema slip is an error here, not a surprise in `report`
    write_json(out_dir / "metrics.json", validated(Metrics, metrics, out_dir / "metrics.json").model_dump())
    log(f"[evaluate] {model_name}/{variant}: ASR {metrics['safety']['asr']:.3f}, over-safety "
        f"{metrics['oversafety']['refusal_rate']:.3f}, utility {metrics['utility']['accuracy']:.3f}, drift KL "
        f"{metrics['drift']['kl']:.4f}, degenerate {metrics['quality']['degenerate_rate']:.3f}")
    return metrics
