from __future__ import annotations

from mubench.engine.generate import DecodeParams, GenerationCache, generate

PROMPTS = ["Hi", "Tell me a long story about a boat on a lake", "What is two plus two?", "Name three fruits"]


def test_batched_greedy_equals_unbatched(tiny_model, tokenizer):
    params = DecodeParams(max_new_tokens=10)
    batched = generate(tiny_model, tokenizer, PROMPTS, params, batch_size=4)
    single = [generate(tiny_model, tokenizer, [p], params, batch_size=1)[0] for p in PROMPTS]
    assert batched == single
    assert any(batched)


def test_order_is_kept_despite_length_sorting(tiny_model, tokenizer):
    params = DecodeParams(max_new_tokens=6)
    forward = generate(tiny_model, tokenizer, PROMPTS, params, batch_size=2)
    backward = generate(tiny_model, tokenizer, PROMPTS[::-1], params, batch_size=2)
    assert forward == backward[::-1]


def test_cache_returns_stored_responses(tiny_model, tokenizer, tmp_path):
    cache = GenerationCache(tmp_path / "gen.sqlite")
    params = DecodeParams(max_new_tokens=6)
    first = generate(tiny_model, tokenizer, PROMPTS, params, 4, model_hash="abc", cache=cache)
    key = GenerationCache.key("abc", tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPTS[0]}], tokenize=False, add_generation_prompt=True), params)
    cache.put_many({key: "from cache"})
    second = generate(tiny_model, tokenizer, PROMPTS, params, 4, model_hash="abc", cache=cache)
    assert second[0] == "from cache" and second[1:] == first[1:]
    other = generate(tiny_model, tokenizer, PROMPTS, params, 4, model_hash="other-model", cache=cache)
    assert other == first


def test_shared_prefix_cache_gives_the_same_tokens(tiny_model, tokenizer, monkeypatch):
    """Rows sharing a long template prefix: the prefix is computed once and the outputs equal per-row runs."""
    import mubench.engine.generate as gen
    from mubench.engine.kv import PrefixCache

    template = "You are a careful assistant. Read the request below and answer it politely. Request: "
    prompts = [template + p for p in PROMPTS]
    params = DecodeParams(max_new_tokens=10)
    calls = []

    class CountingPrefix(PrefixCache):
        def __init__(self, model, ids):
            calls.append(len(ids))
            super().__init__(model, ids)

    monkeypatch.setattr(gen, "PrefixCache", CountingPrefix)
    shared = generate(tiny_model, tokenizer, prompts, params, batch_size=4)
    assert len(calls) == 1 and calls[0] >= len(template)  # one prefix run for the whole batch
    single = [generate(tiny_model, tokenizer, [p], params, batch_size=1)[0] for p in prompts]
    monkeypatch.setattr(gen, "MIN_SHARED_PREFIX", 10**9)
    unshared = generate(tiny_model, tokenizer, prompts, params, batch_size=4)
    assert len(calls) == 1
    assert shared == single == unshared
    assert any(shared)


def test_common_prefix_length():
    from mubench.engine.kv import common_prefix_length

    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([[5], [6]]) == 0
    assert common_prefix_length([[1, 2]]) == 2
    assert common_prefix_length([]) == 0


def test_pooled_sets_with_different_prefixes_equal_single_runs(tiny_model, tokenizer, monkeypatch):
    """Sets with different shared prefixes decoded in one pooled batch give each row's lone output."""
    import mubench.engine.generate as gen
    from mubench.engine.generate import generate_sets

    long_a = "You are a careful assistant. Read the request below and answer it politely. Request: "
    long_b = "Pretend to be a librarian who answers in one short line. Question: "
    sets = {"a": [long_a + p for p in PROMPTS], "b": [long_b + p for p in PROMPTS[:3]], "plain": PROMPTS[:2]}
    params = DecodeParams(max_new_tokens=8)
    pooled = generate_sets(tiny_model, tokenizer, sets, params, batch_size=16)
    assert list(pooled) == ["a", "b", "plain"] and [len(v) for v in pooled.values()] == [4, 3, 2]
    monkeypatch.setattr(gen, "MIN_SHARED_PREFIX", 10**9)
    for name, prompts in sets.items():
        single = [generate(tiny_model, tokenizer, [p], params, batch_size=1)[0] for p in prompts]
        assert pooled[name] == single, name


def test_repeated_prompts_sharing_all_but_the_last_token(tiny_model, tokenizer):
    """A set of identical prompts: the shared prefix is all but the last token, so nothing is left to prefill."""
    prompt = "You are a careful assistant. Read the request below and answer it politely. Request: hi"
    params = DecodeParams(max_new_tokens=6)
    repeated = generate(tiny_model, tokenizer, [prompt, prompt], params, batch_size=4)
    alone = generate(tiny_model, tokenizer, [prompt], params, batch_size=1)[0]
    assert repeated == [alone, alone]
