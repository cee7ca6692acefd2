"""lm-eval's multiple-choice accuracy equals our own log-likelihood argmax on the same cloze prompts."""

from __future__ import annotations

import json

import torch

from mubench.scoring.utility import evaluate_utility


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
    assert result.n == 12 and result.ids == [r["id"] for r in rows]
    assert result.correct == own_accuracy(tiny_model, tokenizer, rows)
    assert result.acc == sum(result.correct) / 12


def test_shared_context_loglikelihoods_equal_lm_eval(tiny_model, tokenizer):
    """The shared-context scorer returns lm-eval HFLM's (log-likelihood, is_greedy) for every request."""
    from lm_eval.models.huggingface import HFLM

    from mubench.scoring.utility import _shared_context_lm

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


# ---------------------------------------------------------------- GSM8K: generation + exact match
def gsm_split(tmp_path, n=6):
    rows = [{"id": f"g{i}", "prompt": f"Sam has {i} apples and buys {i + 2} more. How many apples now?",
             "choices": None, "answer": str(2 * i + 2)} for i in range(n)]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows, path


def test_the_answer_is_the_last_number_without_commas_dollars_or_a_final_period():
    from mubench.scoring.utility_generation import exact_match, extract_answer

    assert extract_answer("So 1,234 + 1 = 1,235. The answer is 1,235.") == "1235"
    assert extract_answer("She pays $18 in all.") == "18"
    assert extract_answer("It drops to -7 degrees") == "-7"
    assert extract_answer("I cannot tell.") is None and extract_answer("") is None
    assert extract_answer("3 boxes of 4 make 12") == "12"
    assert extract_answer("It costs $2.50.") == "2.50"
    assert exact_match("The answer is 72.", "72") and exact_match("$1,000", "1000")
    assert not exact_match("72.0", "72") and not exact_match("no idea", "5")  # strict, as lm-eval's


def test_gsm8k_scores_hand_made_outputs_to_their_exact_match(tiny_model, tokenizer, tmp_path, monkeypatch):
    from mubench.scoring import utility_generation

    rows, path = gsm_split(tmp_path)
    replies = {0: "2 + 0 = 2. The answer is 2.", 1: "The answer is $4", 2: "I think 5 and then 7",
               3: "no number here", 4: "So 4 + 6 = 10.", 5: "It is 14.0"}  # correct: 0, 1, 4 -> 3 of 6
    seen = []

    def fake(lm, requests, model_hash, cache, batch_size, graphs=False):
        seen.extend(r.args for r in requests)
        return [replies[next(i for i, row in enumerate(rows) if f"Q: {row['prompt']}\nA:" in r.args[0])]
                for r in requests]

    monkeypatch.setattr(utility_generation, "serve_generate_until", fake)
    result = evaluate_utility(tiny_model, tokenizer, {"gsm8k": path}, num_fewshot=0, batch_size=4, seed=0,
                              generation={"num_fewshot": 8, "max_gen_toks": 16})["gsm8k"]
    assert result.correct == [1, 1, 0, 0, 1, 0] and result.exact_match == result.acc == 0.5
    assert result.lm_eval_exact_match == 0.5 and result.acc_norm is None
    assert result.extracted == ["2", "4", "7", None, "10", "14.0"]
    context, kwargs = seen[0]
    # lm-eval's own chain-of-thought exemplars (8), then the question; greedy, with its stop sequences
    assert context.count("Q: ") == 9 and context.startswith("Q: There are 15 trees in the grove.")
    assert kwargs["until"][0] == "Q:" and kwargs["do_sample"] is False and kwargs["max_gen_toks"] == 16


def test_batched_generation_through_lm_eval_equals_one_at_a_time(tiny_model, tokenizer, tmp_path, monkeypatch):
    from mubench.engine.generate import DecodeParams, generate_batch
    from mubench.scoring import utility_generation

    _, path = gsm_split(tmp_path)
    contexts = []
    real = utility_generation.serve_generate_until

    decoded = []

    def spy(lm, requests, model_hash, cache, batch_size, graphs=False):
        contexts.extend(r.args[0] for r in requests)
        decoded.append(graphs)
        return real(lm, requests, model_hash, cache, batch_size, graphs)

    monkeypatch.setattr(utility_generation, "serve_generate_until", spy)
    result = evaluate_utility(tiny_model, tokenizer, {"gsm8k": path}, num_fewshot=0, batch_size=4, seed=0,
                              generation={"num_fewshot": 1, "max_gen_toks": 12})["gsm8k"]
    assert len(contexts) == 6 and decoded == [False]
    # `generation.decode: graphs` reaches GSM8K's generation too (fixed shapes: padded batches), same answers
    again = evaluate_utility(tiny_model, tokenizer, {"gsm8k": path}, num_fewshot=0, batch_size=4, seed=0,
                             generation={"num_fewshot": 1, "max_gen_toks": 12}, graphs=True)["gsm8k"]
    assert decoded == [False, True] and again.responses == result.responses
    contexts = contexts[:6]
    alone = {c: utility_generation.cut_at_stop(generate_batch(tiny_model, tokenizer, [c], DecodeParams(12))[0],
                                               ["Q:", tokenizer.eos_token])
             for c in contexts}
    by_id = dict(zip(result.ids, result.responses, strict=True))
    order = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert [by_id[i] for i in order] == [alone[c] for c in contexts]
