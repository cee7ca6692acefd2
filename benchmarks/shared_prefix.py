"""Time the shared-prefix KV caches against recomputing every prompt in full; checks results are identical.

1. generation of one attack's prompts (a long template shared by every seed): prefix once vs per row;
2. utility scoring: lm-eval's HFLM (context + choice per choice) vs the shared-context scorer.

    python benchmarks/shared_prefix.py models/smollm2-135m/base --attack data/jailbreaks/aim/prompts.jsonl
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import mubench.engine.generate as gen
import mubench.scoring.utility as utility
from mubench.core.io import read_jsonl
from mubench.engine.models import load_checkpoint


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--attack", type=Path, default=Path("data/jailbreaks/aim/prompts.jsonl"))
    parser.add_argument("--utility", type=Path, default=Path("data/built/utility/mmlu.jsonl"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    model, tokenizer = load_checkpoint(args.checkpoint)
    prompts = [r["prompt"] for r in read_jsonl(args.attack)]
    params = gen.DecodeParams(args.max_new_tokens)

    shared, t_shared = timed(lambda: gen.generate(model, tokenizer, prompts, params, args.batch))
    threshold, gen.MIN_SHARED_PREFIX = gen.MIN_SHARED_PREFIX, 10**9
    full, t_full = timed(lambda: gen.generate(model, tokenizer, prompts, params, args.batch))
    gen.MIN_SHARED_PREFIX = threshold
    same = sum(a == b for a, b in zip(shared, full, strict=True))
    print(f"generation, {len(prompts)} prompts of {args.attack.parent.name}: shared prefix {t_shared:.1f}s, "
          f"full prompts {t_full:.1f}s, speed-up {t_full / t_shared:.2f}x, identical outputs {same}/{len(prompts)}")

    splits = {"mmlu": args.utility}
    fast, t_fast = timed(lambda: utility.evaluate_utility(model, tokenizer, splits, 0, args.batch, 0))
    original, utility._shared_context_lm = utility._shared_context_lm, lambda cls: cls
    plain, t_plain = timed(lambda: utility.evaluate_utility(model, tokenizer, splits, 0, args.batch, 0))
    utility._shared_context_lm = original
    print(f"utility, {fast['mmlu']['n']} questions: shared context {t_fast:.1f}s, lm-eval HFLM {t_plain:.1f}s, "
          f"speed-up {t_plain / t_fast:.2f}x, same per-item correctness "
          f"{fast['mmlu']['correct'] == plain['mmlu']['correct']}, acc {fast['mmlu']['acc']:.3f} vs "
          f"{plain['mmlu']['acc']:.3f}")


if __name__ == "__main__":
    main()
