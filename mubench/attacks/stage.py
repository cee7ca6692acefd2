"""The ``attack`` stage: apply one template attack to every harmful evaluation prompt (model-independent)."""

from __future__ import annotations

from pathlib import Path

from mubench.attacks import get_attack
from mubench.io import read_jsonl, stable_json_hash, write_jsonl


def run_attack(name: str, harmful_file: Path, out_file: Path) -> int:
    attack = get_attack(name)
    params = attack.params()
    params_hash = stable_json_hash(params)[:16]
    rows = []
    for row in read_jsonl(harmful_file):
        rows.append({
            "id": row["id"],
            "dataset": row["dataset"],
            "goal": row["prompt"],
            "prompt": attack.apply(row["prompt"]),
            "attack": attack.name,
            "attack_version": attack.version,
            "attack_params_sha256": params_hash,
        })
    write_jsonl(out_file, rows)
    return len(rows)
