"""LoRA (PEFT) unlearning: only adapters train; saved merged or as an adapter bound to its base's hash."""

from __future__ import annotations

import copy

import pytest
import torch
from pydantic import ValidationError

from mubench.core.io import read_json
from mubench.engine.models import load_checkpoint, save_checkpoint
from mubench.methods import METHODS
from mubench.training.loop import collate, encode_pairs, unlearn
from mubench.training.losses import nll


def batch(tokenizer, pairs):
    return collate(encode_pairs(tokenizer, pairs, 128), tokenizer.pad_token_id)


def train_ga(model, tokenizer, pairs, save):
    params = METHODS.entry("ga").Params(lr=5e-3, steps=3, batch_size=4, lora={"r": 4, "alpha": 8, "save": save})
    method = METHODS.get("ga", params)
    return unlearn(method, model, tokenizer, pairs, [], seed=0, device="cpu")


def test_lora_merged_raises_forget_nll_and_changes_only_targeted_weights(tiny_model, tokenizer, pairs):
    base = copy.deepcopy(tiny_model)
    before = nll(tiny_model, batch(tokenizer, pairs)).item()
    result = train_ga(tiny_model, tokenizer, pairs, "merged")
    merged = result.model
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert nll(merged, batch(tokenizer, pairs)).item() > before + 0.05
    new, old = dict(merged.named_parameters()), dict(base.named_parameters())
    assert set(new) == set(old)
    for name, p in new.items():
        changed = not torch.equal(p, old[name])
        assert changed == any(t in name for t in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                   "down_proj")), name


def test_lora_adapter_checkpoint_records_and_checks_its_base(tmp_path, tiny_model, tokenizer, pairs):
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "ga"
    base_meta = save_checkpoint(tiny_model, tokenizer, base_dir, {"variant": "base"})
    result = train_ga(tiny_model, tokenizer, pairs, "adapter")
    meta = save_checkpoint(result.model, tokenizer, adapter_dir, {"adapter": True, "base_dir": str(base_dir),
                                                                  "base_model_hash": base_meta["model_hash"]})
    assert (adapter_dir / "adapter_config.json").is_file() and not (adapter_dir / "model.safetensors").exists()
    assert read_json(adapter_dir / "mubench.json")["model_hash"] == meta["model_hash"] != base_meta["model_hash"]
    loaded, _ = load_checkpoint(adapter_dir)
    ids = batch(tokenizer, pairs)
    with torch.no_grad():
        expected = result.model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
        got = loaded(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
    assert torch.allclose(got, expected, atol=1e-5)
    # a different base under the recorded path is refused
    other = copy.deepcopy(loaded)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    save_checkpoint(other, tokenizer, base_dir, {"variant": "base"})
    with pytest.raises(RuntimeError, match="it was trained on base"):
        load_checkpoint(adapter_dir)


def test_lora_config_is_validated_per_method():
    with pytest.raises(ValidationError, match="rmu trains the MLP weights"):
        METHODS.entry("rmu").Params(lora={"r": 4})
    # sku negates its adapter's update (B -> -lambda B) instead of merged weights: both saves are valid
    assert METHODS.entry("sku").Params(lora={"r": 4}).lora.save == "adapter"
    assert METHODS.entry("sku").Params(lora={"save": "merged"}).lora.r == 8
