"""Paired statistics of a variant against its base: every variant answers the same prompts, so each delta is
tested on the pairs (base outcome, variant outcome) of the same items.

- 0/1 outcomes (attack success, refusal, correct, degenerate): the delta of rates with a paired bootstrap CI
  (items resampled together) and the exact two-sided McNemar p-value (a binomial test on the discordant pairs),
  Holm-corrected across the variants of a model;
- continuous outcomes (drift KL, NLL per prompt): the delta of means with a paired bootstrap CI; such a delta
  counts as significant when its CI excludes 0;
- a method unlearned with several seeds: each item's outcome is its mean over the seeds; the delta gets the
  paired bootstrap CI (items resampled, seeds kept together) and, for 0/1 outcomes, a paired sign-flip
  permutation p-value (Monte Carlo, seeded), Holm-corrected across the methods of a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import comb

import numpy as np

from mubench.core.errors import InvalidValue


def mcnemar_exact(before: Sequence[bool], after: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes: with b = pairs 1->0 and c = pairs 0->1,
    p = min(1, 2 * P(Binomial(b + c, 1/2) <= min(b, c))); 1.0 when no pair changed."""
    if len(before) != len(after):
        raise InvalidValue(f"paired outcomes of different lengths: {len(before)} and {len(after)}")
    b = sum(1 for x, y in zip(before, after, strict=True) if x and not y)
    c = sum(1 for x, y in zip(before, after, strict=True) if y and not x)
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_bootstrap_ci(before: Sequence[float], after: Sequence[float], samples: int, confidence: float,
                        seed: int, strata: Sequence[str] | None = None) -> list[float] | None:
    """Percentile bootstrap CI of mean(after) - mean(before), resampling pairs (seeded). With ``strata``, pairs
    are resampled within each stratum and the delta is the mean of the strata's deltas (as a mean over tasks
    is). None for no pairs."""
    if len(before) != len(after):
        raise InvalidValue(f"paired outcomes of different lengths: {len(before)} and {len(after)}")
    if not before:
        return None
    diff = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    groups = [np.arange(len(diff))] if strata is None else [
        np.flatnonzero(np.asarray(strata) == s) for s in sorted(set(strata))]
    rng = np.random.default_rng(seed)
    means = np.zeros(samples)
    for index in groups:
        picks = index[rng.integers(0, index.size, size=(samples, index.size))]
        means += diff[picks].mean(axis=1) / len(groups)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return [round(float(low), 6) + 0.0, round(float(high), 6) + 0.0]


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone); None entries are left out of the family."""
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[i] = running
    return adjusted


def sign_flip_p(diff: Sequence[float], samples: int, seed: int) -> float:
    """Two-sided paired permutation p-value of mean(diff) = 0: each item's difference keeps its size and gets a
    random sign (Monte Carlo, seeded); p = (1 + #{|flipped sum| >= |observed sum|}) / (1 + samples). 1.0 when
    every difference is 0."""
    d = np.asarray(diff, dtype=float)
    observed = abs(d.sum())
    if not d.any():
        return 1.0
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(samples, d.size))
    extreme = int((np.abs(signs @ d) >= observed - 1e-12).sum())
    return (1 + extreme) / (1 + samples)


def paired_delta(base: Mapping[str, float], variant: Mapping[str, float], binary: bool, samples: int,
                 confidence: float, seed: int, strata: Mapping[str, str] | None = None,
                 seed_mean: bool = False) -> dict:
    """``{delta, ci, p, n}`` of ``variant`` vs ``base`` over their shared item keys (both must hold the same
    keys: the same prompts were evaluated). ``p`` is McNemar's for 0/1 outcomes, None for continuous ones;
    with ``seed_mean`` (``variant`` holds each item's mean over a method's seeds) it is the sign-flip p."""
    if set(base) != set(variant):
        missing = sorted(set(base) ^ set(variant))
        raise InvalidValue(f"the variant and its base were scored on different items (e.g. {missing[0]}); re-run "
                         "`mubench evaluate` for both with the same params")
    keys = sorted(base)
    before, after = [base[k] for k in keys], [variant[k] for k in keys]
    groups = None if strata is None else [strata[k] for k in keys]
    if not keys:
        return {"delta": None, "ci": None, "p": None, "n": 0}
    if groups is None:
        delta = float(np.mean(after) - np.mean(before))
    else:
        delta = float(np.mean([np.mean([a - b for a, b, g in zip(after, before, groups, strict=True) if g == s])
                               for s in sorted(set(groups))]))
    if not binary:
        p = None
    elif seed_mean:
        p = sign_flip_p([a - b for a, b in zip(after, before, strict=True)], samples, seed)
    else:
        p = mcnemar_exact(before, after)
    return {"delta": round(delta, 6) + 0.0,
            "ci": paired_bootstrap_ci(before, after, samples, confidence, seed, groups),
            "p": None if p is None else round(p, 6), "n": len(keys)}


def significant(test: dict, confidence: float) -> bool:
    """Holm-adjusted McNemar p below 1 - confidence (0/1 outcomes), or a CI that excludes 0 (continuous)."""
    if test.get("p_holm") is not None:
        return test["p_holm"] < 1.0 - confidence
    ci = test.get("ci")
    return ci is not None and (ci[0] > 0 or ci[1] < 0)
