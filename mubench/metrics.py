"""Rates with seeded bootstrap confidence intervals, and deltas against the base model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rate(flags: Sequence[bool | int]) -> float | None:
    """Share of true flags; None for an empty list (a rate over no rows is not 0)."""
    return float(np.mean(np.asarray(flags, dtype=float))) if len(flags) else None


def bootstrap_ci(flags: Sequence[bool | int], samples: int, confidence: float, seed: int) -> list[float] | None:
    """Percentile bootstrap CI of the mean of 0/1 flags (seeded, so reruns give the same interval); None for an
    empty list."""
    values = np.asarray(flags, dtype=float)
    if values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(samples, values.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return [round(float(low), 6), round(float(high), 6)]


def rate_with_ci(flags: Sequence[bool | int], samples: int, confidence: float, seed: int) -> dict:
    value = rate(flags)
    return {"rate": None if value is None else round(value, 6), "ci": bootstrap_ci(flags, samples, confidence, seed),
            "n": len(flags)}


def delta(value: float | None, base: float | None) -> float | None:
    """value - base, rounded; None when either side is missing."""
    if value is None or base is None:
        return None
    return round(value - base, 6)
