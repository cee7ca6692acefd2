"""Time batched vs one-at-a-time greedy generation on a checkpoint; checks the outputs are identical.

    python benchmarks/generation.py models/smollm2-135m/base --prompts 32 --batch 32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mubench.core.io import read_jsonl
from mubench.engine.generate import DecodeParams, generate
from mubench.engine.models import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--prompts-file", type=Path, default=Path("data/built/oversafety.jsonl"))
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    model, tokenizer = load_checkpoint(args.checkpoint)
    prompts = [r["prompt"] for r in read_jsonl(args.prompts_file)][: args.prompts]
    params = DecodeParams(args.max_new_tokens)
    start = time.perf_counter()
    batched = generate(model, tokenizer, prompts, params, args.batch)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    single = generate(model, tokenizer, prompts, params, 1)
    t_single = time.perf_counter() - start
    same = sum(a == b for a, b in zip(batched, single, strict=True))
    print(f"{len(prompts)} prompts: batch {args.batch} {t_batched:.1f}s, batch 1 {t_single:.1f}s, "
          f"speed-up {t_single / t_batched:.1f}x, identical outputs {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
