"""Method losses against their formulas (computed independently here), and a few steps in the right direction."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from mubench.methods import METHODS
from mubench.training.loop import collate, encode_pairs, unlearn
from mubench.training.losses import IGNORE, nll, sequence_logprob, token_logprobs


def manual_seq_logprob(model, batch):
    """Loop over every sequence and position: log p(token) for response tokens only."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    sums, counts = [], []
    for b in range(batch["input_ids"].shape[0]):
        total, count = 0.0, 0
        for t in range(1, batch["input_ids"].shape[1]):
            label = batch["labels"][b, t].item()
            if label == IGNORE:
                continue
            total = total + torch.log_softmax(logits[b, t - 1].float(), -1)[label]
            count += 1
        sums.append(total)
        counts.append(count)
    return torch.stack(sums), torch.tensor(counts)


def make_batch(tokenizer, pairs):
    return collate(encode_pairs(tokenizer, pairs, max_length=128), tokenizer.pad_token_id)


def test_labels_mask_prompt_and_padding(tokenizer, pairs):
    batch = make_batch(tokenizer, pairs)
    for row, pair in zip(range(len(pairs)), pairs, strict=True):
        kept = [t for t in batch["labels"][row].tolist() if t != IGNORE]
        expected = tokenizer(pair.response + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        assert kept == expected
        pad = batch["attention_mask"][row] == 0
        assert (batch["labels"][row][pad] == IGNORE).all()


def test_sequence_logprob_matches_manual(tiny_model, tokenizer, pairs):
    batch = make_batch(tokenizer, pairs)
    got_sum, got_n = sequence_logprob(tiny_model, batch)
    want_sum, want_n = manual_seq_logprob(tiny_model, batch)
    assert torch.equal(got_n, want_n)
    assert torch.allclose(got_sum, want_sum, atol=1e-5)


def test_token_logprobs_ignores_masked_positions():
    logits = torch.randn(1, 4, 7)
    labels = torch.tensor([[IGNORE, 3, IGNORE, 5]])
    logp, mask = token_logprobs(logits, labels)
    assert mask.tolist() == [[True, False, True]]
    expected = torch.log_softmax(logits, -1)
    assert torch.isclose(logp[0, 0], expected[0, 0, 3])
    assert torch.isclose(logp[0, 2], expected[0, 2, 5])
    assert logp[0, 1] == 0


def test_ga_loss_is_minus_token_mean_nll(tiny_model, tokenizer, pairs):
    batch = make_batch(tokenizer, pairs)
    loss, _ = METHODS.get("ga").loss(tiny_model, None, {"forget": batch})
    total, count = manual_seq_logprob(tiny_model, batch)
    assert torch.isclose(loss, total.sum() / count.sum(), atol=1e-5)


def test_npo_loss_matches_formula(tiny_model, tokenizer, pairs):
    batch = make_batch(tokenizer, pairs)
    ref = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    for retain_weight in (0.0, 0.7):
        method = METHODS.get("npo", {"beta": 0.3, "retain_weight": retain_weight})
        retain = make_batch(tokenizer, list(reversed(pairs)))
        loss, _ = method.loss(tiny_model, ref, {"forget": batch, "retain": retain})
        theta, _ = manual_seq_logprob(tiny_model, batch)
        reference, _ = manual_seq_logprob(ref, batch)
        expected = -(2 / 0.3) * F.logsigmoid(-0.3 * (theta - reference)).mean()
        r_sum, r_n = manual_seq_logprob(tiny_model, retain)
        expected = expected + retain_weight * (-r_sum.sum() / r_n.sum())
        assert torch.isclose(loss, expected, atol=1e-5), (retain_weight, loss, expected)


def test_npo_at_reference_equals_2_over_beta_log2(tiny_model, tokenizer, pairs):
    batch = make_batch(tokenizer, pairs)
    loss, _ = METHODS.get("npo", {"beta": 0.5}).loss(tiny_model, copy.deepcopy(tiny_model), {"forget": batch})
    assert torch.isclose(loss, torch.tensor((2 / 0.5) * torch.log(torch.tensor(2.0)).item()), atol=1e-5)


def test_few_steps_raise_forget_nll(tiny_model, tokenizer, pairs):
    batch = make_batch(tokenizer, pairs)
    for name in ("ga", "npo"):
        model = copy.deepcopy(tiny_model)
        before = nll(model, batch).item()
        params = METHODS.entry(name).Params(lr=5e-3, steps=4, batch_size=4)
        method = METHODS.get(name, params)
        result = unlearn(method, model, tokenizer, pairs, pairs[::-1], seed=0, device="cpu")
        after = nll(model, batch).item()
        assert after > before + 0.05, (name, before, after)
        assert len(result.history) == 4


def test_training_is_deterministic(tiny_model, tokenizer, pairs):
    params = METHODS.entry("ga").Params(lr=1e-3, steps=3, batch_size=2)
    method = METHODS.get("ga", params)
    weights = []
    for _ in range(2):
        model = copy.deepcopy(tiny_model)
        unlearn(method, model, tokenizer, pairs, [], seed=3, device="cpu")
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
