"""Every method's loss against its formula (independent computation, masks included) and a few steps that move
the method's own target the right way."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from mubench.methods import METHODS
from mubench.methods.rmu import layer_activations, steered_layer
from mubench.methods.sku import negate_task_vector
from mubench.methods.targets import REFUSALS, mismatched, refusal_for, with_refusals
from mubench.training.loop import collate, encode_pairs, unlearn
from mubench.training.losses import IGNORE, nll, sequence_logprob
from tests.conftest import ROOT
from tests.helpers.rows import pair
from tests.test_losses_methods import manual_seq_logprob


def batch_of(tokenizer, pairs):
    return collate(encode_pairs(tokenizer, pairs, max_length=128), tokenizer.pad_token_id)


def manual_nll(model, batch):
    total, count = manual_seq_logprob(model, batch)
    return -total.sum() / count.sum()


def manual_kl(model, ref, batch):
    """KL(ref || theta) per response token, looped by hand."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    ref_logits = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    terms = []
    for b in range(logits.shape[0]):
        for t in range(1, logits.shape[1]):
            if batch["labels"][b, t] == IGNORE:
                continue
            p = torch.softmax(ref_logits[b, t - 1], -1)
            terms.append((p * (torch.log(p) - torch.log_softmax(logits[b, t - 1], -1))).sum())
    return torch.stack(terms).mean()


@pytest.fixture()
def setup(tiny_model, tokenizer, pairs):
    ref = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.02 * torch.randn_like(p, generator=torch.Generator().manual_seed(1)))
    retain = [pair(f"Retain question {i}?", f"Retain answer number {i}.") for i in range(4)]
    return tiny_model, ref, tokenizer, pairs, retain


def batches_for(method, tokenizer, forget, retain):
    streams = method.streams(forget, retain, 0)
    return {name: batch_of(tokenizer, rows) for name, rows in streams.items() if rows}


def test_npo_reads_retain_only_with_a_retain_weight(pairs):
    retain = [pair("r?", "r.")]
    assert "retain" not in METHODS.get("npo", {"retain_weight": 0.0}).streams(pairs, retain, 0)
    assert METHODS.get("npo", {"retain_weight": 1.0}).streams(pairs, retain, 0)["retain"] == retain


def test_a_loss_reading_an_undeclared_or_empty_stream_is_one_line(tiny_model, tokenizer, pairs):
    from mubench.training.loop import StreamError, unlearn

    params = METHODS.entry("ga").Params(lr=1e-3, steps=1, batch_size=2, max_length=64)
    ga = METHODS.get("ga", params)
    reads_retain = type("ReadsRetain", (type(ga),), {"loss": lambda self, model, ref, batches: (
        nll(model, batches["retain"]), {})})(params)
    with pytest.raises(StreamError, match=r"^unlearn ga: the loss reads stream 'retain', which its streams\(\) does "
                                          r"not declare \(declared: forget\); add it there$"):
        unlearn(reads_retain, tiny_model, tokenizer, pairs, pairs, seed=0, device="cpu")
    graddiff = METHODS.get("graddiff", {"lr": 1e-3, "steps": 1, "batch_size": 2, "max_length": 64})
    with pytest.raises(StreamError, match=r"^unlearn graddiff: the loss reads stream 'retain', which has no pairs"):
        unlearn(graddiff, tiny_model, tokenizer, pairs, [], seed=0, device="cpu")


def test_lora_on_a_method_that_chooses_its_own_weights_is_refused_at_check_time(tmp_path, monkeypatch):
    import yaml

    from mubench.core.config import ConfigError
    from mubench.families import load_params
    from mubench.methods.base import Method

    class OwnWeights(Method):
        name = "ga"  # stands in for ga below, under its name as the registry requires
        chooses_weights = True

        def prepare(self, model, seed):
            pass

        def loss(self, model, ref, batches):
            raise AssertionError("validated, never trained")

    raw = yaml.safe_load((ROOT / "profiles" / "tiny.yaml").read_text())
    raw["method_params"]["ga"] = {**raw["method_params"].get("ga", {}), "lora": {"r": 4}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    load_params(tmp_path / "p.yaml")  # ga with LoRA is fine
    monkeypatch.setitem(METHODS._entries, "ga", OwnWeights)
    with pytest.raises(ConfigError, match=r"method_params\.ga\.lora: ga chooses its own trainable weights "
                                          r"\(prepare\); remove lora$"):
        load_params(tmp_path / "p.yaml")


def test_a_hook_must_be_declared_and_the_plan_reads_the_declaration():
    """Issue 39: what a method trains is declared on the method (``chooses_weights`` with ``prepare``,
    ``edits_after_training`` with ``finalize``), checked when the class is defined; the plan costs a new method that
    picks its own weights as a partial backward, as it does RMU (it used to test the name "rmu")."""
    from transformers import LlamaConfig

    from mubench.methods.base import Method
    from mubench.plan.unlearn import plan_training
    from mubench.training.params import TrainParams

    with pytest.raises(TypeError, match="overrides prepare without declaring chooses_weights = True"):
        class Undeclared(Method):
            def prepare(self, model, seed):
                pass
    with pytest.raises(TypeError, match="declares edits_after_training without a finalize"):
        class Promised(Method):
            edits_after_training = True

    class LastLayerOnly(Method):
        name = "last_layer_only"
        chooses_weights = True

        def prepare(self, model, seed):
            for name, weight in model.named_parameters():
                weight.requires_grad_(name.startswith("model.layers.1."))

        def loss(self, model, ref, batches):
            from mubench.training.losses import nll

            value = nll(model, batches["forget"])
            return value, {"nll": value.item()}

    class Everything(LastLayerOnly):
        name = "everything"
        chooses_weights = False
        prepare = Method.prepare

    config = LlamaConfig(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4)
    train = TrainParams(steps=1, batch_size=2, max_length=32)
    partial = plan_training("unlearn m/last", LastLayerOnly(), train, config, "method_params.last_layer_only",
                            torch.float32)
    full = plan_training("unlearn m/all", Everything(), train, config, "method_params.everything", torch.float32)
    assert partial.flops == pytest.approx(full.flops * 4 / 6)
    assert not any("lora" in fix for fix in partial.fixes) and any("lora" in fix for fix in full.fixes)


def test_targets_are_deterministic_and_harmless_refusals():
    assert refusal_for("abc") == refusal_for("abc") and refusal_for("abc") in REFUSALS
    rows = [pair(f"p{i}", f"r{i}") for i in range(5)]
    mixed = mismatched(rows, rows, seed=0)
    assert mixed == mismatched(rows, rows, seed=0)
    assert all(m.response != f"r{m.prompt[1:]}" for m in mixed)
    assert [r.prompt for r in with_refusals(rows)] == [r.prompt for r in rows]


def test_graddiff_formula(setup):
    model, _, tok, forget, retain = setup
    method = METHODS.get("graddiff", {"alpha": 0.7})
    b = batches_for(method, tok, forget, retain)
    loss, _ = method.loss(model, None, b)
    expected = -manual_nll(model, b["forget"]) + 0.7 * manual_nll(model, b["retain"])
    assert torch.isclose(loss, expected, atol=1e-5)


def test_simnpo_formula(setup):
    model, _, tok, forget, retain = setup
    method = METHODS.get("simnpo", {"beta": 3.0, "gamma": 0.5, "alpha": 0.4})
    b = batches_for(method, tok, forget, retain)
    loss, _ = method.loss(model, None, b)
    total, count = manual_seq_logprob(model, b["forget"])
    expected = -(2 / 3.0) * F.logsigmoid(-(3.0 / count) * total - 0.5).mean() + 0.4 * manual_nll(model, b["retain"])
    assert torch.isclose(loss, expected, atol=1e-5)


def test_dpo_formula_and_pairing(setup):
    model, ref, tok, forget, retain = setup
    method = METHODS.get("dpo", {"beta": 0.2})
    b = batches_for(method, tok, forget, retain)
    loss, _ = method.loss(model, ref, b)
    chosen = manual_seq_logprob(model, b["forget_refusal"])[0] - manual_seq_logprob(ref, b["forget_refusal"])[0]
    rejected = manual_seq_logprob(model, b["forget"])[0] - manual_seq_logprob(ref, b["forget"])[0]
    expected = -(2 / 0.2) * F.logsigmoid(0.2 * (chosen - rejected)).mean()
    assert torch.isclose(loss, expected, atol=1e-5)


def test_llmu_formula(setup):
    model, ref, tok, forget, retain = setup
    method = METHODS.get("llmu", {"eps1": 0.5, "eps2": 1.0, "eps3": 2.0})
    b = batches_for(method, tok, forget, retain)
    loss, _ = method.loss(model, ref, b)
    expected = (-0.5 * manual_nll(model, b["forget"]) + manual_nll(model, b["forget_random"])
                + 2.0 * manual_kl(model, ref, b["retain"]))
    assert torch.isclose(loss, expected, atol=1e-5)


def test_safe_unlearning_formula(setup):
    model, ref, tok, forget, retain = setup
    method = METHODS.get("safe_unlearning", {"alpha": 0.3, "beta": 1.5, "theta": 0.5})
    b = batches_for(method, tok, forget, retain)
    loss, _ = method.loss(model, ref, b)
    t_sum, t_n = manual_seq_logprob(model, b["forget"])
    r_sum, r_n = manual_seq_logprob(ref, b["forget"])
    unlearn_term = -F.logsigmoid(-1.5 * (t_sum / t_n - r_sum / r_n)).mean()
    expected = manual_nll(model, b["retain"]) + 0.5 * manual_nll(model, b["forget_refusal"]) + 0.3 * unlearn_term
    assert torch.isclose(loss, expected, atol=1e-5)


def test_sku_stage_one_formula(setup):
    model, ref, tok, forget, retain = setup
    method = METHODS.get("sku", {})
    b = batches_for(method, tok, forget, retain)
    loss, _ = method.loss(model, ref, b)
    expected = (manual_nll(model, b["forget"]) + manual_nll(model, b["forget_mismatched"])
                - manual_kl(model, ref, b["retain"]))
    assert torch.isclose(loss, expected, atol=1e-5)


def test_rmu_formula_layer_and_trainable_params(setup):
    model, ref, tok, forget, retain = setup
    params = METHODS.entry("rmu").Params(layer_fraction=0.5, steering_coeff=4.0, alpha=10.0)
    method = METHODS.get("rmu", params)
    method.prepare(model, seed=0)
    assert method.layer == steered_layer(2, 0.5) == 1
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".mlp." in n for n in trainable)
    b = batches_for(method, tok, forget, retain)
    loss, _ = method.loss(model, ref, b)
    out = model(input_ids=b["forget"]["input_ids"], attention_mask=b["forget"]["attention_mask"],
                output_hidden_states=True).hidden_states[method.layer + 1]
    forget_h = out[b["forget"]["labels"] != IGNORE]
    expected_forget = ((forget_h - 4.0 * method.direction) ** 2).mean()
    retain_h = layer_activations(model, b["retain"], method.layer)
    retain_ref = layer_activations(ref, b["retain"], method.layer)
    expected = expected_forget + 10.0 * ((retain_h - retain_ref) ** 2).mean()
    assert torch.isclose(loss, expected, atol=1e-5)
    assert torch.isclose(method.direction.norm(), torch.tensor(1.0))


def test_steered_layer_scales_with_depth():
    assert steered_layer(32, 7 / 32) == 7
    assert steered_layer(30, 7 / 32) == 7
    assert steered_layer(2, 7 / 32) == 0 and steered_layer(4, 0.99) == 3


def test_sku_negation_is_exact(tiny_model):
    base = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(torch.randn_like(p))
    harm = [p.detach().clone() for p in tiny_model.parameters()]
    negate_task_vector(tiny_model, base, 1.5)
    for p, h, p0 in zip(tiny_model.parameters(), harm, base.parameters(), strict=True):
        assert torch.equal(p, p0 - 1.5 * (h - p0))


def run_steps(name, model, tok, forget, retain, **overrides):
    params = METHODS.entry(name).Params(**{"lr": 5e-3, "steps": 4, "batch_size": 4, **overrides})
    method = METHODS.get(name, params)
    unlearn(method, model, tok, forget, retain, seed=0, device="cpu")
    return method


@pytest.mark.parametrize("name", ["graddiff", "llmu"])
def test_steps_raise_forget_nll(setup, name):
    model, _, tok, forget, retain = setup
    b = batch_of(tok, forget)
    before = nll(model, b).item()
    run_steps(name, model, tok, forget, retain)
    assert nll(model, b).item() > before + 0.05


def test_simnpo_steps_raise_forget_nll_once_forget_is_learned(setup):
    """SimNPO's sigmoid saturates on a random model (per-token log-prob ~ -6), so first fit the forget set."""
    model, _, tok, forget, retain = setup
    b = batch_of(tok, forget)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        nll(model, b).backward()
        optimizer.step()
    before = nll(model, b).item()
    run_steps("simnpo", model, tok, forget, retain, beta=1.0, alpha=0.0)
    assert nll(model, b).item() > before + 0.05


@pytest.mark.parametrize("name", ["dpo", "safe_unlearning"])
def test_steps_raise_refusal_logprob(setup, name):
    model, _, tok, forget, retain = setup
    refusals = batch_of(tok, with_refusals(forget))
    before = sequence_logprob(model, refusals)[0].mean().item()
    run_steps(name, model, tok, forget, retain)
    assert sequence_logprob(model, refusals)[0].mean().item() > before + 0.5


def test_rmu_steps_move_forget_activations_to_target(setup):
    model, _, tok, forget, retain = setup
    b = batch_of(tok, forget)
    method = METHODS.get("rmu", {"lr": 1e-2, "steps": 6, "batch_size": 4, "layer_fraction": 0.5, "steering_coeff": 2.0,
                                 "alpha": 1.0})
    method.prepare(copy.deepcopy(model), seed=0)
    layer, target = method.layer, 2.0 * method.direction
    before = ((layer_activations(model, b, layer) - target) ** 2).mean().item()
    unlearn(method, model, tok, forget, retain, seed=0, device="cpu")
    after = ((layer_activations(model, b, layer) - target) ** 2).mean().item()
    assert after < before * 0.9
    assert all(p.requires_grad for p in model.parameters())


def test_sku_training_moves_toward_harm_then_negates(setup):
    model, _, tok, forget, retain = setup
    base = copy.deepcopy(model)
    b = batch_of(tok, forget)
    run_steps("sku", model, tok, forget, retain, negation_scale=1.0)
    # with lambda = 1, theta_harm = 2 * theta_base - theta_final
    harm = copy.deepcopy(base)
    with torch.no_grad():
        for ph, p0, pf in zip(harm.parameters(), base.parameters(), model.parameters(), strict=True):
            ph.copy_(2 * p0 - pf)
    assert nll(harm, b).item() < nll(base, b).item() - 0.05
    assert nll(model, b).item() > nll(base, b).item()
