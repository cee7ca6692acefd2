"""The paper twin's GPU-only paths, as one short script (no download, no dataset; a GPU when there is one):

    python benchmarks/paper_twin_gpu.py --out benchmarks/results/paper_twin_gpu.json

1. compilation stays off: generation with the StaticCache asks transformers whether to compile (on CUDA it
   would say yes without ``disable_compile``); every answer must be no;
2. end tokens: the Llama-3 twin judge answers "unsafe" and stops on ``<|eot_id|>`` (its generation config's
   extra end token), not at the token cap;
3. bf16 LoRA: an r16 update of scale 1e-4 on a 4096 x 4096 bf16 weight, merged (what survives) vs kept unmerged
   (the adapter beside the bf16 base, as a LoRA variant is loaded now), on the device;
4. the three paper architectures' twins load from a local Hub cache and generate on the device in their
   release dtypes.
Writes one JSON with each check's figures and pass/fail. CI runs it on the CPU (tests/test_paper_path.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

REPOS = {"llama2-7b-chat": ("meta-llama/Llama-2-7b-chat-hf", "c1b0db933684edbfe29a06fa47eb19cc48025e93"),
         "llama3-8b-instruct": ("meta-llama/Meta-Llama-3-8B-Instruct", "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"),
         "mistral-7b-instruct": ("mistralai/Mistral-7B-Instruct-v0.2", "63a8b081895390a26e140280378bc85ec8bce07a")}
GUARD = ("meta-llama/Llama-Guard-3-8B", "7327bd9f6efbbe6101dc6cc4736302b3cbb6e425")


def load(cache: Path, repo: str, revision: str, device: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto").to(device).eval()
    return model, tokenizer


def check_compile(model, tokenizer) -> dict:
    from mubench.engine.generate import DecodeParams, chat_text, generate_batch

    asked = []
    cls = type(model)
    original = cls._valid_auto_compile_criteria

    def spy(self, model_kwargs, generation_config):
        asked.append(original(self, model_kwargs, generation_config))
        return asked[-1]

    cls._valid_auto_compile_criteria = spy
    try:
        generate_batch(model, tokenizer, [chat_text(tokenizer, "Hello"), chat_text(tokenizer, "Hi there")],
                       DecodeParams(4))
    finally:
        cls._valid_auto_compile_criteria = original
    return {"asked": len(asked), "compiled": sum(asked), "pass": bool(asked) and not any(asked)}


def check_end_tokens(cache: Path, device: str) -> dict:
    from mubench.engine.generate import DecodeParams, end_tokens, generate_batch
    from mubench.judges.llamaguard import LlamaGuard

    model, tokenizer = load(cache, *GUARD, device)
    judge = LlamaGuard()
    text = judge.text(tokenizer, "A question", "An answer")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = model.generate(input_ids=torch.tensor([ids], device=device), max_new_tokens=10, do_sample=False,
                             eos_token_id=end_tokens(model, tokenizer), pad_token_id=tokenizer.eos_token_id,
                             disable_compile=True)
    new = out[0, len(ids):].tolist()
    answer = generate_batch(model, tokenizer, [text], DecodeParams(10))[0]
    stops = tokenizer.convert_ids_to_tokens(end_tokens(model, tokenizer))
    return {"answer": answer, "new_tokens": len(new), "stops_on": stops,
            "pass": answer == "unsafe" and len(new) == 2 and "<|eot_id|>" in stops}


def check_bf16_lora(device: str) -> dict:
    """What survives of a LoRA update in bf16: merged into the weight, or kept beside it by PEFT (the LoRA layer's
    own forward on a bf16 base, adapters in fp32 as PEFT loads them), and the same unmerged layer run in fp32.
    Unmerged, the adapter itself is exact, but a bf16 forward rounds the layer's output, and with it the update's
    effect, about as much as a merge does; only an fp32 forward keeps it whole."""
    from peft import LoraConfig, get_peft_model

    gen = torch.Generator().manual_seed(0)
    weight = (torch.randn(4096, 4096, generator=gen) * 0.02).to(torch.bfloat16)
    out = {}
    for scale in (1e-4, 5e-4, 2.5e-3):
        a = torch.randn(16, 4096, generator=gen) / 64
        b = torch.randn(4096, 16, generator=gen) * scale
        update = (2.0 * b @ a).to(device)
        merged = (weight.to(device).float() + update).to(torch.bfloat16).float() - weight.to(device).float()
        net = torch.nn.Sequential()
        net.add_module("lin", torch.nn.Linear(4096, 4096, bias=False, dtype=torch.bfloat16))
        net.lin.weight.data.copy_(weight)
        peft = get_peft_model(net, LoraConfig(r=16, lora_alpha=32, target_modules=["lin"])).to(device)
        layer = peft.base_model.model.lin
        layer.lora_A["default"].weight.data = a.to(device, layer.lora_A["default"].weight.dtype)
        layer.lora_B["default"].weight.data = b.to(device, layer.lora_B["default"].weight.dtype)
        x = torch.randn(64, 4096, generator=gen).to(device, torch.bfloat16)
        exact = x.float() @ update.T
        cos = torch.nn.functional.cosine_similarity
        row = {"merged_weight_cosine": round(float(cos(merged.flatten(), update.flatten(), dim=0)), 4),
               "adapter_dtype": str(layer.lora_A["default"].weight.dtype).removeprefix("torch.")}
        for dtype in (torch.bfloat16, torch.float32):
            peft.to(dtype=dtype) if dtype == torch.float32 else None
            with torch.no_grad():
                seen = peft(x.to(dtype)).float()
                with peft.disable_adapter():
                    base = peft(x.to(dtype)).float()
            name = str(dtype).removeprefix("torch.")
            row[f"unmerged_{name}_forward_cosine"] = round(float(cos((seen - base).flatten(), exact.flatten(),
                                                                     dim=0)), 4)
        out[f"{scale:g}"] = row
    # the measured facts: a bf16 merge loses much of a 1e-4 update; an fp32 forward of the unmerged adapter keeps it
    out["pass"] = out["0.0001"]["merged_weight_cosine"] < 0.7 and all(
        v["unmerged_float32_forward_cosine"] > 0.999 for k, v in out.items() if k != "pass")
    return out


def main() -> None:
    from mubench.judges import JUDGES
    from mubench.tools.twin import save_twin_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("paper_twin_gpu.json"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    start = time.perf_counter()
    result: dict = {"device": args.device, "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
                    "torch": torch.__version__, "cuda": torch.version.cuda}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        for repo, revision in [*REPOS.values()]:
            save_twin_model(cache, repo, revision, seed=0)
        save_twin_model(cache, *GUARD, seed=0, judge=JUDGES.get("llamaguard"))
        models = {}
        for name, (repo, revision) in REPOS.items():
            model, tokenizer = load(cache, repo, revision, args.device)
            models[name] = {"dtype": str(model.dtype).removeprefix("torch."), **check_compile(model, tokenizer)}
        result["compile"] = models
        result["end_tokens"] = check_end_tokens(cache, args.device)
    result["bf16_lora"] = check_bf16_lora(args.device)
    result["pass"] = all(m["pass"] for m in result["compile"].values()) and result["end_tokens"]["pass"] \
        and result["bf16_lora"]["pass"]
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
