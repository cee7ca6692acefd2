"""The ``jailbreak`` stage: apply one template jailbreak (model-independent) to the attack seed set, i.e.
``jailbreaks.seed_per_dataset`` harmful evaluation prompts per dataset (seeded, stratified by category); writes
``data/jailbreaks/NAME/`` (``mubench.jailbreaks.apply``)."""

from __future__ import annotations

from mubench.core.artifacts import read_rows
from mubench.core.config import Params
from mubench.core.errors import InvalidValue
from mubench.core.io import BUILT_HINT, require_rows
from mubench.core.outputs import claim_outputs
from mubench.core.records import DatasetRow
from mubench.core.workspace import Workspace
from mubench.jailbreaks import JAILBREAKS
from mubench.jailbreaks.apply import attack_seeds, write_prompts

OWNER = "mubench jailbreak"


def run_jailbreak(params: Params, ws: Workspace, name: str) -> int:
    """Write ``name``'s prompts; returns how many."""
    attack = JAILBREAKS.get(name, params.jailbreaks.options(name))
    if attack.needs_model:
        raise InvalidValue(f"jailbreak '{name}' is fitted on a model; run `mubench jailbreak-fit MODEL {name}`")
    out_dir = ws.jailbreak(name)
    claim_outputs(OWNER, out_dir)
    require_rows(ws.built / "harmful.jsonl", hint=BUILT_HINT)
    seeds = attack_seeds(read_rows(DatasetRow, ws.built / "harmful.jsonl"), params.jailbreaks.seed_per_dataset,
                         params.seed)
    return write_prompts(attack, seeds, out_dir, OWNER)
