"""Batched greedy generation (left padding, length-sorted batches, shared-prefix KV caches, stop at EOS) with a
result cache.

The cache key is (model hash, chat-formatted prompt, decoding parameters), so a prompt answered once by a
checkpoint is never generated again, in this stage or a later one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import StaticCache

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


@dataclass
class _Row:
    """One prompt to decode: its token ids and the (shared) prefix cache covering ``ids[:prefix_len]``."""

    ids: list[int]
    prefix: PrefixCache | None = None

    @property
    def prefix_len(self) -> int:
        return self.prefix.length if self.prefix is not None else 0


def _shared_prefix(model, rows: list[list[int]]) -> PrefixCache | None:
    """The KV cache of the prefix all ``rows`` share, or None when it is too short to pay off."""
    # keep at least one token per row after the prefix: generation starts from the last input token
    shared = min(common_prefix_length(rows), min(len(r) for r in rows) - 1) if rows else 0
    if len(rows) < 2 or shared < MIN_SHARED_PREFIX:
        return None
    return PrefixCache(model, torch.tensor(rows[0][:shared], device=model.device))


@torch.inference_mode()
def _decode_rows(model, tokenizer, rows: list[_Row], params: DecodeParams) -> list[str]:
    """Greedy-decode a batch whose rows may carry different prefix caches.

    Layout per row: [pad..][prefix][pad..][suffix]. Prefix keys/values sit right-aligned in the prefix block of
    a preallocated cache (zeros under padding); the attention mask hides every pad and positions follow the
    mask, so each row is decoded exactly as if it were alone.
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    head = max(r.prefix_len for r in rows)
    width = max(len(r.ids) - r.prefix_len for r in rows)
    input_ids = torch.full((len(rows), head + width), pad, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for i, row in enumerate(rows):
        n = row.prefix_len
        input_ids[i, head - n:head] = torch.tensor(row.ids[:n], dtype=torch.long)
        mask[i, head - n:head] = 1
        suffix = row.ids[n:]
        input_ids[i, head + width - len(suffix):] = torch.tensor(suffix, dtype=torch.long)
        mask[i, head + width - len(suffix):] = 1
    cache = _batch_cache(model, rows, head, head + width + params.max_new_tokens)
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
        **{CACHE_ARG: cache},
    )
    new_tokens = out[:, input_ids.shape[1]:]
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]


def _batch_cache(model, rows: list[_Row], head: int, length: int) -> StaticCache:
    """A preallocated cache of ``length`` positions for the batch, holding each row's prefix right-aligned in the
    first ``head`` positions (zeros under padding).

    Preallocated, because a growing cache copies every key and value of the batch at each decoding step (with a
    long template prefix that copy cost more than the matmuls on CPU)."""
    cache = StaticCache(config=model.config, max_cache_len=length)
    if not head:
        return cache
    template = next(r.prefix for r in rows if r.prefix is not None).layers
    for layer, (k0, v0) in enumerate(template):
        keys = k0.new_zeros((len(rows), k0.shape[1], head, k0.shape[3]))
        values = v0.new_zeros((len(rows), v0.shape[1], head, v0.shape[3]))
        for i, row in enumerate(rows):
            if row.prefix is not None:
                k, v = row.prefix.layers[layer]
                keys[i, :, head - row.prefix_len:] = k[0]
                values[i, :, head - row.prefix_len:] = v[0]
        cache.layers[layer].update(keys, values)
    return cache


def generate_batch(model, tokenizer, texts: list[str], params: DecodeParams) -> list[str]:
    """Greedy-decode one batch of already chat-formatted texts; the prefix they all share is run once."""
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    prefix = _shared_prefix(model, ids)
    return _decode_rows(model, tokenizer, [_Row(r, prefix) for r in ids], params)


def generate_sets(
    model,
    tokenizer,
    sets: dict[str, list[str | list[dict[str, str]]]],
    params: DecodeParams,
    batch_size: int,
    model_hash: str | None = None,
    cache: GenerationCache | None = None,
    description: str = "generate",
) -> dict[str, list[str]]:
    """Responses to several prompt sets (e.g. the plain prompts and each attack's), in order per set.

    The prefix a set's prompts share (an attack template's text before the request) is computed once; rows
    of all sets are then pooled into batches (within a set, sorted by length), so small sets do not each pay
    for a whole decoding loop.
    """
    texts = {name: [chat_text(tokenizer, p, params.system_prompt) for p in prompts] for name, prompts in sets.items()}
    responses: dict[str, list[str | None]] = {}
    keys: dict[str, list[str]] = {}
    for name, items in texts.items():
        keys[name] = [GenerationCache.key(model_hash, t, params) for t in items] if cache and model_hash else []
        cached = cache.get_many(keys[name]) if keys[name] else {}
        responses[name] = [cached.get(k) for k in keys[name]] if keys[name] else [None] * len(items)
    queue: list[tuple[str, int, _Row]] = []
    for name, items in texts.items():
        todo = [i for i, r in enumerate(responses[name]) if r is None]
        if not todo:
            continue
        ids = {i: tokenizer(items[i], add_special_tokens=False)["input_ids"] for i in todo}
        with torch.inference_mode():
            prefix = _shared_prefix(model, [ids[i] for i in todo])
        todo.sort(key=lambda i: (len(ids[i]), i))
        queue += [(name, i, _Row(ids[i], prefix)) for i in todo]
    # sets with prefixes of similar length share batches: every row attends over the batch's longest prefix
    queue.sort(key=lambda item: item[2].prefix_len)
    batches = [queue[s:s + batch_size] for s in range(0, len(queue), batch_size)]
    total = sum(len(v) for v in texts.values())
    fresh = {}
    for batch in track(batches, f"{description} ({len(queue)} new, {total - len(queue)} cached)",
                       total=len(batches)):
        outputs = _decode_rows(model, tokenizer, [row for _, _, row in batch], params)
        for (name, i, _), response in zip(batch, outputs, strict=True):
            responses[name][i] = response
            if keys[name]:
                fresh[keys[name][i]] = response
    if cache and fresh:
        cache.put_many(fresh)
    return {name: [r if r is not None else "" for r in rows] for name, rows in responses.items()}


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
    return generate_sets(model, tokenizer, {description: prompts}, params, batch_size, model_hash, cache,
                         description)[description]
