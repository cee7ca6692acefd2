"""The defects a first GPU run of the paper profile would hit, each caught on CPU (issue 27): end tokens,
compilation, unreadable judge answers, the judges' prompts, system roles, chat templates, and `mubench check`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from mubench.core.records import JudgedRow
from mubench.engine.generate import DecodeParams, NoChatTemplateError, chat_text, end_tokens, generate_batch
from mubench.engine.models import byte_level_tokenizer, tiny_random_model
from mubench.judges import JUDGES, Verdict
from mubench.scoring.rates import UnparsedJudgeError, judge_health
from tests.conftest import ROOT
from tests.helpers.rows import drift, judged, task

MIRROR = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="module")
def tiny():
    from mubench.core.config import TinyRandomModel

    tokenizer = byte_level_tokenizer()
    model = tiny_random_model(TinyRandomModel(source="tiny_random"), tokenizer, seed=0).eval()
    return model, tokenizer


def test_generation_stops_on_every_end_token_of_the_generation_config(tiny):
    model, tokenizer = tiny
    text = chat_text(tokenizer, "hello")
    assert generate_batch(model, tokenizer, [text], DecodeParams(6))[0], "the random model should write"
    with torch.no_grad():
        prompt = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        first = int(model(prompt).logits[0, -1].argmax())
    assert first != tokenizer.eos_token_id
    # the model's own config names its first token as an end of turn (as Llama-3 does with <|eot_id|>)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, first]
    try:
        assert end_tokens(model, tokenizer) == sorted({tokenizer.eos_token_id, first})
        # one token (the stop token itself, a plain byte here) instead of six
        assert generate_batch(model, tokenizer, [text], DecodeParams(6))[0] == tokenizer.decode([first]).strip()
    finally:
        model.generation_config.eos_token_id = tokenizer.eos_token_id


def test_generation_never_compiles(tiny, monkeypatch):
    """A StaticCache makes transformers compile the forward pass on CUDA: generate must switch that off. Here the
    compile criteria are asked as if every device could compile; the answer must stay no."""
    from transformers import CompileConfig

    model, tokenizer = tiny
    asked = []
    original = type(model)._valid_auto_compile_criteria

    def spy(self, model_kwargs, generation_config):
        asked.append(original(self, model_kwargs, generation_config))
        return False  # never really compile in the test

    compile_config = CompileConfig()
    compile_config._compile_all_devices = True
    monkeypatch.setattr(type(model), "_valid_auto_compile_criteria", spy)
    monkeypatch.setattr(model.generation_config, "compile_config", compile_config)
    generate_batch(model, tokenizer, [chat_text(tokenizer, "hi")], DecodeParams(2))
    assert asked and not any(asked)


def test_an_unreadable_judge_answer_is_its_own_label_and_never_a_refusal():
    for name in ("llamaguard", "harmbench_cls"):
        verdict = JUDGES.get(name).parse("I think it is fine")
        assert verdict.label == "unparsed" and verdict.refused is None


def rows(refused: list[bool | None]) -> list[JudgedRow]:
    return [judged(f"r{i}", "advbench", "vanilla", r, reason="unparsed judge output: 'x'" if r is None else "ok")
            for i, r in enumerate(refused)]


def test_unparsed_share_over_the_limit_fails_in_one_line():
    health = judge_health({"safety": rows([True] * 49 + [None])}, 0.02, "m/v")
    assert health["unparsed"] == {"safety": 1} and health["unparsed_share"] == {"safety": 0.02}
    with pytest.raises(UnparsedJudgeError, match=r"m/v: the safety judge's answer could not be read for 2 of 50 "
                                                  r"rows \(4\.0% > judge.max_unparsed 2\.0%"):
        judge_health({"safety": rows([True] * 48 + [None, None])}, 0.02, "m/v")


def test_rates_leave_unparsed_rows_out_and_count_them(tmp_path):
    from mubench.families import load_params
    from mubench.scoring.rates import compute_metrics

    params = load_params(ROOT / "profiles" / "tiny.yaml").model_copy(deep=True)
    params = params.model_copy(update={"judge": params.judge.model_copy(update={"max_unparsed": 0.5})})
    safety = [judged("a", "advbench", "vanilla", False), judged("b", "advbench", "vanilla", True),
              judged("c", "advbench", "vanilla", None, judge_label="unparsed")]
    over = [judged("o", "rho-overrefusal", refused=True)]
    m = compute_metrics(params, safety, over, {"mmlu": task([1])}, [drift("d", 0.0, 1.0, 1)])
    # ASR over the two readable rows (one success), not 1/3 (unparsed as refusal) nor 2/3 (as success)
    assert m["safety"]["asr"] == 0.5 and m["n"]["harmful"] == 2
    assert m["judge"]["unparsed"] == {"safety": 1, "oversafety": 0}
    assert m["quality"]["n"] == 4  # the generations are still all there


def test_harmbench_classifier_prompt_starts_with_bos():
    from transformers import PreTrainedTokenizerFast

    judge = JUDGES.get("harmbench_cls")
    tokenizer = byte_level_tokenizer()
    assert judge.text(tokenizer, "b", "g") == judge.format("b", "g")  # no BOS token in this vocabulary
    with_bos = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, bos_token="<|endoftext|>")
    assert judge.text(with_bos, "b", "g") == "<|endoftext|>" + judge.format("b", "g")


MISTRAL_LIKE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + "
                "' [/INST]' }}{% elif m['role'] == 'assistant' %}{{ m['content'] }}{% else %}"
                "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")


def test_system_messages_fold_into_the_first_user_turn_where_the_template_has_no_system_role():
    tokenizer = byte_level_tokenizer()
    tokenizer.chat_template = MISTRAL_LIKE
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert chat_text(tokenizer, chat).endswith("[INST] Be brief.\n\nHi [/INST]")
    assert chat_text(tokenizer, "Hi", system_prompt="Be brief.").endswith("[INST] Be brief.\n\nHi [/INST]")
    native = byte_level_tokenizer()  # ChatML has a system role: kept as it is
    assert "<|im_start|>system\nBe brief." in chat_text(native, chat)


def test_a_tokenizer_without_a_chat_template_is_one_line_naming_the_model():
    tokenizer = byte_level_tokenizer()
    tokenizer.chat_template = None
    tokenizer.name_or_path = "org/base-model"
    with pytest.raises(NoChatTemplateError, match="org/base-model: its tokenizer has no chat template"):
        chat_text(tokenizer, "Hi")


def test_judges_release_their_weights():
    judge = JUDGES.get("llamaguard")
    judge._loaded = ("model", "tokenizer")
    judge.release()
    assert judge._loaded is None


def test_verdict_unparsed_keeps_the_answer():
    assert Verdict.unparsed("maybe").reason == "unparsed judge output: 'maybe'"


# ---------------------------------------------------------------- mubench check on the paper profile
def mubench(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([str(Path(sys.executable).parent / "mubench"), *args], cwd=cwd, capture_output=True,
                          text=True)


def test_check_refuses_sizes_above_known_rows_one_line_each(tmp_path):
    import yaml

    raw = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text(encoding="utf-8"))
    raw["data"]["sizes"].update(harmful_per_dataset=100000, utility_per_task=100000)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    done = mubench("check", str(path))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2
    assert any("data.sizes.harmful_per_dataset = 100000: advbench has 520" in line for line in lines)
    assert any("data.sizes.utility_per_task = 100000: mmlu has 14042" in line for line in lines)


def test_check_on_the_paper_profile_lists_every_hub_pin_to_run_in_one_line():
    done = mubench("check", "profiles/paper.yaml")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    for name in ("pku-saferlhf", "alpaca", "jbb-harmful", "or-bench-hard", "phtest", "hellaswag"):
        assert f"mubench data pin {name}" in lines[0]


def test_check_wants_full_commit_revisions(tmp_path):
    import yaml

    raw = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text(encoding="utf-8"))
    raw["model_zoo"]["mistral-7b-instruct"]["revision"] = "main-branch"
    raw["judge"]["options"]["llamaguard"].pop("revision")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    text = mubench("check", str(path)).stderr
    assert "model_zoo.mistral-7b-instruct.revision = 'main-branch': pin the full 40-character commit" in text
    assert "judge.options.llamaguard.revision = None" in text


@pytest.mark.skipif(not MIRROR.is_dir(), reason="no dataset mirror beside the repository (../shared/datasets)")
def test_catalog_row_counts_match_the_parsers_on_the_mirror(tmp_path):
    from mubench.datasets import DATASETS
    from mubench.datasets.fetch import fetch_mirror

    checked = 0
    for name in DATASETS.names():
        spec = DATASETS.entry(name)
        for index, source in enumerate(spec.sources):
            if source.kind == "mirror" and spec.rows is not None:
                out = tmp_path / name
                fetch_mirror(source, out, MIRROR)
                assert len(spec.parser_for(index)(out)) == spec.rows, name
                checked += 1
    assert checked >= 8


# ---------------------------------------------------------------- the twin's models and judges
@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    from mubench.tools.twin import make_twin

    if not MIRROR.is_dir():
        pytest.skip("no dataset mirror beside the repository (../shared/datasets)")
    out = tmp_path_factory.mktemp("twin")
    return out, make_twin(ROOT / "profiles" / "paper.yaml", out, MIRROR)


def offline(monkeypatch, twin_dir: Path) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(twin_dir / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MUBENCH_HUB_PINS", str(twin_dir / "hub_pins.json"))


def test_twin_models_load_through_the_real_hub_code_offline(twin, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mubench.families import load_params

    out, built = twin
    offline(monkeypatch, out)
    paper = load_params(ROOT / "profiles" / "paper.yaml")
    kinds = {}
    for name in paper.models:
        spec = paper.model_zoo[name]
        tokenizer = AutoTokenizer.from_pretrained(spec.repo, revision=spec.revision)
        model = AutoModelForCausalLM.from_pretrained(spec.repo, revision=spec.revision, dtype="auto")
        kinds[name] = (type(model).__name__, model.dtype, model.config.num_key_value_heads,
                       model.config.num_attention_heads, len(end_tokens(model, tokenizer)))
        chat = chat_text(tokenizer, [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
        if name == "mistral-7b-instruct":
            assert chat.endswith("[INST] S\n\nU [/INST]")  # folded: its template has no system role
        else:
            assert "S" in chat and "U" in chat
    assert kinds == {"llama2-7b-chat": ("LlamaForCausalLM", torch.float16, 4, 4, 1),
                     "llama3-8b-instruct": ("LlamaForCausalLM", torch.bfloat16, 1, 4, 2),
                     "mistral-7b-instruct": ("MistralForCausalLM", torch.bfloat16, 1, 4, 1)}


def test_twin_llamaguard_template_agrees_with_the_built_in_prompt_and_answers(twin, monkeypatch):
    out, _ = twin
    offline(monkeypatch, out)
    paper = json.loads(json.dumps(__import__("yaml").safe_load((ROOT / "profiles" / "paper.yaml").read_text())))
    options = {"llamaguard": {**paper["judge"]["options"]["llamaguard"], "device": "cpu"}}
    judge = JUDGES.get("llamaguard", options.get("llamaguard"))
    model, tokenizer = judge.load()
    assert tokenizer.chat_template
    assert judge.text(tokenizer, " How? ", "Like so. ") == judge.format("How?", "Like so.")
    verdicts = judge.judge_many(["q1", "q2"], ["a1", ""])
    assert [v.label for v in verdicts] == ["unsafe", "unsafe"]


# ---------------------------------------------------------------- a LoRA variant is its base plus its adapter
def test_a_bf16_merge_loses_a_small_update_which_the_adapter_keeps_for_an_fp32_forward():
    """The issue's measurement (benchmarks/paper_twin_gpu.py): a 4096 x 4096 bf16 weight (std 0.02), an r16 update
    of scale 1e-4 (alpha 32). Merged, the weight keeps cosine ~0.52 of it, for good. Unmerged, the adapter is
    exact: an fp32 forward sees all of it, while a bf16 forward rounds the layer's output about as a merge does."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from paper_twin_gpu import check_bf16_lora

    found = check_bf16_lora("cpu")
    small = found["0.0001"]
    assert small["merged_weight_cosine"] < 0.6 and small["unmerged_float32_forward_cosine"] > 0.999
    assert small["unmerged_bfloat16_forward_cosine"] < 0.6  # the limit of a bf16 evaluation, stated in the docs
    assert found["0.0025"]["merged_weight_cosine"] > 0.99 and found["pass"]


def lora_params(**extra):
    from mubench.training.params import LoraParams

    return LoraParams(r=4, alpha=8, **extra)


def test_an_adapter_variant_loads_unmerged_and_equals_its_merged_weights(tiny, tmp_path):
    from peft import PeftModel

    from mubench.engine.models import load_checkpoint, save_checkpoint
    from mubench.training.loop import add_lora

    model, tokenizer = tiny
    base_dir, variant_dir = tmp_path / "base", tmp_path / "variant"
    base_meta = save_checkpoint(model, tokenizer, base_dir, {"variant": "base"})
    from mubench.core.config import TinyRandomModel

    peft = add_lora(tiny_random_model(TinyRandomModel(source="tiny_random"), tokenizer, seed=0), lora_params())
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    save_checkpoint(peft, tokenizer, variant_dir, {"variant": "ga", "adapter": True, "base_dir": str(base_dir),
                                                   "base_model_hash": base_meta["model_hash"]})
    assert not (variant_dir / "model.safetensors").exists()  # only the adapter is on disk
    unmerged, _ = load_checkpoint(variant_dir)
    merged, _ = load_checkpoint(variant_dir, merge=True)
    assert isinstance(unmerged, PeftModel) and not isinstance(merged, PeftModel)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(unmerged(ids).logits, merged(ids).logits, atol=1e-5)
        assert not torch.allclose(unmerged(ids).logits, model(ids).logits, atol=1e-3)


def test_relearning_stacks_its_adapter_on_a_lora_variant(tiny):
    from mubench.training.loop import STACKED, add_lora

    model, tokenizer = tiny
    from mubench.core.config import TinyRandomModel

    peft = add_lora(tiny_random_model(TinyRandomModel(source="tiny_random"), tokenizer, seed=0), lora_params())
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = peft(ids).logits
    stacked = add_lora(peft, lora_params())
    trainable = [n for n, p in stacked.named_parameters() if p.requires_grad]
    assert trainable and all(f".{STACKED}." in n for n in trainable)
    with torch.no_grad():  # a fresh adapter adds nothing (B = 0): the variant's own adapter is still active
        assert torch.allclose(stacked(ids).logits, before, atol=1e-6)


def test_sku_negates_its_adapter_exactly_as_it_would_negate_merged_weights(tiny):
    import copy

    from mubench.core.config import TinyRandomModel
    from mubench.methods.sku import negate_adapter, negate_task_vector
    from mubench.training.loop import add_lora

    _, tokenizer = tiny
    base = tiny_random_model(TinyRandomModel(source="tiny_random"), tokenizer, seed=0)
    peft = add_lora(copy.deepcopy(base), lora_params())
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    merged = copy.deepcopy(peft).merge_and_unload()
    negate_task_vector(merged, base, 1.5)
    negate_adapter(peft, 1.5)
    negated = peft.merge_and_unload()
    for (name, p), q in zip(negated.named_parameters(), merged.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), name


def test_full_fine_tuning_of_a_few_tensors_saves_only_those(tiny, tmp_path):
    from mubench.engine.models import PARTIAL, load_checkpoint, save_checkpoint, save_partial, verified_meta

    model, tokenizer = tiny
    base_meta = save_checkpoint(model, tokenizer, tmp_path / "base", {"variant": "base"})
    import copy

    changed = copy.deepcopy(model)
    name = "model.layers.1.mlp.down_proj.weight"
    with torch.no_grad():
        dict(changed.named_parameters())[name].add_(0.5)
    meta = save_partial(changed, tokenizer, {name}, tmp_path / "rmu",
                        {"variant": "rmu", "base_dir": str(tmp_path / "base"),
                         "base_model_hash": base_meta["model_hash"]})
    assert meta["changed_tensors"] == [name] and verified_meta(tmp_path / "rmu")["model_hash"] == meta["model_hash"]
    assert (tmp_path / "rmu" / PARTIAL).stat().st_size < (tmp_path / "base" / "model.safetensors").stat().st_size / 4
    loaded, _ = load_checkpoint(tmp_path / "rmu")
    for key, value in changed.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


# ---------------------------------------------------------------- mubench doctor
def test_doctor_names_each_blocker_of_the_paper_profile_here():
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k not in {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}}
    env["HF_HOME"] = "/nonexistent-hf-home"  # no login, no cached snapshot
    done = subprocess.run([str(Path(sys.executable).parent / "mubench"), "doctor", "profiles/paper.yaml"], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 1
    table = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "BLOCKER" in table["params"] and "mubench data pin alpaca" in table["params"]
    assert "no HF_TOKEN" in done.stdout and "compiler" in table
    if not torch.cuda.is_available():
        assert "device: cuda, but torch sees no GPU" in table["gpu"]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: doctor:") and "hub token" in last


def test_doctor_passes_the_twin_from_its_offline_cache(twin):
    import os
    import sys

    out, built = twin
    env = {**os.environ, **built["env"], "HF_TOKEN": ""}
    done = subprocess.run([str(Path(sys.executable).parent / "mubench"), "doctor", str(out / "params.yaml")],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("hub access") and "all in the local cache" in line for line in lines)
    llama3 = next(line for line in lines if "Meta-Llama-3-8B-Instruct:" in line)
    assert "stops on <|end_of_text|>, <|eot_id|>" in llama3
    mistral = next(line for line in lines if "Mistral-7B-Instruct-v0.2:" in line)
    assert "no system role (folded into the first user turn)" in mistral
    assert any(line.startswith("disk") and " ok " in line for line in lines)


def test_doctor_counts_adapters_and_partial_variants_not_full_copies():
    from mubench.core.workspace import Workspace
    from mubench.families import load_params
    from mubench.tools.doctor import saved_parameters

    paper = load_params(ROOT / "profiles" / "paper.yaml")
    sizes = saved_parameters(paper, "llama2-7b-chat", Workspace(ROOT))
    assert 6.7e9 < sizes["base"] < 6.8e9 and sizes["dtype"] == "float16"
    # r 16 on the 7 linear layers of 32 blocks: 16 x (4 x (4096 + 4096) + 3 x (4096 + 11008)) x 32
    assert sizes["ga"] == 16 * (4 * 8192 + 3 * 15104) * 32
    assert sizes["rmu"] < sizes["base"] / 10  # three MLPs


def test_the_twin_gpu_script_runs_on_the_cpu(tmp_path):
    """benchmarks/paper_twin_gpu.py (the GPU-only paths of the paper twin) must not rot: CI runs it on the CPU."""
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paper_twin_gpu.py"), "--device", "cpu",
                           "--out", str(tmp_path / "check.json")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "check.json").read_text())
    assert result["pass"] and result["end_tokens"]["answer"] == "unsafe"
    assert {m["dtype"] for m in result["compile"].values()} == {"float16", "bfloat16"}


def test_an_adapter_checkpoint_is_the_same_bytes_whatever_the_hash_seed(tmp_path):
    """PEFT keeps target_modules in a set: its order in adapter_config.json followed PYTHONHASHSEED, so two runs of
    the same unlearn stage wrote different files (and dvc.lock hashes)."""
    import os
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from mubench.core.config import TinyRandomModel
        from mubench.engine.models import byte_level_tokenizer, save_checkpoint, tiny_random_model
        from mubench.training.params import LoraParams
        from mubench.training.loop import add_lora
        tok = byte_level_tokenizer()
        model = add_lora(tiny_random_model(TinyRandomModel(source="tiny_random"), tok, 0), LoraParams(r=2))
        save_checkpoint(model, tok, Path(sys.argv[1]), {"variant": "v", "adapter": True, "base_dir": "b",
                                                        "base_model_hash": "0" * 16})
    """)
    texts = set()
    for seed in ("1", "2", "3"):
        out = tmp_path / seed
        done = subprocess.run([sys.executable, "-c", script, str(out)], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-1000:]
        texts.add((out / "adapter_config.json").read_text())
    assert len(texts) == 1


def test_doctor_needs_a_c_compiler_only_when_decoding_is_compiled_on_a_gpu(monkeypatch):
    """`generation.decode: graphs` builds Triton/Inductor code on a GPU: without a C compiler doctor names it as a
    blocker with the fix; eager decoding, or graphs on the CPU (captured without generated code), needs none."""
    from mubench.families import load_params
    from mubench.tools.doctor import check_compiler

    eager = load_params(ROOT / "profiles" / "tiny.yaml")
    graphs = eager.model_copy(update={"generation": eager.generation.model_copy(update={"decode": "graphs"}),
                                      "device": "auto"})
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert [r.status for r in check_compiler(graphs)] == ["ok"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    row = check_compiler(graphs)[0]
    assert row.status == "BLOCKER" and "install gcc" in row.detail and "generation.decode: eager" in row.detail
    assert [r.status for r in check_compiler(eager.model_copy(update={"device": "auto"}))] == ["ok"]
    monkeypatch.setenv("CC", "/usr/bin/gcc")
    assert check_compiler(graphs)[0].status == "ok"
