"""Batched greedy generation (shared-prefix KV caches, per-set prefill, length-sorted decoding batches, stop at
EOS) with a result cache.

Decoding runs over a preallocated (static) KV cache. With ``generation.decode: graphs`` the decoding step is also
compiled on a GPU (transformers' auto-compile of the forward; ``graph_compile_config``), which removes the
per-step Python and kernel-launch overhead that otherwise sets a GPU's decoding speed. A compiled graph
holds one shape, so that path fixes the shapes: full batches of ``batch_size`` (the last one padded with copies
of its last row, whose outputs are dropped) and cache lengths rounded up to ``GRAPH_LENGTH_STEP``; a stage then
compiles one graph per cache length it reaches (logged), at most ``ceil((longest prompt + max_new_tokens) /
GRAPH_LENGTH_STEP)``. Prefill stays eager (its shapes vary with every batch).

The cache key is (generation context, chat-formatted prompt, decoding parameters), where the context is the
whole cause of a response besides the prompt (``mubench.engine.identity``: weights, config, tokenizer, device,
dtype, libraries, kernel paths, this engine's code, batch size), so a prompt answered once by a checkpoint is
never generated again, in this stage or a later one, and never served to a run that could answer it otherwise.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import CompileConfig, StaticCache

from mubench.core.environment import cache_dir, generation_cache_on
from mubench.core.errors import InvalidValue
from mubench.core.io import sha256_text, stable_json_hash
from mubench.core.progress import log, track
from mubench.engine.batching import length_batches
from mubench.engine.identity import generation_context
from mubench.engine.kv import CACHE_ARG, PrefixCache, common_prefix_length, returned_cache


@dataclass(frozen=True)
class DecodeParams:
    max_new_tokens: int
    system_prompt: str | None = None
    do_sample: bool = False  # greedy: the only mode the benchmark uses (deterministic)
    graphs: bool = False  # decode compiled over fixed shapes (``generation.decode: graphs``); in the cache key

    @classmethod
    def of(cls, generation) -> DecodeParams:
        """The decoding of the model under test, from the profile's ``generation`` settings."""
        return cls(generation.max_new_tokens, generation.system_prompt, graphs=generation.graphs)


# graph decoding rounds a batch's cache length up to a multiple of this: few shapes, at most this much padding
GRAPH_LENGTH_STEP = 128
# torch.compile's recompile limit per function (8 by default, then it silently runs eagerly): above the number of
# cache lengths a profile reaches (4096 tokens / GRAPH_LENGTH_STEP)
GRAPH_RECOMPILE_LIMIT = 64


def graph_cache_length(length: int) -> int:
    """The static cache length graph decoding uses for a batch that needs ``length`` positions."""
    return -(-length // GRAPH_LENGTH_STEP) * GRAPH_LENGTH_STEP


def graph_compile_config(device: str) -> CompileConfig | None:
    """How the decoding step is compiled on ``device``, one static shape per graph: on a GPU, Inductor with CUDA
    graphs (``reduce-overhead``). None elsewhere: a CPU has no launch overhead to remove, and capturing the step
    costs 5-6 s per shape in every stage, so a CPU keeps the fixed shapes (the same batches and cache lengths as
    the GPU) and compiles nothing. The compiled step itself is tested on the CPU through Inductor's C++ backend
    (``tests/test_generate.py``), which generates code from the same capture."""
    if device != "cuda":
        return None
    import torch._dynamo.config

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, GRAPH_RECOMPILE_LIMIT)
    return CompileConfig(fullgraph=False, dynamic=False, mode="reduce-overhead")


class NoChatTemplateError(InvalidValue):
    """A chat model whose tokenizer carries no chat template: there is no defined way to prompt it."""


def system_role_supported(tokenizer) -> bool:
    """Whether the tokenizer's chat template accepts a system message (Mistral-Instruct's raises on one)."""
    return _accepts_system(ChatTemplate(tokenizer))


class ChatTemplate:
    """A tokenizer seen through its chat template: equal (and hashed) by the template's text and the special
    tokens it may write, so what is learned about a template is learned once per process. It holds the
    tokenizer weakly: a cache keyed by templates keeps no tokenizer (and its vocabulary) alive."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer = weakref.ref(tokenizer)
        self.key = (getattr(tokenizer, "chat_template", None), tokenizer.bos_token, tokenizer.eos_token)

    @property
    def tokenizer(self):
        """The tokenizer this template was read from (alive while a caller holds it: a cache miss is computed
        with the caller's own template)."""
        return self._tokenizer()

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatTemplate) and self.key == other.key


@functools.lru_cache(maxsize=64)
def _accepts_system(template: ChatTemplate) -> bool:
    try:
        template.tokenizer.apply_chat_template([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                                               tokenize=False, add_generation_prompt=True)
    except Exception:  # jinja's raise_exception: TemplateError, or whatever the template raises
        return False
    return True


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The system message folded into the first user turn (blank line between), for templates without a
    system role: what Mistral's own documentation suggests."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], list(messages[1:])
    first_user = next((i for i, m in enumerate(rest) if m["role"] == "user"), None)
    if first_user is None:
        return [{"role": "user", "content": system}, *rest]
    rest[first_user] = {"role": "user", "content": f"{system}\n\n{rest[first_user]['content']}"}
    return rest


def chat_text(tokenizer, prompt: str | list[dict[str, str]], system_prompt: str | None = None) -> str:
    """The prompt as the model sees it: its own chat template with the generation prompt appended.

    ``prompt`` is one user message or a whole chat (role/content dicts, e.g. an attack's system message and
    demonstrations); ``system_prompt`` is prepended unless the chat brings its own system message. Where the
    template rejects a system role, the system message is folded into the first user turn (``fold_system``).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise NoChatTemplateError(f"{tokenizer.name_or_path or 'this model'}: its tokenizer has no chat template; "
                                  "use the chat/instruct release of the model, or add a chat_template to its "
                                  "tokenizer_config.json")
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    if messages[0]["role"] == "system" and not system_role_supported(tokenizer):
        messages = fold_system(messages)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


class GenerationCache:
    """A sqlite key -> response store (``MUBENCH_CACHE``/generations.sqlite by default; ``MUBENCH_GEN_CACHE=0``
    turns it off).

    Each row carries the sha256 of its key and response; a row that fails it (edited or corrupted) is not a
    result: it is dropped and generated again. The model hash in the key is verified against the weights when
    the checkpoint is loaded (``models.verified_meta``)."""

    TABLE = "responses"

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK):
                raise PermissionError(13, "not writable", str(path.parent))
        except OSError as exc:
            raise OSError(exc.errno, f"the generation cache folder is not writable ({exc.strerror}); set "
                          "MUBENCH_CACHE to a writable folder, or MUBENCH_GEN_CACHE=0 to run without the cache",
                          str(path.parent)) from None
        try:
            self.db = self._open(path)
        except sqlite3.OperationalError as exc:  # a read-only file, a locked or full disk: one line, before work
            raise OSError(13, f"the generation cache cannot be opened ({exc}); set MUBENCH_CACHE to a writable "
                          "folder, or MUBENCH_GEN_CACHE=0", str(path)) from None
        except sqlite3.DatabaseError as exc:  # not a database (garbage, truncated): it is only a cache
            aside = path.with_name(f"{path.name}.corrupt")
            path.replace(aside)
            log(f"[cache] {path} is unreadable ({exc}); moved to {aside.name}, starting an empty cache")
            self.db = self._open(path)
        self.rejected = 0  # rows that failed their checksum in this process

    def _open(self, path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path)
        try:
            db.execute(f"CREATE TABLE IF NOT EXISTS {self.TABLE} "
                       "(key TEXT PRIMARY KEY, response TEXT NOT NULL, sha256 TEXT NOT NULL)")
            db.execute(f"SELECT count(*) FROM {self.TABLE}").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    @staticmethod
    def key(context: str, text: str, params: DecodeParams) -> str:
        """``context``: ``identity.generation_context`` of the model as loaded."""
        return stable_json_hash({"context": context, "text": text, "params": asdict(params)})

    @staticmethod
    def checksum(key: str, response: str) -> str:
        return sha256_text(f"{key}\n{response}")

    def get_many(self, keys: list[str]) -> dict[str, str]:
        """Responses found for ``keys``; rows whose checksum fails are deleted and left out."""
        found, bad = {}, []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, response, digest in self.db.execute(
                    f"SELECT key, response, sha256 FROM {self.TABLE} WHERE key IN ({marks})", chunk):
                if digest == self.checksum(key, response):
                    found[key] = response
                else:
                    bad.append(key)
        if bad:
            self.rejected += len(bad)
            self.db.executemany(f"DELETE FROM {self.TABLE} WHERE key = ?", [(k,) for k in bad])
            self.db.commit()
            log(f"[cache] {len(bad)} cached response(s) failed their checksum; generating them again")
        return found

    def put_many(self, items: dict[str, str]) -> None:
        self.db.executemany(f"INSERT OR REPLACE INTO {self.TABLE} VALUES (?, ?, ?)",
                            [(k, v, self.checksum(k, v)) for k, v in items.items()])
        self.db.commit()


# a shared prefix shorter than this is recomputed per row: one extra forward call costs more than it saves
def user_cache() -> GenerationCache | None:
    """The generation cache of this user (``MUBENCH_CACHE``/generations.sqlite), or None when
    ``MUBENCH_GEN_CACHE=0`` turns it off (tests, timing runs)."""
    if not generation_cache_on():
        return None
    return GenerationCache(cache_dir() / "generations.sqlite")


MIN_SHARED_PREFIX = 16


@dataclass
class PromptRow:
    """One prompt to decode: its token ids, the (shared) prefix cache covering ``ids[:prefix_len]`` and, once
    prefilled, the keys/values of the rest but its last token (per layer, ``(heads, tokens, head_dim)``)."""

    ids: list[int]
    prefix: PrefixCache | None = None
    suffix: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def prefix_len(self) -> int:
        return self.prefix.length if self.prefix is not None else 0

    @property
    def cached_len(self) -> int:
        """Tokens in the cache after prefill: all but the last, which starts decoding."""
        return len(self.ids) - 1


def _shared_prefix(model, rows: list[list[int]]) -> PrefixCache | None:
    """The KV cache of the prefix all ``rows`` share, or None when it is too short to pay off."""
    # keep at least one token per row after the prefix: generation starts from the last input token
    shared = min(common_prefix_length(rows), min(len(r) for r in rows) - 1) if rows else 0
    if len(rows) < 2 or shared < MIN_SHARED_PREFIX:
        return None
    return PrefixCache(model, torch.tensor(rows[0][:shared], device=model.device))


@torch.inference_mode()
def prefill_rows(model, rows: list[PromptRow], pad: int) -> None:
    """Run the tokens between the shared prefix and the last token of rows that share one prefix (one call).

    Rows are left padded to the longest; positions are given explicitly (they continue the prefix), so a row's
    keys/values equal those of a lone run. Each row keeps its own slice of the result."""
    p = rows[0].prefix_len
    parts = [row.ids[p:-1] for row in rows]
    width = max(len(part) for part in parts)
    if not width:  # every row is the prefix plus its last token (repeated prompts): nothing to run
        prefix = rows[0].prefix
        empty = [(k[0, :, :0], v[0, :, :0]) for k, v in prefix.layers] if prefix is not None else []
        for row in rows:
            row.suffix = empty
        return
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), p + width), dtype=torch.long)
    mask[:, :p] = 1
    positions = torch.zeros_like(ids)
    for i, part in enumerate(parts):
        if part:
            ids[i, width - len(part):] = torch.tensor(part, dtype=torch.long)
            mask[i, p + width - len(part):] = 1
            positions[i, width - len(part):] = torch.arange(p, p + len(part))
    device = model.device
    prefix = {CACHE_ARG: rows[0].prefix.expand(len(rows))} if rows[0].prefix is not None else {}
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                use_cache=True, logits_to_keep=1, **prefix)
    layers = returned_cache(out).layers
    for i, (row, part) in enumerate(zip(rows, parts, strict=True)):
        start = p + width - len(part)
        row.suffix = [(layer.keys[i, :, start:p + width].clone(), layer.values[i, :, start:p + width].clone())
                      for layer in layers]


@torch.inference_mode()
def _decode_rows(model, tokenizer, rows: list[PromptRow], params: DecodeParams, pad: int,
                 pad_to: int = 0) -> list[str]:
    """Greedy-decode a batch of prefilled rows (they may come from different prompt sets).

    Each row's cached keys/values ([prefix][rest]) sit right-aligned in a preallocated cache (zeros under
    padding) and its last token starts decoding; the attention mask hides the padding and positions follow the
    mask, so each row is decoded exactly as if it were alone. ``pad_to``: the batch is filled up to that many rows
    with copies of its last row (graph decoding's fixed batch); their outputs are dropped."""
    real = len(rows)
    rows = rows + [rows[-1]] * max(0, pad_to - real)
    head = max(row.cached_len for row in rows)
    length = head + 1 + params.max_new_tokens
    compile_config = graph_compile_config(model.device.type) if params.graphs else None
    if params.graphs:
        length = graph_cache_length(length)
    # a StaticCache turns on torch.compile on CUDA unless told not to; eager decoding must not compile (every new
    # batch shape would recompile)
    compiling = {"compile_config": compile_config} if compile_config else {"disable_compile": True}
    input_ids = torch.full((len(rows), head + 1), pad, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for i, row in enumerate(rows):
        input_ids[i, head] = row.ids[-1]
        mask[i, head - row.cached_len:] = 1
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
        eos_token_id=end_tokens(model, tokenizer),
        **compiling,
        **{CACHE_ARG: batch_cache(model, rows, head, length)},
    )
    new_tokens = out[:real, input_ids.shape[1]:]
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]


def end_tokens(model, tokenizer) -> list[int]:
    """Every token that ends a reply: the tokenizer's EOS and each id the model's generation config names
    (Llama-3-Instruct ends its turns with ``<|eot_id|>``, which is not its tokenizer's EOS)."""
    ids = [tokenizer.eos_token_id]
    config_ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += config_ids if isinstance(config_ids, list) else [config_ids]
    return sorted({int(i) for i in ids if i is not None})


def batch_cache(model, rows: list[PromptRow], head: int, length: int) -> StaticCache:
    """A preallocated cache of ``length`` positions for the batch, holding each row's prefilled keys/values
    right-aligned in the first ``head`` positions (zeros under padding).

    Preallocated, because a growing cache copies every key and value of the batch at each decoding step (with a
    long template prefix that copy cost more than the matmuls on CPU)."""
    cache = StaticCache(config=model.config, max_cache_len=length)
    if not head:
        return cache
    for layer, (k0, v0) in enumerate(next(r.suffix for r in rows if r.suffix)):
        keys = k0.new_zeros((len(rows), k0.shape[0], head, k0.shape[2]))
        values = v0.new_zeros((len(rows), v0.shape[0], head, v0.shape[2]))
        for i, row in enumerate(rows):
            start = head - row.cached_len
            if row.prefix is not None:
                k, v = row.prefix.layers[layer]
                keys[i, :, start:start + row.prefix_len] = k[0]
                values[i, :, start:start + row.prefix_len] = v[0]
            if row.suffix:
                k, v = row.suffix[layer]
                keys[i, :, head - k.shape[1]:] = k
                values[i, :, head - v.shape[1]:] = v
        cache.layers[layer].update(keys, values)
    return cache


def _run_batch(model, tokenizer, rows: list[PromptRow], params: DecodeParams, pad_to: int = 0) -> list[str]:
    """Prefill ``rows`` (per shared prefix, in as few calls as padding allows) and decode them together (padded
    to ``pad_to`` rows, see ``_decode_rows``)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    groups: dict[int, list[PromptRow]] = {}
    for row in rows:
        groups.setdefault(id(row.prefix), []).append(row)
    for group in groups.values():
        # a set's rows may still differ much in length (MMLU retain questions: 50-400 tokens): cut where
        # padding would cost more than another forward call
        for part in length_batches([len(r.ids) for r in group], len(group)):
            prefill_rows(model, [group[i] for i in part], pad)
    try:
        return _decode_rows(model, tokenizer, rows, params, pad, pad_to)
    finally:
        for row in rows:
            row.suffix = None  # free the batch's keys/values


def generate_batch(model, tokenizer, texts: list[str], params: DecodeParams) -> list[str]:
    """Greedy-decode one batch of already chat-formatted texts; the prefix they all share is run once."""
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    with torch.inference_mode():
        prefix = _shared_prefix(model, ids)
    return _run_batch(model, tokenizer, [PromptRow(r, prefix) for r in ids], params)


def decode_batches(queue: list, batch_size: int, full: bool) -> list[list]:
    """``queue`` (sorted by length) cut into batches of at most ``batch_size``: full ones (one graph shape; the
    last may be short) or balanced sizes (every batch pays one pass over all weights per decoding step)."""
    if full:
        return [queue[start:start + batch_size] for start in range(0, len(queue), batch_size)]
    count = -(-len(queue) // batch_size) if queue else 0
    return [queue[len(queue) * b // count:len(queue) * (b + 1) // count] for b in range(count)]


def generate_sets(
    model,
    tokenizer,
    sets: dict[str, list[str | list[dict[str, str]]]],
    params: DecodeParams,
    batch_size: int,
    model_hash: str | None = None,
    cache: GenerationCache | None = None,
    description: str = "generate",
    chat: bool = True,
) -> dict[str, list[str]]:
    """Responses to several prompt sets (e.g. the plain prompts and each attack's), in order per set; ``chat``:
    each prompt goes through the model's chat template (``chat_text``), else it is the raw text to continue.

    The prefix a set's prompts share (an attack template's text before the request) is computed once; rows
    of all sets are then pooled into batches of similar total length (at most ``batch_size`` rows), so small
    sets do not each pay for a whole decoding loop. Within a batch each set's rows are prefilled in one call.
    With ``params.graphs`` the batches are full (``batch_size`` rows, the last padded): one graph shape.
    """
    texts = {name: [chat_text(tokenizer, p, params.system_prompt) if chat else p for p in prompts]
             for name, prompts in sets.items()}
    responses: dict[str, list[str | None]] = {}
    keys: dict[str, list[str]] = {}
    context = generation_context(model_hash, model, tokenizer, batch_size) if cache and model_hash else None
    for name, items in texts.items():
        keys[name] = [GenerationCache.key(context, t, params) for t in items] if context else []
        cached = cache.get_many(keys[name]) if keys[name] else {}
        responses[name] = [cached.get(k) for k in keys[name]] if keys[name] else [None] * len(items)
    queue: list[tuple[str, int, PromptRow]] = []
    for name, items in texts.items():
        todo = [i for i, r in enumerate(responses[name]) if r is None]
        if not todo:
            continue
        ids = {i: tokenizer(items[i], add_special_tokens=False)["input_ids"] for i in todo}
        with torch.inference_mode():
            prefix = _shared_prefix(model, [ids[i] for i in todo])
        queue += [(name, i, PromptRow(ids[i], prefix)) for i in todo]
    # Batches of similar total length: a row's padding in the decoding cache only costs attention reads, while
    # prefill (one call per set within a batch) never pads a row beyond its own set's longest. Balanced sizes,
    # because every batch pays one pass over all weights per decoding step whatever its size.
    queue.sort(key=lambda item: (len(item[2].ids), item[0], item[1]))
    batches = decode_batches(queue, batch_size, params.graphs)
    total = sum(len(v) for v in texts.values())
    fresh, lengths = {}, set()
    for batch in track(batches, f"{description} ({len(queue)} new, {total - len(queue)} cached)",
                       total=len(batches)):
        rows = [row for _, _, row in batch]
        if params.graphs:
            lengths.add(graph_cache_length(max(len(row.ids) for row in rows) + params.max_new_tokens))
        outputs = _run_batch(model, tokenizer, rows, params, batch_size if params.graphs else 0)
        for (name, i, _), response in zip(batch, outputs, strict=True):
            responses[name][i] = response
            if keys[name]:
                fresh[keys[name][i]] = response
    if cache and fresh:
        cache.put_many(fresh)
    if lengths:
        log(f"[generate] {description}: graph decoding at batch {batch_size}, cache length(s) "
            f"{', '.join(map(str, sorted(lengths)))} ({len(lengths)} shape(s))")
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
