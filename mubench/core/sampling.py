"""Seeded, category-stratified sampling: one rule for every split (build) and for the attack seed prompts."""

from __future__ import annotations

import random
from collections import defaultdict


def stratified_sample(rows: list[dict], n: int, seed: int) -> list[dict]:
    """``n`` rows, proportional per category (largest remainder), seeded; returned sorted by id."""
    if n >= len(rows):
        return sorted(rows, key=lambda r: r["id"])
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[str(row.get("category"))].append(row)
    keys = sorted(groups)
    quotas = {k: n * len(groups[k]) / len(rows) for k in keys}
    alloc = {k: int(quotas[k]) for k in keys}
    leftovers = sorted(keys, key=lambda k: (-(quotas[k] - alloc[k]), k))
    for k in leftovers[: n - sum(alloc.values())]:
        alloc[k] += 1
    rng = random.Random(seed)
    picked = []
    for k in keys:
        members = sorted(groups[k], key=lambda r: r["id"])
        picked.extend(rng.sample(members, alloc[k]))
    return sorted(picked, key=lambda r: r["id"])
