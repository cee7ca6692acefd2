"""Evidence a reviewer can trust: paired tests against hand-computed cases, the degenerate-output detector,
and utility drift on the tiny model (0 for the base itself, rising under gradient ascent)."""

from __future__ import annotations

import copy

import pytest
import torch

from mubench.core.records import CorpusPair
from mubench.judges.quality import degenerate
from mubench.methods import METHODS
from mubench.report.plots import pareto_front
from mubench.scoring.drift import drift_batch, drift_scores
from mubench.stats.paired import holm, mcnemar_exact, paired_bootstrap_ci, paired_delta, significant
from mubench.training.loop import collate, encode_pairs, unlearn
from mubench.training.losses import IGNORE, response_logits
from tests.helpers.rows import pair


# ---------------------------------------------------------------- McNemar, bootstrap, Holm
@pytest.mark.parametrize(("b", "c", "expected"), [
    (0, 0, 1.0),                 # no pair changed
    (5, 0, 2 / 32),              # one-sided: 2 * 0.5^5
    (3, 1, 2 * (1 + 4) / 16),    # 2 * P(X <= 1), X ~ Bin(4, 1/2)
    (10, 0, 2 / 1024),
    (4, 4, 1.0),                 # balanced: capped at 1
])
def test_mcnemar_exact_hand_computed(b, c, expected):
    concordant = [(True, True)] * 3 + [(False, False)] * 2
    pairs = concordant + [(True, False)] * b + [(False, True)] * c
    before, after = [p[0] for p in pairs], [p[1] for p in pairs]
    assert mcnemar_exact(before, after) == pytest.approx(expected)
    assert mcnemar_exact(after, before) == pytest.approx(expected)  # symmetric


def test_mcnemar_rejects_unpaired_lengths():
    with pytest.raises(ValueError, match="different lengths"):
        mcnemar_exact([True], [True, False])


def test_paired_bootstrap_all_equal_constant_shift_and_bracketing():
    same = [1, 0, 1, 1, 0]
    assert paired_bootstrap_ci(same, same, 200, 0.95, 0) == [0.0, 0.0]
    assert paired_bootstrap_ci([0] * 6, [1] * 6, 200, 0.95, 0) == [1.0, 1.0]
    before, after = [1] * 20, [1] * 10 + [0] * 10
    low, high = paired_bootstrap_ci(before, after, 1000, 0.95, 0)
    assert low < -0.5 < high and high <= -0.2
    assert paired_bootstrap_ci(before, after, 1000, 0.95, 0) == [low, high]  # seeded


def test_stratified_delta_is_the_mean_of_the_strata_deltas():
    base = {"a/1": 1, "a/2": 1, "b/1": 0, "b/2": 0, "b/3": 0, "b/4": 0}
    variant = {"a/1": 0, "a/2": 0, "b/1": 0, "b/2": 0, "b/3": 0, "b/4": 1}
    strata = {k: k[0] for k in base}
    test = paired_delta(base, variant, True, 500, 0.95, 0, strata)
    assert test["delta"] == pytest.approx((-1.0 + 0.25) / 2)  # task a: -1, task b: +1/4
    assert test["p"] == pytest.approx(mcnemar_exact([1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]))


def test_paired_delta_refuses_different_items():
    with pytest.raises(ValueError, match="different items"):
        paired_delta({"x": 1}, {"y": 1}, True, 10, 0.95, 0)


def test_holm_hand_computed():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, None, 0.9]) == [pytest.approx(1.0), None, pytest.approx(1.0)]
    assert holm([]) == []


def test_significance_rule():
    assert significant({"p_holm": 0.01, "ci": [-0.2, 0.1]}, 0.95)
    assert not significant({"p_holm": 0.2, "ci": [-0.3, -0.1]}, 0.95)
    assert significant({"p": None, "p_holm": None, "ci": [0.01, 0.3]}, 0.95)  # continuous: CI excludes 0
    assert not significant({"p": None, "p_holm": None, "ci": [0.0, 0.3]}, 0.95)


def test_pareto_front():
    points = [(0.9, 0.0), (0.5, 0.2), (0.6, 0.3), (0.4, 0.5), (0.9, 0.1)]
    assert pareto_front(points) == [3, 1, 0]


# ---------------------------------------------------------------- degenerate outputs
@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"),
    ("  \n ", "empty"),
    ("the the the the end", "repetition"),
    ("I'm sorry. I'm sorry. I'm sorry. I'm sorry.", "repetition"),
    ("Title: A Day Out\n\nTitle: A Day Out\n\nTitle: A Day Out\n\nTitle:", "repetition"),
    ("Wow!!!!!!!!!!!!", "repetition"),
    ("xkcdq bfrtzk qwrtp zzkpt mn", "non_words"),
    ("\u2728\u2764\u2728\u2764 \u2728\u2764\u2728\u2764", "non_words"),
    ("Paris is the capital of France.", None),
    ("No.", None),
    ("def add(x, y): return x + y", None),
    ("1. Preheat the oven. 2. Mix flour and sugar. 3. Bake for 20 minutes.", None),
    ("I can't help with that, but I can suggest a safer topic.", None),
])
def test_degenerate_detector(text, reason):
    assert degenerate(text) == reason


# ---------------------------------------------------------------- drift
def test_drift_batch_against_its_formula(tiny_model, tokenizer, pairs):
    base = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.05 * torch.randn_like(p, generator=torch.Generator().manual_seed(1)))
    batch = collate(encode_pairs(tokenizer, pairs, 128), tokenizer.pad_token_id)
    kl, nll = drift_batch(tiny_model, base, batch)
    with torch.no_grad():
        full = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        full_base = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    for row in range(len(pairs)):
        kls, nlls = [], []
        for t in range(1, batch["input_ids"].shape[1]):
            label = int(batch["labels"][row, t])
            if label == IGNORE:
                continue
            p = torch.log_softmax(full_base[row, t - 1], -1)
            q = torch.log_softmax(full[row, t - 1], -1)
            kls.append(float((p.exp() * (p - q)).sum()))
            nlls.append(float(-q[label]))
        assert float(kl[row]) == pytest.approx(sum(kls) / len(kls), abs=1e-5)
        assert float(nll[row]) == pytest.approx(sum(nlls) / len(nlls), abs=1e-5)
    # row by row (to bound the float32 copies) gives exactly the whole-batch values
    with torch.no_grad():
        (kept, labels), (kept_base, _) = response_logits(tiny_model, batch), response_logits(base, batch)
    targets = labels[:, 1:]
    mask = targets != IGNORE
    logp, logp_base = torch.log_softmax(kept[:, :-1].float(), -1), torch.log_softmax(kept_base[:, :-1].float(), -1)
    whole_kl = ((logp_base.exp() * (logp_base - logp)).sum(-1) * mask).sum(-1) / mask.sum(-1)
    whole_nll = (-logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask).sum(-1) / mask.sum(-1)
    assert torch.equal(kl, whole_kl) and torch.equal(nll, whole_nll)


def test_drift_is_zero_for_the_base_and_rises_under_gradient_ascent(tiny_model, tokenizer, pairs):
    drift_pairs = [p.as_(CorpusPair, id=f"d{i}") for i, p in enumerate(pairs)]
    itself = drift_scores(tiny_model, tiny_model, tokenizer, drift_pairs, 2, 256)
    assert [s.kl for s in itself] == [0.0] * len(pairs) and [s.id for s in itself] == ["d0", "d1", "d2", "d3"]
    base = copy.deepcopy(tiny_model)
    forget = [pair("Tell me a story.", "Once upon a time there was a quiet village.")] * 4
    params = METHODS.entry("ga").Params(lr=1e-3, steps=3, batch_size=2, max_length=64)
    trained = unlearn(METHODS.get("ga", params), tiny_model, tokenizer, forget, [], 0, "cpu").model.eval()
    moved = drift_scores(trained, base, tokenizer, drift_pairs, 2, 256)
    assert all(s.kl > 1e-4 for s in moved)
    assert sum(s.nll for s in moved) > sum(s.nll for s in itself)  # the base's answers got less likely
    assert [s.tokens for s in moved] == [s.tokens for s in itself]
    # batched = one at a time
    single = [drift_scores(trained, base, tokenizer, [p], 1, 256)[0] for p in drift_pairs]
    for a, b in zip(moved, single, strict=True):
        assert a.kl == pytest.approx(b.kl, abs=1e-5) and a.nll == pytest.approx(b.nll, abs=1e-5)


def test_sign_flip_p_on_hand_cases():
    from mubench.stats.paired import sign_flip_p

    assert sign_flip_p([0.0] * 8, 1000, 0) == 1.0  # nothing changed
    # 20 equal drops: a random sign pattern reaches |sum| = 20 with probability 2^-19, so no draw does
    assert sign_flip_p([-1.0] * 20, 1000, 0) == 1 / 1001
    assert sign_flip_p([1.0, -1.0] * 10, 1000, 0) == 1.0  # observed sum 0: every draw is as extreme
    # 3 of 3 halves: P(|sum| >= 1.5) = 2/8 exactly; the Monte Carlo estimate is close
    assert abs(sign_flip_p([-0.5] * 3, 4000, 0) - 0.25) < 0.03
