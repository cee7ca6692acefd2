"""The ``unlearn`` stage: apply one method to the base checkpoint; save checkpoint, loss curve and metadata."""

from __future__ import annotations

import csv
import io

from mubench.core.artifacts import read_rows
from mubench.core.config import Params, variant_name
from mubench.core.io import atomic_dir, atomic_write_text, require_free_disk, run_record, write_json
from mubench.core.outputs import claim_outputs
from mubench.core.progress import log
from mubench.core.records import CorpusPair
from mubench.core.runtime import compute_dtype, pick_device, seed_everything
from mubench.core.workspace import Workspace
from mubench.engine.models import load_checkpoint, save_checkpoint, save_partial, verified_meta
from mubench.methods import METHODS
from mubench.plan.fit import ensure_fits
from mubench.plan.unlearn import plan_unlearn_stage
from mubench.training.loop import unlearn, weights_dtype

PARTIAL_SHARE = 0.5  # full fine-tuning that trained less than this share of the weights saves only those
OWNER = "mubench unlearn"


def run_unlearn(params: Params, ws: Workspace, model_name: str, method_name: str, seed: int) -> dict:
    """Unlearn with ``seed`` (data order, method randomness) into the variant's checkpoint folder (a
    byte-identical checkpoint for identical inputs); the loss curve goes to its result folder (loss.csv,
    train.json), which DVC tracks as plot and metrics."""
    variant = variant_name(method_name, seed)
    base_dir, corpus_dir = ws.checkpoint(model_name), ws.corpus(model_name)
    out_dir, curve_dir = ws.checkpoint(model_name, variant), ws.result(model_name, variant)
    claim_outputs(OWNER, out_dir)
    seed_everything(seed)
    device = pick_device(params.device)
    hparams = params.method_config(method_name)
    method = METHODS.get(method_name, hparams)
    base_meta = verified_meta(base_dir)
    require_free_disk(out_dir, variant_bytes(base_meta["parameters"], hparams, device),
                      f"unlearn {model_name}/{variant} (its checkpoint and DVC's cache copy)")
    # on the GPU: refuse before loading the weights when the step cannot fit (`mubench plan`)
    ensure_fits(device, plan_unlearn_stage, f"unlearn {model_name}/{method_name}", method_name, hparams, base_dir)
    # fp32 master weights (a LoRA run's frozen base in bf16 on the GPU); bf16 autocast on the GPU from the loop
    model, tokenizer = load_checkpoint(base_dir, device, weights_dtype(hparams, device))
    forget = read_rows(CorpusPair, corpus_dir / "forget.jsonl")
    retain = read_rows(CorpusPair, corpus_dir / "retain.jsonl")
    result = unlearn(method, model, tokenizer, forget, retain, seed, device, params.generation.system_prompt)
    meta = run_record(variant=variant, model=model_name, method=method_name,
                      hyperparameters=hparams.model_dump(), base_model_hash=base_meta["model_hash"],
                      steps=result.steps, device=device,
                      seed=seed, forget_pairs=len(forget), retain_pairs=len(retain))
    if hparams.lora is not None and hparams.lora.save == "adapter":
        # only the LoRA weights are saved; loading applies them to this base after checking its hash
        meta.update(adapter=True, base_dir=base_dir.as_posix())
    if device == "cuda":
        result.model.to(compute_dtype(device))  # GPU runs save bf16 (sharded safetensors): half the disk
    partial = result.trained is not None and \
        sum(p.numel() for n, p in result.model.named_parameters() if n in result.trained) \
        < PARTIAL_SHARE * sum(p.numel() for p in result.model.parameters())
    with atomic_dir(out_dir, OWNER) as tmp:
        if partial:
            # only the tensors training changed (RMU: three MLPs), applied to this base when loaded
            saved = save_partial(result.model, tokenizer, result.trained, tmp,
                                 {**meta, "base_dir": base_dir.as_posix()})
        else:
            saved = save_checkpoint(result.model, tokenizer, tmp, meta)
    atomic_write_text(curve_dir / "loss.csv", _history_csv(result.history))
    # no wall time here: train.json is in dvc.lock, which a fresh clone must reproduce byte for byte
    write_json(curve_dir / "train.json", {"steps": result.steps, "final": result.history[-1], "device": device})
    log(f"[unlearn] {model_name}/{variant}: {result.steps} steps in "
        f"{result.wall_time_s:.1f}s; "
        f"final loss {result.history[-1]['loss']:.4f}")
    return saved


ADAPTER_SHARE = 0.02  # an upper bound on a LoRA adapter's share of the weights (r16 on a 7B model: 0.6%)


def variant_bytes(parameters: int, hparams, device: str) -> float:
    """Disk a variant takes, checkpoint and DVC's cache copy, bounded from above before training: full weights
    (bf16 on the GPU, fp32 on the CPU), a LoRA adapter, or RMU's changed tensors (under PARTIAL_SHARE)."""
    full = parameters * (2 if device == "cuda" else 4)
    if hparams.lora is not None and hparams.lora.save == "adapter":
        full *= ADAPTER_SHARE
    return 2 * full


def _history_csv(history: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in history for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()
