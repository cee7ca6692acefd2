"""Applying a jailbreak to the attack seed behaviours and writing its prompts: shared by the ``jailbreak`` and
``jailbreak-fit`` stages (and the seed set by ``tamper``, whose attacked copies answer the same behaviours).

Each writes ``prompts.jsonl`` (one row per seed: id, dataset, goal, prompt, attack, version, params hash) and
``attack.json`` (name, version, full parameters, seed ids, and the fit record for fitted jailbreaks).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TypeVar

from mubench.core.errors import InvalidValue
from mubench.core.io import atomic_dir, stable_json_hash, write_json, write_jsonl
from mubench.core.records import DatasetRow, JailbreakRow
from mubench.core.sampling import stratified_sample
from mubench.jailbreaks.base import Jailbreak

D = TypeVar("D", bound=DatasetRow)


def attack_seeds(harmful: list[D], per_dataset: int, seed: int) -> list[D]:
    """The harmful evaluation prompts the attacks are applied to: ``per_dataset`` per dataset."""
    by_dataset: dict[str, list[D]] = defaultdict(list)
    for row in harmful:
        by_dataset[row.dataset].append(row)
    for name, rows in sorted(by_dataset.items()):
        if per_dataset > len(rows):
            raise InvalidValue(f"jailbreaks.seed_per_dataset = {per_dataset}, but the built harmful set holds only "
                             f"{len(rows)} prompts of {name}; lower it (or raise data.sizes.harmful_per_dataset)")
    return [r for name in sorted(by_dataset) for r in stratified_sample(by_dataset[name], per_dataset, seed)]


def write_prompts(attack: Jailbreak, seeds: list[DatasetRow], out_dir: Path, owner: str,
                  fit: dict | None = None) -> int:
    """Apply ``attack`` to each seed and write ``prompts.jsonl`` + ``attack.json`` atomically; returns the count."""
    params = attack.params()
    params_hash = stable_json_hash(params)[:16]
    rows = [JailbreakRow(id=r.id, dataset=r.dataset, goal=r.prompt, prompt=attack.apply(r.prompt),
                         attack=attack.name, attack_version=attack.version, attack_params_sha256=params_hash)
            for r in seeds]
    record = {"attack": attack.name, "version": attack.version, "params": params,
              "params_sha256": params_hash, "seeds": [r.id for r in seeds]}
    if fit is not None:
        record["fit"] = fit
    with atomic_dir(out_dir, owner) as tmp:
        write_jsonl(tmp / "prompts.jsonl", rows)
        write_json(tmp / "attack.json", record)
    return len(rows)
