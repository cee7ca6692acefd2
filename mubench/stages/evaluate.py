"""The ``evaluate`` stage: generate -> judge -> utility -> drift -> metrics for one (model, variant).

Writes ``metrics.json`` (the documented schema) and per-sample outputs (prompt, response, judge label,
degenerate-output flag; utility items; drift per benign prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mubench.core.artifacts import Metrics, read_rows, validated
from mubench.core.config import Params
from mubench.core.io import BUILT_HINT, atomic_dir, require_rows, run_record, write_json, write_jsonl
from mubench.core.outputs import claim_outputs
from mubench.core.progress import log
from mubench.core.records import CorpusPair, DatasetRow, DriftRow, JailbreakRow, Record
from mubench.core.runtime import compute_dtype, pick_device, seed_everything
from mubench.core.workspace import BASE, Workspace
from mubench.engine.generate import DecodeParams, generate_sets, system_role_supported, user_cache
from mubench.engine.models import load_checkpoint, verified_meta
from mubench.jailbreaks import JAILBREAKS
from mubench.plan.evaluate import evaluate_plans
from mubench.plan.fit import ensure_fits
from mubench.scoring.drift import drift_scores
from mubench.scoring.judging import OVERSAFETY, Judges, harmful_rows, judged_rows
from mubench.scoring.rates import VANILLA, compute_metrics, judge_health
from mubench.scoring.utility import evaluate_utility, generation_tasks, utility_rows, utility_splits

DRIFT_MAX_LENGTH = 2048  # tokens of a drift pair (prompt + the base's answer) scored at most
OWNER = "mubench evaluate"


def jailbreak_prompt_file(params: Params, ws: Workspace, model_name: str, name: str) -> Path:
    """Where the jailbreak stages wrote ``name``'s prompts (fitted jailbreaks: per model)."""
    if name in params.jailbreaks.fitted:
        return ws.jailbreak_fit(model_name, name) / "prompts.jsonl"
    return ws.jailbreak(name) / "prompts.jsonl"


def drift_from_base(params: Params, ws: Workspace, model, tokenizer, model_name: str, variant: str,
                    device: str) -> list[DriftRow]:
    """Per-token KL of ``model`` from its base on the base's own answers (the drift corpus); a variant loads the
    base beside it for the comparison and frees it after."""
    pairs = read_rows(CorpusPair, ws.corpus(model_name) / "drift.jsonl")
    base = model if variant == BASE else load_checkpoint(ws.checkpoint(model_name), device, compute_dtype(device))[0]
    return drift_scores(model, base, tokenizer, pairs, params.batches(model_name)["utility"], DRIFT_MAX_LENGTH,
                        params.generation.system_prompt)


def write_samples(samples_dir: Path, sets: dict[str, Sequence[Record]]) -> None:
    """Every per-row file of one evaluation (``NAME.jsonl``), replaced together."""
    with atomic_dir(samples_dir, OWNER) as tmp:
        for name, rows in sets.items():
            write_jsonl(tmp / f"{name}.jsonl", rows)


def run_evaluate(params: Params, ws: Workspace, model_name: str, variant: str) -> dict:
    """Generate, judge and score ``variant``; writes ``metrics.json`` and ``samples/`` in its result folder."""
    cache = user_cache()
    ckpt_dir, out_dir, samples_dir = ws.checkpoint(model_name, variant), ws.result(model_name, variant), \
        ws.samples(model_name, variant)
    claim_outputs(OWNER, samples_dir)
    seed_everything(params.seed)
    device = pick_device(params.device)
    meta = verified_meta(ckpt_dir)
    utility_files = utility_splits(ws.built, params.data.utility)
    require_rows(ws.built / "harmful.jsonl", ws.built / "oversafety.jsonl", *utility_files.values(), hint=BUILT_HINT)
    ensure_fits(device, evaluate_plans, params, ckpt_dir, f"{model_name}/{variant}", variant != BASE,
                generation_tasks(utility_files))
    model, tokenizer = load_checkpoint(ckpt_dir, device, compute_dtype(device))
    decode = DecodeParams.of(params.generation)
    judges = Judges.of(params, model_name)
    batches = params.batches(model_name)

    harmful = harmful_rows(ws.built)
    attacked = {name: read_rows(JailbreakRow, jailbreak_prompt_file(params, ws, model_name, name))
                for name in params.jailbreaks.names()}
    over = read_rows(DatasetRow, ws.built / "oversafety.jsonl")
    # one pooled generation over every prompt set (each set's shared template prefix is computed once)
    sets = {VANILLA: harmful, **attacked, OVERSAFETY: over}
    answers = generate_sets(model, tokenizer, {name: [r.prompt for r in rows] for name, rows in sets.items()},
                            decode, batches["generation"], meta["model_hash"], cache, variant)
    safety_rows = judged_rows(judges.safety, harmful, answers[VANILLA])
    for name, rows in attacked.items():
        attack = JAILBREAKS.get(name, params.jailbreaks.options(name))
        safety_rows += judged_rows(judges.safety, rows, answers[name], decode=attack.decode)
    over_rows = judged_rows(judges.oversafety, over, answers[OVERSAFETY])
    # fail before the utility and drift work when the judge cannot be read; free it: they run without it
    judge_health({"safety": safety_rows, "oversafety": over_rows}, params.judge.max_unparsed,
                 f"{model_name}/{variant}")
    judges.release()

    utility = evaluate_utility(model, tokenizer, utility_files, params.utility.num_fewshot,
                               batches["utility"], params.seed, params.utility.generation.model_dump(),
                               meta["model_hash"], cache, params.generation.graphs)
    drift = drift_from_base(params, ws, model, tokenizer, model_name, variant, device)
    metrics = compute_metrics(params, safety_rows, over_rows, utility, drift, judges.labels())
    metrics["run"] = run_record(model=model_name, variant=variant, model_hash=meta["model_hash"],
                                device=device, seed=params.seed, decode=decode.__dict__, judges=judges.record(),
                                batches=batches,
                                # where the template has no system role, system messages (attacks, the system
                                # prompt) were folded into the first user turn
                                system_role="native" if system_role_supported(tokenizer) else "folded into user")
    write_samples(samples_dir, {"safety": safety_rows, "oversafety": over_rows, "utility": utility_rows(utility),
                                "drift": drift})
    # through the typed model: a schema slip is an error here, not a surprise in `report`
    write_json(out_dir / "metrics.json", validated(Metrics, metrics, out_dir / "metrics.json").model_dump())
    log(f"[evaluate] {model_name}/{variant}: ASR {metrics['safety']['asr']:.3f}, over-safety "
        f"{metrics['oversafety']['refusal_rate']:.3f}, utility {metrics['utility']['accuracy']:.3f}, drift KL "
        f"{metrics['drift']['kl']:.4f}, degenerate {metrics['quality']['degenerate_rate']:.3f}")
    return metrics
