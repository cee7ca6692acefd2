"""The ``jailbreak-fit`` stage: fit one jailbreak on a model's base checkpoint (ICA: pick demonstrations from
the forget corpus; GCG: optimise a suffix), then apply it to the attack seed set; the prompts
(``data/jailbreaks_fitted/MODEL/NAME/``) are transferred unchanged to every variant, the standard protocol."""

from __future__ import annotations

from mubench.core.artifacts import read_rows
from mubench.core.config import Params
from mubench.core.errors import InvalidValue
from mubench.core.io import BUILT_HINT, require_rows, run_record
from mubench.core.outputs import claim_outputs
from mubench.core.records import CorpusPair, DatasetRow
from mubench.core.workspace import Workspace
from mubench.jailbreaks import JAILBREAKS
from mubench.jailbreaks.apply import attack_seeds, write_prompts
from mubench.jailbreaks.base import FitContext

OWNER = "mubench jailbreak-fit"


def run_jailbreak_fit(params: Params, ws: Workspace, model_name: str, name: str) -> dict:
    """Fit ``name`` on ``model_name``'s base and write its prompts; returns the fit record."""
    from mubench.core.runtime import pick_device, seed_everything
    from mubench.engine.models import load_checkpoint, verified_meta

    attack = JAILBREAKS.get(name, params.jailbreaks.options(name))
    if not attack.needs_model:
        raise InvalidValue(f"jailbreak '{name}' is a template jailbreak; run `mubench jailbreak {name}`")
    out_dir, ckpt_dir = ws.jailbreak_fit(model_name, name), ws.checkpoint(model_name)
    claim_outputs(OWNER, out_dir)
    require_rows(ws.built / "harmful.jsonl", hint=BUILT_HINT)
    seed_everything(params.seed)
    device = pick_device(params.device)
    # fp32 even on the GPU: token gradients and candidate losses are compared at the 1e-3 level
    model, tokenizer = load_checkpoint(ckpt_dir, device)
    seeds = attack_seeds(read_rows(DatasetRow, ws.built / "harmful.jsonl"), params.jailbreaks.seed_per_dataset,
                         params.seed)
    ctx = FitContext(model=model, tokenizer=tokenizer, behaviours=seeds,
                     forget=read_rows(CorpusPair, ws.corpus(model_name) / "forget.jsonl"), seed=params.seed,
                     system_prompt=params.generation.system_prompt)
    fit = attack.fit(ctx)
    fit["run"] = run_record(model=model_name, model_hash=verified_meta(ckpt_dir)["model_hash"], device=device)
    write_prompts(attack, seeds, out_dir, OWNER, fit)
    return fit
