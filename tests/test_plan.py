"""`mubench plan`: the traced memory of the project's own steps under fake tensors, checked against real CPU runs
of the same steps; and the settings that make 7-8B models fit (bf16 / adapter-disabled reference, gradient
checkpointing) checked for equivalence with the plain path."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig

from mubench.methods import METHODS
from mubench.plan.fit import check_fits
from mubench.plan.generation import generation_step, plan_generation
from mubench.plan.stage import PlanError, PlanSettings, StagePlan, build
from mubench.plan.trace import extrapolate, isolated_accelerate, measure
from mubench.plan.unlearn import (
    _dummy_batch,
    _prime_optimizer,
    _stream_names,
    plan_unlearn,
    plan_unlearn_stage,
    resident_bytes,
)
from mubench.training.loop import (
    AdapterDisabledReference,
    collate,
    encode_pairs,
    frozen_copy,
    setup_training,
    train_step,
    unlearn,
    weights_dtype,
)
from mubench.training.losses import nll

from .conftest import ROOT

CONFIG = LlamaConfig(vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
LORA = {"r": 4, "alpha": 8}


@pytest.fixture(autouse=True)
def _own_accelerate_state():
    """The real runs here use bf16 autocast on the CPU (as the stage on a GPU); accelerate's state is a
    process-wide singleton, so each test gets its own and leaves the others' alone."""
    with isolated_accelerate():
        yield


def hparams(method: str, **extra):
    return METHODS.entry(method).Params(lr=1e-3, steps=1, batch_size=2, max_length=32, **extra)


def real_run(method_name: str, params, dtype: torch.dtype, ref_dtype: torch.dtype, config=CONFIG):
    torch.manual_seed(0)
    method = METHODS.get(method_name, params)
    run = setup_training(method, build(config, dtype), seed=0, device="cpu", ref_dtype=ref_dtype,
                         mixed_precision="bf16")
    torch.manual_seed(1)
    batches = {n: _dummy_batch(params.batch_size, params.max_length, config.vocab_size)
               for n in _stream_names(method, params)}
    return method, run, batches


def unique_bytes(modules) -> int:
    tensors = {id(p): p for m in modules if isinstance(m, torch.nn.Module) for p in m.parameters()}
    return sum(t.numel() * t.element_size() for t in tensors.values())


@pytest.mark.parametrize(("method_name", "lora", "dtype"), [
    ("npo", None, torch.float32), ("npo", LORA, torch.bfloat16), ("rmu", None, torch.float32),
    ("sku", LORA, torch.bfloat16), ("ga", None, torch.bfloat16)])
def test_resident_bytes_equal_a_real_run(method_name, lora, dtype):
    params = hparams(method_name, lora=lora)
    planned = resident_bytes(METHODS.get(method_name, params), params, CONFIG, dtype, torch.bfloat16)
    method, run, batches = real_run(method_name, params, dtype, torch.bfloat16)
    assert planned["parameters"] == unique_bytes([run.network, run.ref])
    loss, _ = method.loss(run.model, run.ref, batches)
    loss.backward()
    assert planned["gradients"] == sum(p.grad.numel() * p.grad.element_size() for p in run.trainable)
    run.optimizer.step()
    moments = [t for state in run.optimizer.state.values() for k, t in state.items() if k != "step"]
    assert planned["optimizer"] == sum(t.numel() * t.element_size() for t in moments)


@pytest.mark.parametrize(("method_name", "lora"), [("ga", None), ("npo", None), ("npo", LORA), ("rmu", None)])
def test_traced_peak_is_within_ten_percent_of_a_real_cpu_step(method_name, lora):
    params = hparams(method_name, lora=lora)
    planned = plan_unlearn("unlearn", method_name, params, CONFIG)
    # as the unlearn stage loads the weights on the GPU: fp32, or the frozen base in bf16 under LoRA
    method, run, batches = real_run(method_name, params, weights_dtype(params, "cuda"), torch.bfloat16)
    _prime_optimizer(run)
    real = measure(lambda: train_step(method, run, batches, 2), run.network, run.ref, run.optimizer)
    assert planned.how == "traced at full depth"
    assert abs(planned.peak - real["total"]) <= 0.10 * real["total"], (planned.peak, real)


def test_depth_extrapolation_matches_a_full_depth_trace():
    deep = LlamaConfig(**{**CONFIG.to_dict(), "num_hidden_layers": 10})
    params = hparams("npo")
    extrapolated = plan_unlearn("unlearn", "npo", params, deep, full_depth=False)
    assert extrapolated.how == "traced at 2 and 4 layers, extrapolated to 10"

    def trace(config):
        method, run, batches = real_run("npo", params, torch.float32, torch.bfloat16, config)
        _prime_optimizer(run)
        return measure(lambda: train_step(method, run, batches, 2), run.network, run.ref, run.optimizer)

    full, how = extrapolate(deep, trace, None)
    assert how == "traced at full depth"
    assert abs(extrapolated.peak - full["total"]) <= 0.05 * full["total"], (extrapolated.peak, full)


def test_generation_plan_is_within_ten_percent_of_a_real_batch():
    batch, prompt, new = 4, 40, 16
    planned = plan_generation("generate", CONFIG, batch, prompt, new, "generation.batch_size",
                              dtype=torch.float32)
    torch.manual_seed(0)
    model = build(CONFIG, torch.float32).eval()

    def step() -> None:
        generation_step(model, batch, prompt, new)

    real = measure(step, model)
    assert abs(planned.peak - real["total"]) <= 0.10 * real["total"], (planned.peak, real)
    no_headroom = PlanSettings(margin=0.0, cuda_context_gb=0.0)
    assert planned.fitting_batch(planned.peak, no_headroom) == batch
    assert planned.fitting_batch(planned.peak, PlanSettings(cuda_context_gb=0.0)) < batch  # the 10% margin


def test_check_fits_names_stage_need_margin_and_fix():
    """A fit needs the peak, the margin (10%) and the CUDA context (1 GB) under the memory; the refusal says
    which knob to turn, with the batch size that fits: (55 - 1) / 1.1 = 49.1 GB usable, 14 + 9 per row: 3."""
    plan = StagePlan("generate m", peak=int(50e9), parts={"parameters": int(14e9)}, per_row=int(9e9), batch=4,
                     batch_key="generation.batch_size")
    check_fits([plan], int(80e9))
    with pytest.raises(PlanError, match=r"^generate m: needs 56.0 GB of accelerator memory \(peak 50.0 \+ 10% margin "
                                        r"\+ 1 GB CUDA context\), 55.0 GB available; fix: generation.batch_size: 3$"):
        check_fits([plan], int(55e9))  # the peak alone would fit: the margin and context do not


def test_a_gpu_stage_is_refused_in_a_child_process_before_anything_loads(monkeypatch, tmp_path):
    import mubench.plan.fit as memory

    CONFIG.save_pretrained(tmp_path)  # a checkpoint's config.json (the plan needs no weights)
    memory.ensure_fits("cpu", plan_unlearn_stage, "unlearn m/ga", "ga", hparams("ga"), tmp_path)  # CPU: no plan
    monkeypatch.setattr(memory, "free_device_memory", lambda: int(1e5))
    with pytest.raises(PlanError, match=r"^unlearn m/ga: needs 0\.\d GB of accelerator memory \(peak 0\.\d \+ 10% "
                                        r"margin\), 0\.0 GB free; fix: method_params\.ga\.lora"):
        memory.ensure_fits("cuda", plan_unlearn_stage, "unlearn m/ga", "ga", hparams("ga"), tmp_path)


# ---------------------------------------------------------------- settings that make 7-8B fit: equivalence
def test_frozen_copy_is_a_detached_copy_in_the_asked_dtype(tiny_model):
    ref = frozen_copy(tiny_model, torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in ref.parameters())
    assert ref.lm_head.weight is ref.model.embed_tokens.weight  # tied weights stay tied
    same = frozen_copy(tiny_model, torch.float32)
    for p, q in zip(tiny_model.parameters(), same.parameters(), strict=True):
        assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()


def test_bf16_reference_gives_the_fp32_reference_losses_to_bf16_tolerance(tiny_model, tokenizer, pairs):
    method = METHODS.get("npo", {"lr": 1e-3, "steps": 1, "batch_size": 4, "max_length": 64, "retain_weight": 1.0})
    batch = collate(encode_pairs(tokenizer, pairs, 64), tokenizer.pad_token_id)
    losses = {}
    for dtype in (torch.float32, torch.bfloat16):
        run = setup_training(method, copy.deepcopy(tiny_model), 0, "cpu", ref_dtype=dtype)
        with torch.no_grad():
            losses[dtype] = method.loss(run.model, run.ref, {"forget": batch, "retain": batch})[0].item()
    assert losses[torch.bfloat16] == pytest.approx(losses[torch.float32], rel=2e-2, abs=2e-2)


def test_adapter_disabled_reference_is_the_untrained_base(tiny_model, tokenizer, pairs):
    base = copy.deepcopy(tiny_model)
    method = METHODS.get("npo", {"lr": 5e-3, "steps": 3, "batch_size": 4, "max_length": 64,
                                 "lora": {**LORA, "save": "adapter"}})
    trained = unlearn(method, tiny_model, tokenizer, pairs, pairs, seed=0, device="cpu").model
    batch = collate(encode_pairs(tokenizer, pairs, 64), tokenizer.pad_token_id)
    ids = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        assert not torch.allclose(trained(**ids).logits, base(**ids).logits, atol=1e-4)  # the adapters moved
        assert torch.allclose(AdapterDisabledReference(trained)(**ids).logits, base(**ids).logits, atol=1e-5)
        assert nll(AdapterDisabledReference(trained), batch).item() == pytest.approx(nll(base, batch).item(), abs=1e-5)


@pytest.mark.parametrize("lora", [None, LORA])
def test_gradient_checkpointing_gives_the_same_gradients(tiny_model, tokenizer, pairs, lora):
    batch = collate(encode_pairs(tokenizer, pairs, 64), tokenizer.pad_token_id)
    grads = {}
    for checkpointing in (False, True):
        torch.manual_seed(0)  # the same LoRA initialisation
        method = METHODS.get("graddiff", {"lr": 1e-3, "steps": 1, "batch_size": 4, "max_length": 64, "lora": lora,
                                          "gradient_checkpointing": checkpointing})
        run = setup_training(method, copy.deepcopy(tiny_model), 0, "cpu")
        assert run.network.is_activation_checkpointing == checkpointing
        loss, _ = method.loss(run.model, run.ref, {"forget": batch, "retain": batch})
        loss.backward()
        grads[checkpointing] = [p.grad.clone() for p in run.trainable]
    for plain, checkpointed in zip(grads[False], grads[True], strict=True):
        assert torch.allclose(plain, checkpointed, atol=1e-5, rtol=1e-5)


def test_relearning_plan_is_within_ten_percent_of_a_real_step():
    from mubench.plan.unlearn import plan_training
    from mubench.tamper.relearn import FineTune, RelearnParams

    train = RelearnParams(steps=1, pairs=4, lr=1e-3, batch_size=2, max_length=32).train_params(4)
    planned = plan_training("relearn_forget m", FineTune(train), train, CONFIG, "tamper.params.relearn_forget")
    torch.manual_seed(0)
    tune = FineTune(train)
    run = setup_training(tune, build(CONFIG, torch.float32), seed=0, device="cpu", mixed_precision="bf16")
    batches = {"forget": _dummy_batch(2, 32, CONFIG.vocab_size)}
    _prime_optimizer(run)
    real = measure(lambda: train_step(tune, run, batches, 2), run.network, run.ref, run.optimizer)
    assert abs(planned.peak - real["total"]) <= 0.10 * real["total"], (planned.peak, real)
    assert planned.fixes[0].startswith("tamper.params.relearn_forget.lora: {r: 16} (adapters only)")


@pytest.mark.parametrize("tied", [False, True])
def test_ablation_plan_is_within_ten_percent_of_a_real_edit(tied):
    from mubench.plan.tamper import plan_ablation
    from mubench.tamper.refusal_ablation import orthogonalize

    config = LlamaConfig(**{**CONFIG.to_dict(), "tie_word_embeddings": tied})
    planned = plan_ablation("refusal_ablation m", config)
    torch.manual_seed(0)
    model = build(config, torch.bfloat16).eval()
    real = measure(lambda: orthogonalize(model, torch.randn(config.hidden_size)), model)
    assert abs(planned.peak - real["total"]) <= 0.10 * real["total"], (planned.peak, real)
    # the edit's float copies and, when tied, the LM head's own copy sit above the weights
    assert planned.peak > planned.parts["parameters"]


def test_the_tamper_stage_is_refused_before_anything_loads(monkeypatch, tmp_path):
    import mubench.plan.fit as memory
    from mubench.families import load_params
    from mubench.plan.tamper import tamper_plans

    tiny = load_params(ROOT / "profiles" / "tiny.yaml")
    CONFIG.save_pretrained(tmp_path)
    monkeypatch.setattr(memory, "free_device_memory", lambda: int(1e5))
    with pytest.raises(PlanError, match=r"^relearn_benign m/ga-seed0: needs .* fix: "
                                        r"tamper\.params\.relearn_benign\.lora"):
        memory.ensure_fits("cuda", tamper_plans, tiny, tmp_path, "m/ga-seed0")


def test_plan_covers_gsm8k_generation_and_the_tamper():
    from mubench.families import load_params
    from mubench.plan.profile import hours_by_kind, plan_profile

    tiny = load_params(ROOT / "profiles" / "tiny.yaml").model_copy(update={"methods": ["ga"]})
    assert "gsm8k" in tiny.data.utility and tiny.tamper.names
    plans = {p.stage: p for p in plan_profile(tiny)}
    gen = plans["utility generation tiny-llama"]
    assert gen.batch_key == "utility.batch_size_by_model.tiny-llama" and gen.flops > 0  # tiny.yaml sets its own
    for name in tiny.tamper.names:
        assert plans[f"{name} tiny-llama"].peak > 0
    assert plans["generate tiny-llama (tampered)"].flops > 0
    assert "tamper attacks" in hours_by_kind(list(plans.values()), PlanSettings())
    # no generation task, no generation batch; no tamper attacks, none of their stages
    plain = tiny.model_copy(update={
        "data": tiny.data.model_copy(update={"utility": [t for t in tiny.data.utility if t != "gsm8k"]}),
        "tamper": tiny.tamper.model_copy(update={"names": []})})
    stages = {p.stage for p in plan_profile(plain)}
    assert "utility generation tiny-llama" not in stages and "utility tiny-llama" in stages
    assert not any("relearn" in s or "tampered" in s for s in stages)


# ---------------------------------------------------------------- the CLI
def test_check_refuses_the_smoke_profile_on_a_1_gb_gpu():
    mubench = Path(sys.executable).with_name("mubench")  # the console script of this environment
    done = subprocess.run([str(mubench), "check", "params.yaml", "--gpu-mem", "1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: unlearn smollm2-135m/ga: needs ")
    assert "1.0 GB available; fix: method_params.ga.lora" in errors[0]


def test_plan_prints_every_stage_as_json_and_exits_2_when_one_does_not_fit():
    import json

    mubench = Path(sys.executable).with_name("mubench")
    done = subprocess.run([str(mubench), "plan", "profiles/tiny.yaml", "--json", "--gpu-mem", "0.001"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    plan = json.loads(done.stdout)
    stages = [row["stage"] for row in plan["stages"]]
    assert stages[0] == "unlearn tiny-llama/ga" and "generate tiny-llama" in stages and "utility tiny-llama" in stages
    assert len([s for s in stages if s.startswith("unlearn")]) == 9
    assert set(plan["gpu_hours"]) >= {"unlearning", "generation", "utility"}
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: unlearn tiny-llama/ga: needs ")


def test_unlearning_compute_counts_every_seed():
    from mubench.families import load_params
    from mubench.plan.profile import plan_profile

    tiny = load_params(ROOT / "profiles" / "tiny.yaml").model_copy(update={"methods": ["ga"]})
    one = {p.stage: p for p in plan_profile(tiny)}
    two = {p.stage: p for p in plan_profile(tiny.model_copy(update={"seeds": [0, 1]}))}
    assert two["unlearn tiny-llama/ga (x2 seeds)"].flops == 2 * one["unlearn tiny-llama/ga"].flops
    assert two["unlearn tiny-llama/ga (x2 seeds)"].peak == one["unlearn tiny-llama/ga"].peak
    # every variant (one per seed) is evaluated: generation compute follows the variant count (base + seeds)
    assert two["generate tiny-llama"].flops == one["generate tiny-llama"].flops * 3 / 2
    # and tampered (every checkpoint, the base included)
    for stage in ("generate tiny-llama (tampered)", "relearn_forget tiny-llama"):
        assert two[stage].flops == one[stage].flops * 3 / 2


def test_graph_decoding_is_priced_apart_at_the_assumed_overhead():
    """Issue 38: a stage that decodes with `generation.decode: graphs` keeps the measured eager overhead in its
    GPU-hours and gets the assumed one only in the separate column; a stage that does not decode never moves."""
    from mubench.plan.fit import gpu_hours
    from mubench.plan.roofline import Phase
    from mubench.plan.stage import StagePlan

    settings = PlanSettings()
    steps = 1e5  # an overhead-bound decode: tiny steps, many of them
    decode = StagePlan("generate m", 1, phases=[Phase("decode", 1e9, 1e6, steps)], layers=32, graphs=True)
    eager = gpu_hours(decode, settings)
    assert eager == pytest.approx(steps * settings.step_overhead_s_per_layer * 32 / 3600)
    assert gpu_hours(decode, settings, assume_graphs=True) == pytest.approx(
        steps * settings.graph_step_overhead_s_per_layer * 32 / 3600)
    not_compiled = copy.copy(decode)
    not_compiled.graphs = False
    assert gpu_hours(not_compiled, settings, assume_graphs=True) == eager
    scoring = StagePlan("utility m", 1, phases=[Phase("utility", 1e15, 0.0)], graphs=True)
    assert gpu_hours(scoring, settings, assume_graphs=True) == gpu_hours(scoring, settings)


def test_the_graph_decoding_plan_rounds_the_static_cache_like_the_engine():
    """The traced generation batch under `decode: graphs` holds the cache length the engine allocates (rounded up
    to GRAPH_LENGTH_STEP): a larger peak when rounding adds positions, the same peak when the length is already a
    multiple of the step."""
    from mubench.engine.generate import GRAPH_LENGTH_STEP

    config = LlamaConfig(vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=8,
                         num_attention_heads=4)  # no grouped-query attention: the cache dominates

    def peaks(prompt: int, new: int) -> tuple[int, int]:
        eager = plan_generation("generate m", config, 4, prompt, new, "generation.batch_size")
        graphs = plan_generation("generate m", config, 4, prompt, new, "generation.batch_size", graphs=True)
        assert graphs.graphs and not eager.graphs
        return eager.peak, graphs.peak

    eager, graphs = peaks(40, 8)  # 48 positions -> 128
    assert graphs > eager
    eager, graphs = peaks(GRAPH_LENGTH_STEP - 8, 8)  # already 128
    assert graphs == eager
