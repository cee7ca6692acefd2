"""Rates with seeded bootstrap confidence intervals, and deltas against the base model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rate(flags: Sequence[bool | int]) -> float:
    """Share of true flags (0.0 for an empty list)."""
    return float(np.mean(np.asarray(flags, dtype=float))) if len(flags) else 0.0


def bootstrap_ci(flags: Sequence[bool | int], samples: int, confidence: float, seed: int) -> list[float]:
    """Percentile bootstrap CI of the mean of 0/1 flags (seeded, so reruns give the same interval)."""
    values = np.asarray(flags, dtype=float)
    if values.size == 0:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(samples, values.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return [round(float(low), 6), round(float(high), 6)]


def rate_with_ci(flags: Sequence[bool | int], samples: int, confidence: float, seed: int) -> dict:
    return {"rate": round(rate(flags), 6), "ci": bootstrap_ci(flags, samples, confidence, seed),
            "n": len(flags)}


def delta(value: float | None, base: float | None) -> float | None:
    """value - base, rounded; None when either side is missing."""
    if value is None or base is None:
        return None
    return round(value - base, 6)
