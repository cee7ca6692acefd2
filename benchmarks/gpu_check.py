"""GPU checks of the code paths CI cannot run (no GPU there), on random models (no download).

    python benchmarks/gpu_check.py --out gpu_check.json

1. batched greedy generation in bf16 equals unbatched generation (share of identical outputs), and throughput
   of a SmolLM2-135M-shaped random Llama;
2. every unlearning method runs a few steps on the GPU (bf16 autocast) and moves its target the right way
   (forget NLL up for the gradient-ascent family);
3. LoRA on the GPU: an adapter checkpoint reloads to the same logits;
4. GCG on the GPU: the target loss falls, and the prefix-KV-cache score equals a full forward pass;
5. an LLM judge (Llama Guard format) runs batched on the GPU;
6. time per training step, mubench loop vs bare PyTorch, on the GPU.
Each check records pass/fail and its figures in one JSON file.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
import traceback
from pathlib import Path

import torch

from mubench.core.config import TinyRandomModel
from mubench.core.records import CorpusPair
from mubench.core.runtime import seed_everything
from mubench.engine.models import byte_level_tokenizer, tiny_random_model
from mubench.methods import METHODS
from mubench.training.loop import collate, encode_pairs, unlearn
from mubench.training.losses import nll

PAIRS = [CorpusPair(id=f"f{i}", dataset="bench", prompt=f"Describe item number {i} in a sentence.",
                    response=f"Item {i} is an ordinary object that people use every day at home.") for i in range(32)]
RETAIN = [CorpusPair(id=f"r{i}", dataset="bench", prompt=f"Name fruit number {i}.", response=f"Fruit {i} is an apple.")
          for i in range(32)]


def tiny(tokenizer, hidden=64, layers=2, heads=4, inter=128):
    spec = TinyRandomModel(source="tiny_random", hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, intermediate_size=inter)
    return tiny_random_model(spec, tokenizer, seed=0)


def check_generation(tok) -> dict:
    from mubench.engine.generate import DecodeParams, generate

    model = tiny(tok).to("cuda", torch.bfloat16).eval()
    prompts = [f"Tell me about topic {i} " + "please " * (i % 7) for i in range(24)]
    decode = DecodeParams(24)
    batched = generate(model, tok, prompts, decode, batch_size=8)
    single = [generate(model, tok, [p], decode, batch_size=1)[0] for p in prompts]
    same = sum(a == b for a, b in zip(batched, single, strict=True)) / len(prompts)
    big = tiny(tok, hidden=576, layers=30, heads=9, inter=1536).to("cuda", torch.bfloat16).eval()
    many = [f"Question {i}: " + "what is this " * (1 + i % 5) for i in range(256)]
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = generate(big, tok, many, DecodeParams(64), batch_size=64)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    new_tokens = sum(len(tok(o, add_special_tokens=False)["input_ids"]) for o in out)
    # bf16 with different padding can flip a near-tie argmax, so a few outputs may differ (fp32 on CPU: all equal)
    return {"ok": same >= 0.75, "batched_equals_unbatched_share": same,
            "smollm2_shape_prompts_per_s": round(len(many) / elapsed, 1),
            "smollm2_shape_new_tokens_per_s": round(new_tokens / elapsed, 1)}


def check_methods(tok) -> dict:
    out = {}
    batch = collate(encode_pairs(tok, PAIRS[:8], 128), tok.pad_token_id)
    for name in METHODS.names():
        model = tiny(tok).to("cuda")
        before = nll(model, {k: v.to("cuda") for k, v in batch.items()}).item()
        # simnpo without its retain term: on these look-alike toy pairs retain NLL descent lowers forget NLL too
        extra = {"alpha": 0.0} if name == "simnpo" else {}
        method = METHODS.get(name, {"lr": 5e-3, "steps": 4, "batch_size": 8, **extra})
        result = unlearn(method, model, tok, PAIRS, RETAIN, seed=0, device="cuda")
        after = nll(result.model, {k: v.to("cuda") for k, v in batch.items()}).item()
        finite = all(v == v for row in result.history for v in row.values())
        out[name] = {"forget_nll_before": round(before, 4), "forget_nll_after": round(after, 4),
                     "final": {k: round(v, 4) for k, v in result.history[-1].items()}, "finite": finite}
    ascent = ("ga", "graddiff", "npo", "simnpo", "llmu")
    out["ok"] = all(out[n]["finite"] for n in METHODS.names()) and all(
        out[n]["forget_nll_after"] > out[n]["forget_nll_before"] for n in ascent)
    return out


def check_lora(tok) -> dict:
    from mubench.engine.models import load_checkpoint, save_checkpoint

    model = tiny(tok).to("cuda")
    with tempfile.TemporaryDirectory() as tmp:
        base_dir, ad_dir = Path(tmp) / "base", Path(tmp) / "ad"
        base_meta = save_checkpoint(model, tok, base_dir, {"variant": "base"})
        params = METHODS.entry("ga").Params(lr=5e-3, steps=3, batch_size=8, lora={"r": 4, "save": "adapter"})
        method = METHODS.get("ga", params)
        result = unlearn(method, model, tok, PAIRS, [], seed=0, device="cuda")
        save_checkpoint(result.model, tok, ad_dir, {"adapter": True, "base_dir": str(base_dir),
                                                    "base_model_hash": base_meta["model_hash"]})
        loaded, _ = load_checkpoint(ad_dir, "cuda")
        batch = {k: v.to("cuda") for k, v in collate(encode_pairs(tok, PAIRS[:4], 128), tok.pad_token_id).items()}
        with torch.no_grad():
            a = result.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            b = loaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        diff = (a - b).abs().max().item()
    return {"ok": diff < 1e-3, "max_logit_diff": diff}


def check_gcg(tok) -> dict:
    from mubench.jailbreaks import JAILBREAKS
    from mubench.jailbreaks.base import FitContext
    from mubench.jailbreaks.gcg import _Behaviour

    model = tiny(tok).to("cuda").eval()
    attack = JAILBREAKS.get("gcg", {"steps": 10, "search_width": 64, "topk": 32, "suffix_tokens": 6,
                                "early_stop": False})
    rows = [{"id": "b1", "prompt": "Name a colour."}, {"id": "b2", "prompt": "Count to three."}]
    start = time.perf_counter()
    fit = attack.fit(FitContext(model=model, tokenizer=tok, behaviours=rows, forget=[], seed=0))
    elapsed = time.perf_counter() - start
    ids = torch.tensor(fit["suffix_ids"], device="cuda")
    b = _Behaviour(model, tok, "Name a colour.", "Sure, here is", None)
    full = torch.cat([b.before, ids, b.after, b.target])[None]
    with torch.no_grad():
        logits = model(input_ids=full).logits[0]
    start_t = len(b.before) + len(ids) + len(b.after)
    direct = torch.nn.functional.cross_entropy(logits[start_t - 1:start_t - 1 + len(b.target)], b.target).item()
    cached = attack._score(model, [b], ids[None])[0].item()
    return {"ok": fit["losses"][-1] < fit["losses"][0] and abs(cached - direct) < 1e-3,
            "losses": fit["losses"], "cached_vs_direct": [cached, direct], "seconds": round(elapsed, 2)}


def check_llm_judge(tok) -> dict:
    from mubench.judges import JUDGES

    with tempfile.TemporaryDirectory() as tmp:
        tiny(tok).save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        judge = JUDGES.get("llamaguard", {"model": tmp, "device": "cuda", "batch_size": 4})
        verdicts = judge.judge_many([f"q{i}" for i in range(6)], [f"a{i}" for i in range(6)])
        device = str(judge.load()[0].device)
    return {"ok": len(verdicts) == 6 and device.startswith("cuda"), "labels": [v.label for v in verdicts]}


def check_step_time(tok) -> dict:
    model = tiny(tok, hidden=576, layers=30, heads=9, inter=1536)
    params = METHODS.entry("ga").Params(lr=1e-5, steps=10, batch_size=8)
    method = METHODS.get("ga", params)
    unlearn(METHODS.get("ga", {"lr": 1e-5, "steps": 2, "batch_size": 8}), copy.deepcopy(model).to("cuda"), tok,
            PAIRS, [], seed=0, device="cuda")  # warm-up
    result = unlearn(method, copy.deepcopy(model).to("cuda"), tok, PAIRS, [], seed=0, device="cuda")
    ours = result.wall_time_s / params.steps
    bare_model = copy.deepcopy(model).to("cuda").train()
    optimizer = torch.optim.AdamW(bare_model.parameters(), lr=1e-5, weight_decay=0.0)
    batch = {k: v.to("cuda") for k, v in collate(encode_pairs(tok, PAIRS[:8], 256), tok.pad_token_id).items()}
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(params.steps):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = -nll(bare_model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(bare_model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    torch.cuda.synchronize()
    bare = (time.perf_counter() - start) / params.steps
    return {"ok": True, "mubench_ms": round(ours * 1000, 2), "bare_ms": round(bare * 1000, 2),
            "ratio": round(ours / bare, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()
    assert torch.cuda.is_available(), "no GPU visible"
    seed_everything(0)
    tok = byte_level_tokenizer()
    import transformers

    report = {"torch": torch.__version__, "transformers": transformers.__version__,
              "device": torch.cuda.get_device_name(0)}
    for name, check in [("generation", check_generation), ("methods", check_methods), ("lora", check_lora),
                        ("gcg", check_gcg), ("llm_judge", check_llm_judge), ("step_time", check_step_time)]:
        start = time.perf_counter()
        try:
            report[name] = check(tok)
        except Exception:  # record and go on: one run should report every check
            report[name] = {"ok": False, "error": traceback.format_exc()[-2000:]}
        report[name]["wall_s"] = round(time.perf_counter() - start, 1)
        print(name, json.dumps(report[name])[:600], flush=True)
        args.out.write_text(json.dumps(report, indent=2))
    print("ALL OK" if all(v.get("ok") for v in report.values() if isinstance(v, dict)) else "SOME FAILED")


if __name__ == "__main__":
    main()
