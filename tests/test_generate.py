from __future__ import annotations

from mubench.engine.generate import DecodeParams, GenerationCache, generate
from mubench.engine.identity import generation_context

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
    key = GenerationCache.key(generation_context("abc", tiny_model, tokenizer, 4), tokenizer.apply_chat_template(
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


def test_the_cache_key_changes_with_every_cause_of_a_response(tiny_model, tokenizer, monkeypatch, tmp_path):
    """Each thing that can change a token changes the key's context; nothing else does."""
    import copy

    import torch

    import mubench.engine.identity as identity
    from mubench.engine.models import byte_level_tokenizer

    def context(model=tiny_model, tok=tokenizer, weights="h", batch=4):
        identity.engine_code_sha256.cache_clear()
        return generation_context(weights, model, tok, batch)

    base = context()
    assert context() == base == generation_context("h", copy.deepcopy(tiny_model), byte_level_tokenizer(), 4)
    edited_config = copy.deepcopy(tiny_model)
    edited_config.config.rms_norm_eps = 1e-3
    edited_generation = copy.deepcopy(tiny_model)
    edited_generation.generation_config.repetition_penalty = 1.3
    other_vocab = byte_level_tokenizer()
    other_vocab.add_tokens(["<extra>"])
    other_template = byte_level_tokenizer()
    other_template.chat_template = other_template.chat_template.replace("\n", " ")
    changed = {
        "weights": context(weights="h2"),
        "config": context(model=edited_config),
        "generation config": context(model=edited_generation),
        "tokenizer": context(tok=other_vocab),
        "chat template": context(tok=other_template),
        "dtype": context(model=copy.deepcopy(tiny_model).to(torch.bfloat16)),
        "device": context(model=copy.deepcopy(tiny_model).to("meta")),
        "batch size": context(batch=8),
    }
    with monkeypatch.context() as patch:
        patch.setattr(identity, "package_versions", lambda: {"torch": "0.0-other"})
        changed["library versions"] = context()
    with monkeypatch.context() as patch:
        patch.setenv("ATEN_CPU_CAPABILITY", "default")
        changed["kernel path"] = context()
    engine = tmp_path / "engine"
    engine.mkdir()
    for path in identity.ENGINE_DIR.glob("*.py"):
        (engine / path.name).write_bytes(path.read_bytes())
    (engine / "generate.py").write_text((engine / "generate.py").read_text() + "\n# edited\n")
    with monkeypatch.context() as patch:
        patch.setattr(identity, "ENGINE_DIR", engine)
        changed["engine code"] = context()
    stale = [name for name, value in changed.items() if value == base]
    assert not stale, f"the cache key ignores: {stale}"
    assert len(set(changed.values())) == len(changed)


def test_an_edited_config_json_is_not_served_the_old_responses(tiny_model, tokenizer, tmp_path):
    """The failure a user met: rms_norm_eps edited in config.json, weights unchanged, and the cache answered."""
    import json

    from mubench.engine.models import load_checkpoint, save_checkpoint

    ckpt = tmp_path / "ckpt"
    meta = save_checkpoint(tiny_model, tokenizer, ckpt, {"variant": "base"})
    cache = GenerationCache(tmp_path / "gen.sqlite")
    params = DecodeParams(max_new_tokens=8)
    model, tok = load_checkpoint(ckpt)
    first = generate(model, tok, PROMPTS, params, 4, meta["model_hash"], cache)
    config = json.loads((ckpt / "config.json").read_text())
    config["rms_norm_eps"] = 1.0
    (ckpt / "config.json").write_text(json.dumps(config))
    model, tok = load_checkpoint(ckpt)  # same weights, same model_hash
    again = generate(model, tok, PROMPTS, params, 4, meta["model_hash"], cache)
    assert again == generate(model, tok, PROMPTS, params, 4)  # what the edited model really says
    assert again != first


def test_graph_decoding_equals_eager_with_a_bounded_number_of_graphs(tiny_model, tokenizer, capsys, monkeypatch):
    """`generation.decode: graphs` (issue 38): fixed shapes (full batches, the last padded; cache lengths rounded up
    to GRAPH_LENGTH_STEP) give the eager path's greedy outputs, as they run on a CPU (nothing compiled) and with the
    decoding step compiled by Inductor (C++ here; on a GPU the engine adds CUDA graphs), which captures exactly one
    graph per cache length the stage logs."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    from transformers import CompileConfig

    from mubench.engine import generate as engine
    from mubench.engine.generate import GRAPH_LENGTH_STEP, graph_cache_length, graph_compile_config

    assert graph_compile_config("cpu") is None and graph_compile_config("cuda").mode == "reduce-overhead"
    prompts = [f"Name colour number {i}. " * (1 + i % 7) for i in range(11)]  # 3 batches of 4, the last padded
    eager = generate(tiny_model, tokenizer, prompts, DecodeParams(20), batch_size=4)
    capsys.readouterr()
    assert generate(tiny_model, tokenizer, prompts, DecodeParams(20, graphs=True), batch_size=4) == eager
    logged = " ".join(capsys.readouterr().err.split())
    lengths = logged.split("cache length(s) ")[1].split(" (")[0].split(", ")
    assert len(lengths) >= 2 and all(int(n) % GRAPH_LENGTH_STEP == 0 for n in lengths), logged
    assert graph_cache_length(1) == graph_cache_length(GRAPH_LENGTH_STEP) == GRAPH_LENGTH_STEP
    assert graph_cache_length(GRAPH_LENGTH_STEP + 1) == 2 * GRAPH_LENGTH_STEP

    def inductor(device: str) -> CompileConfig:  # the GPU's config less CUDA graphs, allowed on the CPU
        config = CompileConfig(fullgraph=False, dynamic=False)
        config._compile_all_devices = True
        return config

    monkeypatch.setattr(engine, "graph_compile_config", inductor)
    torch._dynamo.reset()
    counters.clear()
    assert generate(tiny_model, tokenizer, prompts, DecodeParams(20, graphs=True), batch_size=4) == eager
    assert counters["stats"]["unique_graphs"] == len(lengths), dict(counters["stats"])


def test_the_decoding_mode_is_part_of_the_cache_key():
    """A response decoded by compiled graphs is not served to an eager run (or the reverse): on a GPU the two may
    round differently."""
    eager, graphs = DecodeParams(8), DecodeParams(8, graphs=True)
    assert GenerationCache.key("ctx", "hi", eager) != GenerationCache.key("ctx", "hi", graphs)
