"""Time one step of mubench's shared training loop against a bare PyTorch loop (same loss, batch, optimizer).

    python benchmarks/unlearn_step.py                      # a random 4-layer Llama (no download)
    python benchmarks/unlearn_step.py --checkpoint models/smollm2-135m/base
Prints both per-step times and their ratio (target: 1.15 or less).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from mubench.core.config import TinyRandomModel
from mubench.core.records import CorpusPair
from mubench.core.runtime import seed_everything
from mubench.engine.models import byte_level_tokenizer, load_checkpoint, tiny_random_model
from mubench.methods import METHODS
from mubench.training.loop import batch_stream, encode_pairs, unlearn
from mubench.training.losses import nll


def pairs(n: int) -> list[CorpusPair]:
    return [CorpusPair(id=f"{i}", dataset="bench", prompt=f"Describe item number {i} in a sentence.",
                       response=f"Item {i} is an ordinary object that people use every day at home and at work.")
            for i in range(n)]


def bare_loop(model, tokenizer, data, steps: int, batch_size: int, lr: float) -> float:
    stream = batch_stream(encode_pairs(tokenizer, data, 256), batch_size, tokenizer.pad_token_id, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        loss = -nll(model, next(stream))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    seed_everything(0)
    if args.checkpoint:
        model, tokenizer = load_checkpoint(args.checkpoint)
    else:
        tokenizer = byte_level_tokenizer()
        spec = TinyRandomModel(source="tiny_random", hidden_size=256, num_hidden_layers=4, num_attention_heads=8,
                               intermediate_size=768)
        model = tiny_random_model(spec, tokenizer, seed=0)
    data = pairs(64)
    params = METHODS.entry("ga").Params(lr=1e-5, steps=args.steps, batch_size=args.batch_size)
    method = METHODS.get("ga", params)
    bare_loop(copy.deepcopy(model), tokenizer, data, 2, args.batch_size, 1e-5)  # warm-up
    bare = bare_loop(copy.deepcopy(model), tokenizer, data, args.steps, args.batch_size, 1e-5)
    result = unlearn(method, copy.deepcopy(model), tokenizer, data, [], seed=0, device="cpu")
    ours = result.wall_time_s / args.steps
    print(f"per step: mubench loop {ours * 1000:.1f} ms, bare PyTorch {bare * 1000:.1f} ms, "
          f"ratio {ours / bare:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
