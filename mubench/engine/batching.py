"""Cutting variable-length rows into padded batches at the lowest compute."""

from __future__ import annotations

from collections.abc import Sequence

# one forward call's fixed cost in padded-token units: a pass over every weight (about 70 ms for SmolLM2-135M
# on 2 CPU cores, where one token of one row costs about 1.5 ms)
CALL_COST = 48


def length_batches(lengths: Sequence[int], max_rows: int, call_cost: int = CALL_COST) -> list[list[int]]:
    """Indices of ``lengths`` in batches of at most ``max_rows``, minimising padded tokens + ``call_cost`` per
    batch (each row padded to its batch's longest). Rows are sorted by length (ties by index) and cut into
    contiguous runs by dynamic programming; deterministic."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    best = [0] + [None] * len(order)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        width = lengths[order[end - 1]]  # the longest of any run ending here (sorted)
        for start in range(max(end - max_rows, 0), end):
            cost = best[start] + (end - start) * width + call_cost
            if best[end] is None or cost < best[end]:
                best[end], cut[end] = cost, start
    batches, end = [], len(order)
    while end:
        batches.append(order[cut[end]:end])
        end = cut[end]
    return batches[::-1]
