"""Seeded, category-stratified sampling: one rule for every split (build) and for the attack seed prompts."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, TypeVar

T = TypeVar("T")


def _field(row: Any, key: str) -> Any:
    """``key`` of a row: a dict (a dataset's rows while ``build`` assembles them) or a record."""
    return row.get(key) if isinstance(row, dict) else getattr(row, key, None)


def stratified_sample(rows: list[T], n: int, seed: int) -> list[T]:
    """``n`` rows, proportional per category (largest remainder), seeded; returned sorted by id."""
    if n >= len(rows):
        return sorted(rows, key=lambda r: _field(r, "id"))
    groups: dict[str, list[T]] = defaultdict(list)
    for row in rows:
        groups[str(_field(row, "category"))].append(row)
    keys = sorted(groups)
    quotas = {k: n * len(groups[k]) / len(rows) for k in keys}
    alloc = {k: int(quotas[k]) for k in keys}
    leftovers = sorted(keys, key=lambda k: (-(quotas[k] - alloc[k]), k))
    for k in leftovers[: n - sum(alloc.values())]:
        alloc[k] += 1
    rng = random.Random(seed)
    picked = []
    for k in keys:
        members = sorted(groups[k], key=lambda r: _field(r, "id"))
        picked.extend(rng.sample(members, alloc[k]))
    return sorted(picked, key=lambda r: _field(r, "id"))
