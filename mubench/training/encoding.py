"""(prompt, response) pairs as model inputs: chat-formatted token ids with labels on the response only.

Shared by unlearning (``train``), relearning and drift scoring (``drift``).
"""

from __future__ import annotations

import torch

from mubench.core.records import CorpusPair
from mubench.engine.generate import chat_text
from mubench.training.losses import IGNORE


def encode_pairs(tokenizer, pairs: list[CorpusPair], max_length: int, system_prompt: str | None = None) -> list[dict]:
    """Tokenise (prompt, response) pairs in the chat format; labels are -100 on prompt tokens."""
    encoded = []
    eos = tokenizer.eos_token or ""
    for pair in pairs:
        prompt_ids = tokenizer(chat_text(tokenizer, pair.prompt, system_prompt),
                               add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(pair.response + eos, add_special_tokens=False)["input_ids"]
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
