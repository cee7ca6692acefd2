"""The ``model`` stage: materialise the base checkpoint, then build its unlearning corpus.

Forget pairs are the base model's own greedy responses to the forget prompts, kept where the safety judge
says the model complied (those are the harmful behaviours to unlearn); retain pairs are its responses to the
retain prompts. Drift pairs are its responses to held-out benign prompts: the reference answers on which
``evaluate`` measures how far a variant drifted from the base (KL, NLL). Nothing harmful is written by the
project: every response comes from the model.
"""

from __future__ import annotations

from mubench.core.artifacts import read_rows
from mubench.core.config import Params
from mubench.core.errors import FailedStep
from mubench.core.io import atomic_dir, run_record, write_json, write_jsonl
from mubench.core.outputs import claim_outputs
from mubench.core.progress import log
from mubench.core.records import CorpusPair, DatasetRow
from mubench.core.runtime import compute_dtype, pick_device, seed_everything
from mubench.core.workspace import Workspace
from mubench.engine.generate import DecodeParams, generate_sets, user_cache
from mubench.engine.models import load_checkpoint, materialize
from mubench.scoring.judging import judge_for
from mubench.scoring.rates import judge_health

OWNER = "mubench model"


def run_model(params: Params, ws: Workspace, name: str) -> dict:
    """Save ``name``'s base checkpoint and generate its forget / retain / drift corpus; returns the corpus
    record."""
    cache = user_cache()
    ckpt_dir, corpus_dir, built_dir = ws.checkpoint(name), ws.corpus(name), ws.built
    claim_outputs(OWNER, ckpt_dir, corpus_dir)
    seed_everything(params.seed)
    device = pick_device(params.device)
    with atomic_dir(ckpt_dir, OWNER) as tmp:
        meta = materialize(params.model_zoo[name], tmp, params.seed)
    log(f"[model] {name}: {meta['parameters']:,} parameters, hash {meta['model_hash']}")
    model, tokenizer = load_checkpoint(ckpt_dir, device, compute_dtype(device))
    decode = DecodeParams.of(params.generation)
    judge = judge_for(params, params.judge.safety, name)
    batches = params.batches(name)
    prompts = {split: read_rows(DatasetRow, built_dir / f"{split}_prompts.jsonl")
               for split in ("forget", "retain", "drift")}
    answers = generate_sets(model, tokenizer, {split: [p.prompt for p in rows] for split, rows in prompts.items()},
                            decode, batches["generation"], meta["model_hash"], cache, "corpus")
    judged = {split: list(zip(prompts[split], answers[split],
                              judge.judge_many([p.prompt for p in prompts[split]], answers[split]), strict=True))
              for split in ("forget", "retain")}
    judge_health({split: [verdict for _, _, verdict in rows] for split, rows in judged.items()},
                 params.judge.max_unparsed, name)
    # an unreadable verdict is not a compliance: such a prompt is left out of the forget set
    complied = [p.as_(CorpusPair, response=r, refused=v.refused) for p, r, v in judged["forget"]
                if v.refused is False and r]
    refused = [p.as_(DatasetRow, response=r, refused=v.refused) for p, r, v in judged["forget"] if v.refused]
    retain = [p.as_(CorpusPair, response=r, refused=v.refused) for p, r, v in judged["retain"] if r]
    drift = [p.as_(CorpusPair, response=r) for p, r in zip(prompts["drift"], answers["drift"], strict=True) if r]
    for split, kept, what in (("forget", complied, "complied with (answered, not refused)"),
                              ("retain", retain, "answered (non-empty)"), ("drift", drift, "answered (non-empty)")):
        if not kept:
            total = len(prompts[split])
            why = (f"the base model {what} none of the {total} {split} prompts" if total
                   else f"data/built/{split}_prompts.jsonl holds no prompts")
            goal = {"forget": "unlearn", "retain": "retain", "drift": "measure drift on"}[split]
            raise FailedStep(f"{name}: {why}; nothing to {goal} (check data.sizes.{split} and "
                               f"data.{split}_source)")
    summary = run_record(model=name, model_hash=meta["model_hash"], device=device, seed=params.seed,
                         judge=f"{judge.name}/{judge.version}", decode=decode.__dict__, batches=batches,
                         forget_prompts=len(judged["forget"]), forget_pairs=len(complied),
                         retain_pairs=len(retain), drift_pairs=len(drift))
    with atomic_dir(corpus_dir, OWNER) as tmp:
        write_jsonl(tmp / "forget.jsonl", complied)
        write_jsonl(tmp / "retain.jsonl", retain)
        write_jsonl(tmp / "drift.jsonl", drift)
        write_jsonl(tmp / "forget_refused.jsonl", refused)
        write_json(tmp / "corpus.json", summary)
    log(f"[model] corpus: {len(complied)}/{len(judged['forget'])} forget prompts complied with, "
        f"{len(retain)} retain pairs, {len(drift)} drift pairs")
    return summary
