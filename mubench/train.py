"""The one training loop every gradient-based unlearning method shares (accelerate; seeded, deterministic on CPU)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator

from mubench.generate import chat_text
from mubench.losses import IGNORE
from mubench.methods.base import Method, TrainParams
from mubench.progress import track


def encode_pairs(tokenizer, pairs: list[dict], max_length: int, system_prompt: str | None = None) -> list[dict]:
    """Tokenise (prompt, response) pairs in the chat format; labels are -100 on prompt tokens."""
    encoded = []
    eos = tokenizer.eos_token or ""
    for pair in pairs:
        prompt_ids = tokenizer(chat_text(tokenizer, pair["prompt"], system_prompt),
                               add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(pair["response"] + eos, add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + response_ids)[:max_length]
        labels = ([IGNORE] * len(prompt_ids) + response_ids)[:max_length]
        if all(label == IGNORE for label in labels):
            continue  # the prompt alone fills max_length: nothing to learn from
        encoded.append({"input_ids": ids, "labels": labels})
    return encoded


def collate(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of encoded examples; padding gets attention 0 and label -100."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        ids[row, :n] = torch.tensor(example["input_ids"])
        labels[row, :n] = torch.tensor(example["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batch_stream(examples: list[dict], batch_size: int, pad_id: int, seed: int) -> Iterator[dict]:
    """Endless seeded reshuffles of ``examples`` in batches."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(examples), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            if len(chunk) < batch_size and len(order) >= batch_size:
                break  # keep batch sizes constant: drop the ragged tail of each epoch
            yield collate([examples[i] for i in chunk], pad_id)


class NonFiniteError(RuntimeError):
    """Training produced a NaN/inf loss or weight: the stage stops and saves nothing."""


def _terms_text(terms: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.6g}" for k, v in terms.items())


def check_finite_terms(method: str, step: int, terms: dict[str, float]) -> None:
    """Raise NonFiniteError naming the step and every loss term when any term is NaN or infinite."""
    if not all(math.isfinite(v) for v in terms.values()):
        raise NonFiniteError(f"unlearn {method}: step {step}: non-finite loss ({_terms_text(terms)}); lower lr or "
                             "check the method's weights; nothing was saved")


def all_finite(tensors) -> bool:
    """Whether every element of every tensor is finite (one device sync)."""
    checks = [torch.isfinite(t).all() for t in tensors]
    return bool(torch.stack(checks).all()) if checks else True


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0
    steps: int = 0
    model: object = None  # the trained model (a PeftModel when LoRA is kept as an adapter)


def add_lora(model, lora):
    """Wrap ``model`` with fresh LoRA adapters (PEFT); only the adapters train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def unlearn(
    method: Method,
    params: TrainParams,
    model,
    tokenizer,
    forget: list[dict],
    retain: list[dict],
    seed: int,
    device: str,
    system_prompt: str | None = None,
) -> TrainResult:
    """Train ``model`` with ``method``'s loss; returns the per-step loss history and the trained model
    (``model`` itself for full fine-tuning, or with LoRA merged in, or a PeftModel for ``lora.save: adapter``).

    Runs as one process or under ``accelerate launch`` (DDP/FSDP): with N processes, each step consumes
    N * grad_accum micro-batches, split across processes.
    """
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision="bf16" if device == "cuda" else "no",
                              gradient_accumulation_steps=params.grad_accum)
    ref = None
    if method.needs_reference:
        ref = copy.deepcopy(model).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        ref.to(accelerator.device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    streams = {}
    for name, examples in method.streams(forget, retain, seed, params).items():
        if not examples:
            continue
        # streams of one family share a seed and a length, so their batches stay aligned by index
        # (e.g. DPO's refusal and forget responses to the same prompts)
        stream_seed = seed if name.startswith("forget") else seed + 1
        streams[name] = batch_stream(encode_pairs(tokenizer, examples, params.max_length, system_prompt),
                                     params.batch_size, pad_id, stream_seed)
    if params.lora is not None:
        model = add_lora(model, params.lora)
    else:
        method.prepare(model, params, seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    world, rank = accelerator.num_processes, accelerator.process_index
    model.train()
    result = TrainResult()
    start = time.perf_counter()
    for step in track(range(params.steps), f"unlearn {method.name}", total=params.steps):
        logs_acc: dict[str, float] = {}
        for _ in range(params.grad_accum):
            # every process draws the same micro-batches and keeps its own share, so N processes with
            # accumulation k see exactly the data of one process with accumulation N*k
            drawn = [{k: next(s) for k, s in streams.items()} for _ in range(world)][rank]
            batches = {k: {n: t.to(accelerator.device) for n, t in b.items()} for k, b in drawn.items()}
            with accelerator.accumulate(model), accelerator.autocast():
                loss, logs = method.loss(model, ref, batches, params)
                terms = {"loss": loss.item(), **logs}
                check_finite_terms(method.name, step + 1, terms)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(trainable, params.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
                if accelerator.sync_gradients and not all_finite(trainable):
                    raise NonFiniteError(f"unlearn {method.name}: step {step + 1}: the weights became non-finite "
                                         f"after the optimizer step ({_terms_text(terms)}); lower lr; nothing "
                                         "was saved")
            for key, value in terms.items():
                logs_acc[key] = logs_acc.get(key, 0.0) + value / params.grad_accum
        result.history.append({"step": step + 1, **logs_acc})
    # drop accelerate's autocast forward wrapper too: the returned model must run in its own dtype
    model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    if params.lora is not None and params.lora.save == "merged":
        model = model.merge_and_unload()
    method.finalize(model, ref, params)
    if not all_finite(model.parameters()):
        raise NonFiniteError(f"unlearn {method.name}: the weights are non-finite after the method's final edit; "
                             "nothing was saved")
    result.wall_time_s = time.perf_counter() - start
    result.steps = params.steps
    model.eval()
    if params.lora is None or params.lora.save == "merged":
        for p in model.parameters():
            p.requires_grad_(True)
    result.model = model
    return result
