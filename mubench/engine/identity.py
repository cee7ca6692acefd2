"""Everything besides the prompt and the decoding settings that can change a generated token: the context of
the generation cache key.

A cached response is served only when all of these equal those of the run that generated it:
- the model: its weights (the verified ``model_hash``), its config as loaded (``rms_norm_eps``, rope, ...),
  its generation config, a LoRA adapter's settings;
- the tokenizer: its vocabulary and merges, special tokens and chat template, as loaded;
- where it runs: device type (and the GPU's name), parameter dtype, TF32 switches, CUDA and cuDNN versions;
- the libraries and kernel paths: the versions ``run_record`` records and the CPU kernel paths in use;
- this engine's own code (the sha256 of ``mubench/engine``'s source);
- the batch size. On the CPU the engine is batch-invariant (a row gets the same tokens in any batch:
  ``tests/test_generate.py``), but a GPU's GEMM kernels change with the batch shape, so the size is part of
  the key; which rows share a batch is not (on a GPU, a run with the cache off may batch rows differently).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from mubench.core.io import package_versions, stable_json_hash

ENGINE_DIR = Path(__file__).resolve().parent


@functools.cache
def engine_code_sha256() -> str:
    """sha256 over the engine package's source files (name and bytes), so an engine change invalidates."""
    digest = hashlib.sha256()
    for path in sorted(ENGINE_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _plain(obj: Any) -> Any:
    """JSON-safe, order-stable form of a config dict (sets sorted, dtypes and paths as strings)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=lambda v: sorted(map(str, v))
                                 if isinstance(v, set | frozenset) else str(v)))


def model_identity(model) -> dict[str, Any]:
    """The loaded model's config, generation config and adapter settings (paths left out: a copy of the same
    checkpoint elsewhere is the same model)."""
    config = {k: v for k, v in model.config.to_dict().items() if k not in {"_name_or_path", "name_or_path"}}
    generation = getattr(model, "generation_config", None)
    peft = getattr(model, "peft_config", None) or {}
    adapters = {name: {k: v for k, v in cfg.to_dict().items() if k not in {"base_model_name_or_path", "revision"}}
                for name, cfg in peft.items()}
    return _plain({"config": config, "generation_config": generation.to_dict() if generation else None,
                   "adapters": adapters})


def tokenizer_identity(tokenizer) -> str:
    """sha256 of what decides the token ids and the chat text: the backend (vocabulary, merges, normaliser,
    added tokens), the special tokens, padding side and chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    extra = {"special": tokenizer.special_tokens_map, "padding_side": tokenizer.padding_side,
             "chat_template": getattr(tokenizer, "chat_template", None), "eos": tokenizer.eos_token_id,
             "pad": tokenizer.pad_token_id, "bos": tokenizer.bos_token_id}
    return hashlib.sha256(body.encode() + json.dumps(_plain(extra), sort_keys=True).encode()).hexdigest()


def device_identity(model) -> dict[str, Any]:
    """Device type and dtype of the parameters, plus what changes GPU arithmetic."""
    from mubench.core.kernels import kernel_record

    param = next(model.parameters())
    record: dict[str, Any] = {"device": param.device.type, "dtype": str(param.dtype), "kernels": kernel_record()}
    if param.device.type == "cuda":
        index = param.device.index if param.device.index is not None else torch.cuda.current_device()
        record.update(gpu=torch.cuda.get_device_name(index), cuda=torch.version.cuda,
                      cudnn=torch.backends.cudnn.version(), tf32=torch.backends.cuda.matmul.allow_tf32,
                      cudnn_tf32=torch.backends.cudnn.allow_tf32)
    return record


def generation_identity(model, tokenizer, batch_size: int) -> dict[str, Any]:
    """The parts of the cache key's context, by name (tests check that each invalidates)."""
    return {"model": model_identity(model), "tokenizer": tokenizer_identity(tokenizer),
            "runtime": device_identity(model), "versions": package_versions(), "engine": engine_code_sha256(),
            "batch_size": batch_size}


def generation_context(model_hash: str, model, tokenizer, batch_size: int) -> str:
    """The cache key's context: the weights' hash and ``generation_identity``, hashed."""
    return stable_json_hash({"weights": model_hash, **generation_identity(model, tokenizer, batch_size)})
