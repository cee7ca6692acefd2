"""Shared-prefix KV caches: compute a prompt prefix once, reuse it for every row that starts with it.

Used by generation (an attack template's text before the request is the same for every seed prompt) and by
GCG (the prompt before the suffix); ``returned_cache`` also serves utility scoring's batched contexts.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from transformers import DynamicCache


def _cache_kwarg() -> str:
    """transformers >= 5.2x names the cache argument ``cache``; earlier 5.x ``past_key_values``."""
    from transformers import LlamaForCausalLM

    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


CACHE_ARG = _cache_kwarg()


def returned_cache(output):
    """The KV cache a forward call returned (``cache`` in transformers >= 5.2x, else ``past_key_values``)."""
    return getattr(output, "cache", None) or output.past_key_values


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix shared by every row."""
    if not rows:
        return 0
    first, n = rows[0], min(len(r) for r in rows)
    for i in range(n):
        token = first[i]
        if any(r[i] != token for r in rows):
            return i
    return n


class PrefixCache:
    """The keys/values of one prefix (batch 1), handed out as a cache of any batch size."""

    def __init__(self, model, prefix_ids: torch.Tensor) -> None:
        """``prefix_ids``: 1-D token ids; runs the model once over them."""
        with torch.no_grad():
            out = model(input_ids=prefix_ids[None], use_cache=True, logits_to_keep=1)
        cache = returned_cache(out)
        self.layers = [(layer.keys, layer.values) for layer in cache.layers]
        self.length = int(prefix_ids.shape[0])

    def expand(self, batch: int) -> DynamicCache:
        """A fresh cache holding the prefix for ``batch`` rows (views, no copy; appends do not touch it)."""
        return DynamicCache(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
                                            for k, v in self.layers])
