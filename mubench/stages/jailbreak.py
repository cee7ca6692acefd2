"""The attack stages.

``attack`` (template attacks, model-independent): apply one attack to the attack seed set, i.e.
``attacks.seed_per_dataset`` harmful evaluation prompts per dataset (seeded, stratified by category).
``attack-model`` (model-based attacks): fit the attack on the base model (ICA: pick demonstrations from the
forget corpus; GCG: optimise a suffix), then apply it to the same seed set; the prompts are transferred
unchanged to every variant.
Each writes ``prompts.jsonl`` (one row per seed: id, dataset, goal, prompt, attack, version, params hash) and
``attack.json`` (name, version, full parameters, seed ids, and the fit record for model-based attacks).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mubench.core.artifacts import AttackRow, CorpusPair, checked_rows, read_rows
from mubench.core.config import Params
from mubench.core.io import atomic_dir, claim_outputs, read_jsonl, run_record, stable_json_hash, write_json, write_jsonl
from mubench.core.sampling import stratified_sample
from mubench.jailbreaks import get_attack
from mubench.jailbreaks.base import Attack, FitContext

ATTACK_OWNER, MODEL_ATTACK_OWNER = "mubench attack", "mubench attack-model"


def attack_seeds(harmful: list[dict], per_dataset: int, seed: int) -> list[dict]:
    """The harmful evaluation prompts the attacks are applied to: ``per_dataset`` per dataset."""
    by_dataset: dict[str, list[dict]] = defaultdict(list)
    for row in harmful:
        by_dataset[row["dataset"]].append(row)
    for name, rows in sorted(by_dataset.items()):
        if per_dataset > len(rows):
            raise ValueError(f"attacks.seed_per_dataset = {per_dataset}, but the built harmful set holds only "
                             f"{len(rows)} prompts of {name}; lower it (or raise data.sizes.harmful_per_dataset)")
    return [r for name in sorted(by_dataset) for r in stratified_sample(by_dataset[name], per_dataset, seed)]


def _write(attack: Attack, seeds: list[dict], out_dir: Path, owner: str, fit: dict | None = None) -> int:
    params = attack.params()
    params_hash = stable_json_hash(params)[:16]
    rows = [{"id": r["id"], "dataset": r["dataset"], "goal": r["prompt"], "prompt": attack.apply(r["prompt"]),
             "attack": attack.name, "attack_version": attack.version, "attack_params_sha256": params_hash}
            for r in seeds]
    record = {"attack": attack.name, "version": attack.version, "params": params,
              "params_sha256": params_hash, "seeds": [r["id"] for r in seeds]}
    if fit is not None:
        record["fit"] = fit
    with atomic_dir(out_dir, owner) as tmp:
        write_jsonl(tmp / "prompts.jsonl", checked_rows(AttackRow, rows, out_dir / "prompts.jsonl"))
        write_json(tmp / "attack.json", record)
    return len(rows)


def run_attack(params: Params, name: str, harmful_file: Path, out_dir: Path) -> int:
    attack = get_attack(name, params.attacks.options(name))
    if attack.needs_model:
        raise ValueError(f"attack '{name}' is model-based; run `mubench attack-model MODEL {name}`")
    claim_outputs(ATTACK_OWNER, out_dir)
    seeds = attack_seeds(read_jsonl(harmful_file), params.attacks.seed_per_dataset, params.seed)
    return _write(attack, seeds, out_dir, ATTACK_OWNER)


def run_model_attack(params: Params, model_name: str, name: str, harmful_file: Path, ckpt_dir: Path,
                     corpus_dir: Path, out_dir: Path) -> dict:
    from mubench.core.runtime import pick_device, seed_everything
    from mubench.engine.models import load_checkpoint, verified_meta

    attack = get_attack(name, params.attacks.options(name))
    if not attack.needs_model:
        raise ValueError(f"attack '{name}' is a template attack; run `mubench attack {name}`")
    claim_outputs(MODEL_ATTACK_OWNER, out_dir)
    seed_everything(params.seed)
    device = pick_device(params.device)
    # fp32 even on the GPU: token gradients and candidate losses are compared at the 1e-3 level
    model, tokenizer = load_checkpoint(ckpt_dir, device)
    seeds = attack_seeds(read_jsonl(harmful_file), params.attacks.seed_per_dataset, params.seed)
    ctx = FitContext(model=model, tokenizer=tokenizer, behaviours=seeds,
                     forget=read_rows(CorpusPair, corpus_dir / "forget.jsonl"), seed=params.seed,
                     system_prompt=params.generation.system_prompt)
    fit = attack.fit(ctx)
    fit["run"] = run_record(model=model_name, model_hash=verified_meta(ckpt_dir)["model_hash"], device=device)
    _write(attack, seeds, out_dir, MODEL_ATTACK_OWNER, fit)
    return fit
