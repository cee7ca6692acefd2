"""Batched greedy generation (left padding, length-sorted batches, stop at EOS) with a result cache.

The cache key is (model hash, chat-formatted prompt, decoding parameters), so a prompt answered once by a
checkpoint is never generated again, in this stage or a later one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mubench.io import stable_json_hash
from mubench.kv import CACHE_ARG, PrefixCache, common_prefix_length
from mubench.progress import track


@dataclass(frozen=True)
class DecodeParams:
    max_new_tokens: int
    system_prompt: str | None = None
    do_sample: bool = False  # greedy: the only mode the benchmark uses (deterministic)


def chat_text(tokenizer, prompt: str | list[dict[str, str]], system_prompt: str | None = None) -> str:
    """The prompt as the model sees it: its own chat template with the generation prompt appended.

    ``prompt`` is one user message or a whole chat (role/content dicts, e.g. an attack's system message and
    demonstrations); ``system_prompt`` is prepended unless the chat brings its own system message.
    """
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


class GenerationCache:
    """A sqlite key -> response store (``MUBENCH_CACHE``/generations.sqlite by default)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS gen (key TEXT PRIMARY KEY, response TEXT NOT NULL)")

    @staticmethod
    def key(model_hash: str, text: str, params: DecodeParams) -> str:
        return stable_json_hash({"model": model_hash, "text": text, "params": asdict(params)})

    def get_many(self, keys: list[str]) -> dict[str, str]:
        found = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(f"SELECT key, response FROM gen WHERE key IN ({marks})", chunk))
        return found

    def put_many(self, items: dict[str, str]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO gen VALUES (?, ?)", items.items())
        self.db.commit()


# a shared prefix shorter than this is recomputed per row: one extra forward call costs more than it saves
MIN_SHARED_PREFIX = 16


@torch.inference_mode()
def generate_batch(model, tokenizer, texts: list[str], params: DecodeParams) -> list[str]:
    """Greedy-decode one batch of already chat-formatted texts.

    The token prefix every text shares (the chat template's system part, an attack template's text before
    the request) is run once and its KV cache reused by every row; the rest is left padded after it
    ([prefix][pad..][suffix]), positions follow the attention mask, so each row is decoded as if alone.
    """
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # keep at least one token per row after the prefix: generation starts from the last input token
    shared = min(common_prefix_length(ids), min(len(r) for r in ids) - 1)
    if len(ids) < 2 or shared < MIN_SHARED_PREFIX:
        shared = 0
    width = max(len(r) for r in ids) - shared
    input_ids = torch.full((len(ids), shared + width), pad, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, tokens in enumerate(ids):
        input_ids[row, shared + width - (len(tokens) - shared):] = torch.tensor(tokens[shared:])
        mask[row, shared + width - (len(tokens) - shared):] = 1
    extra = {}
    if shared:
        input_ids[:, :shared] = torch.tensor(ids[0][:shared])
        mask[:, :shared] = 1
        prefix = PrefixCache(model, input_ids[0, :shared].to(model.device))
        extra[CACHE_ARG] = prefix.expand(len(ids))
    out = model.generate(
        input_ids=input_ids.to(model.device),
        attention_mask=mask.to(model.device),
        max_new_tokens=params.max_new_tokens,
        do_sample=False,
        num_beams=1,
        temperature=None,
        top_p=None,
        top_k=None,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
        **extra,
    )
    new_tokens = out[:, input_ids.shape[1]:]
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]


def generate(
    model,
    tokenizer,
    prompts: list[str | list[dict[str, str]]],
    params: DecodeParams,
    batch_size: int,
    model_hash: str | None = None,
    cache: GenerationCache | None = None,
    description: str = "generate",
) -> list[str]:
    """Responses to ``prompts`` in order. Batches are formed from length-sorted prompts."""
    texts = [chat_text(tokenizer, p, params.system_prompt) for p in prompts]
    keys = [GenerationCache.key(model_hash, t, params) for t in texts] if cache and model_hash else None
    cached = cache.get_many(keys) if keys else {}
    responses: list[str | None] = [cached.get(k) for k in keys] if keys else [None] * len(texts)
    todo = [i for i, r in enumerate(responses) if r is None]
    lengths = {i: len(tokenizer(texts[i], add_special_tokens=False)["input_ids"]) for i in todo}
    todo.sort(key=lambda i: (lengths[i], i))
    batches = [todo[s:s + batch_size] for s in range(0, len(todo), batch_size)]
    fresh = {}
    for batch in track(batches, f"{description} ({len(todo)} new, {len(texts) - len(todo)} cached)",
                       total=len(batches)):
        outputs = generate_batch(model, tokenizer, [texts[i] for i in batch], params)
        for i, response in zip(batch, outputs, strict=True):
            responses[i] = response
            if keys:
                fresh[keys[i]] = response
    if cache and fresh:
        cache.put_many(fresh)
    return [r if r is not None else "" for r in responses]
