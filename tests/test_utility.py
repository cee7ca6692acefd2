"""lm-eval's multiple-choice accuracy equals our own log-likelihood argmax on the same cloze prompts."""

from __future__ import annotations

import json

import torch

from mubench.utility import evaluate_utility


def own_accuracy(model, tokenizer, rows):
    correct = []
    for row in rows:
        context = f"Question: {row['prompt']}\nAnswer:"
        ctx_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        scores = []
        for choice in row["choices"]:
            cont_ids = tokenizer(context + " " + choice, add_special_tokens=False)["input_ids"][len(ctx_ids):]
            ids = torch.tensor([ctx_ids + cont_ids])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
            positions = range(len(ctx_ids) - 1, len(ctx_ids) - 1 + len(cont_ids))
            scores.append(sum(logp[p, t].item() for p, t in zip(positions, cont_ids, strict=True)))
        correct.append(int(max(range(len(scores)), key=scores.__getitem__) == row["answer"]))
    return correct


def test_lm_eval_accuracy_matches_own_loglikelihood(tiny_model, tokenizer, tmp_path):
    rows = [{"id": f"q{i}", "prompt": f"What comes after {i}?", "choices": [str(i + 1), "blue", "a dog", "x"],
             "answer": i % 4} for i in range(12)]
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate_utility(tiny_model, tokenizer, {"toy": path}, num_fewshot=0, batch_size=4, seed=0)["toy"]
    assert result["n"] == 12 and result["ids"] == [r["id"] for r in rows]
    assert result["correct"] == own_accuracy(tiny_model, tokenizer, rows)
    assert result["acc"] == sum(result["correct"]) / 12


def test_shared_context_loglikelihoods_equal_lm_eval(tiny_model, tokenizer):
    """The shared-context scorer returns lm-eval HFLM's (log-likelihood, is_greedy) for every request."""
    from lm_eval.models.huggingface import HFLM

    from mubench.utility import _shared_context_lm

    def encode(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    requests = []
    for i in [0, 7, 12, 3456, 1000000]:  # contexts of different lengths: batched contexts are left padded
        context = f"Question: What comes after {i}?\nAnswer:"
        for choice in [" " + str(i + 1), " blue", " a small brown dog", "!"]:
            requests.append(((context, choice), encode(context), encode(choice)))
    plain = HFLM(pretrained=tiny_model, tokenizer=tokenizer, batch_size=3)._loglikelihood_tokens(requests)
    shared = _shared_context_lm(HFLM)(pretrained=tiny_model, tokenizer=tokenizer,
                                      batch_size=3)._loglikelihood_tokens(requests)
    assert len(shared) == len(plain) == 20
    for (lp_a, greedy_a), (lp_b, greedy_b) in zip(shared, plain, strict=True):
        assert abs(lp_a - lp_b) < 1e-4
        assert greedy_a == greedy_b
    # one-token continuations use the context's last logits only
    one = [r for r in requests if len(r[2]) == 1]
    assert one, "the byte tokenizer should give some one-token choices"
