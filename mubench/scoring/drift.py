"""Utility drift: how far a variant's next-token distributions moved from the base model's on benign text.

The reference text is the base model's own greedy answers to held-out benign prompts (``data/corpus/MODEL/
drift.jsonl``, disjoint from every other set). On each answer, teacher-forced:

- ``kl``: mean over the answer's tokens of KL(p_base || p_variant), the full-vocabulary divergence of the
  next-token distributions (0 for the base itself; it rises as unlearning moves the model on benign text);
- ``nll``: the variant's mean negative log-likelihood per token of the base's answer (the "model utility"
  idea of TOFU-style benchmarks: a variant that lost its everyday ability finds its old answers unlikely).

Unlike multiple-choice accuracy at chance level, both move continuously with the amount of damage.
"""

from __future__ import annotations

import torch

from mubench.core.records import CorpusPair, DriftRow
from mubench.engine.batching import length_batches
from mubench.training.encoding import collate, encode_pairs
from mubench.training.losses import IGNORE, response_logits


def drift_batch(model, base, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``batch``: (mean per-token KL(base || model), mean per-token NLL under ``model``) over its
    labelled (response) tokens. ``base is model`` scores one forward (KL exactly 0).

    The float32 log-probabilities are taken one row at a time: a whole batch of them is several copies of
    batch x tokens x vocabulary (158 GB for Llama-3-8B at 32 x 1,056 tokens); per row the values are the same."""
    logits, labels = response_logits(model, batch)
    base_logits = logits if base is model else response_logits(base, batch)[0]
    targets = labels[:, 1:]
    mask = targets != IGNORE
    kl_rows, nll_rows = [], []
    for row in range(logits.shape[0]):
        logp = torch.log_softmax(logits[row, :-1, :].float(), dim=-1)
        logp_base = logp if base is model else torch.log_softmax(base_logits[row, :-1, :].float(), dim=-1)
        kl_rows.append((logp_base.exp() * (logp_base - logp)).sum(dim=-1))
        nll_rows.append(-logp.gather(-1, targets[row].clamp(min=0).unsqueeze(-1)).squeeze(-1))
    kl, nll = torch.stack(kl_rows), torch.stack(nll_rows)
    counts = mask.sum(dim=-1).clamp(min=1)
    return (kl * mask).sum(dim=-1) / counts, (nll * mask).sum(dim=-1) / counts


def drift_scores(model, base, tokenizer, pairs: list[CorpusPair], batch_size: int, max_length: int,
                 system_prompt: str | None = None) -> list[DriftRow]:
    """A DriftRow (id, tokens, kl, nll) per drift pair (pairs whose prompt fills ``max_length`` are skipped), in the
    pairs' order; batches are length-sorted and cut by ``length_batches``."""
    encoded, kept = [], []
    for pair in pairs:
        rows = encode_pairs(tokenizer, [pair], max_length, system_prompt)
        if rows:
            encoded.append(rows[0])
            kept.append(pair)
    scores: list[DriftRow | None] = [None] * len(encoded)
    pad = tokenizer.pad_token_id
    with torch.inference_mode():
        for chunk in length_batches([len(e["input_ids"]) for e in encoded], batch_size):
            batch = collate([encoded[i] for i in chunk], pad)
            device = next(model.parameters()).device
            kl, nll = drift_batch(model, base, {k: v.to(device) for k, v in batch.items()})
            for row, i in enumerate(chunk):
                tokens = sum(label != IGNORE for label in encoded[i]["labels"])
                scores[i] = DriftRow(id=kept[i].id, tokens=int(tokens), kl=round(max(float(kl[row]), 0.0), 6) + 0.0,
                                     nll=round(float(nll[row]), 6))
    return [s for s in scores if s is not None]
