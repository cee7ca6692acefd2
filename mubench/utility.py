"""Utility scoring through lm-eval (log-likelihood multiple choice in cloze form: acc and acc_norm).

Each utility split built by mubench becomes a local lm-eval task (a generated YAML over the split's jsonl),
so the scoring protocol is lm-eval's own; the task YAML is recorded in the metrics for audit. The model
wrapper is lm-eval's ``HFLM`` with one change: the choices of a question share its context, so the context
is run once and its KV cache reused for every choice (lm-eval re-runs context + choice per choice); the
log-likelihoods are lm-eval's to float tolerance (tests/test_utility.py).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch
import yaml

from mubench.kv import CACHE_ARG, PrefixCache

TASK_PREFIX = "mubench_"


def score_continuations(model, context: list[int], continuations: list[list[int]]) -> list[tuple[float, bool]]:
    """(sum of log p(continuation tokens | context), whether greedy decoding yields them) per continuation,
    with the context computed once."""
    device = model.device
    prefix = PrefixCache(model, torch.tensor(context, device=device))
    first = torch.log_softmax(prefix.last_logits.float(), dim=-1)
    width = max(len(c) for c in continuations) - 1
    rest = None
    if width > 0:
        # each continuation but its last token, right padded: pads come after the real tokens, so the
        # causal mask keeps them out of every scored position
        ids = torch.zeros((len(continuations), width), dtype=torch.long, device=device)
        for row, cont in enumerate(continuations):
            ids[row, :len(cont) - 1] = torch.tensor(cont[:-1], device=device)
        with torch.no_grad():
            logits = model(input_ids=ids, use_cache=True, **{CACHE_ARG: prefix.expand(len(continuations))}).logits
        rest = torch.log_softmax(logits.float(), dim=-1)
    scores = []
    for row, cont in enumerate(continuations):
        logp = [first] + ([rest[row, j] for j in range(len(cont) - 1)] if rest is not None else [])
        total = sum(float(lp[token]) for lp, token in zip(logp, cont, strict=True))
        greedy = all(int(lp.argmax()) == token for lp, token in zip(logp, cont, strict=True))
        scores.append((total, greedy))
    return scores


def _shared_context_lm(hflm_class):
    """lm-eval's HFLM whose log-likelihood requests are scored per context with a shared KV cache."""

    class SharedContextLM(hflm_class):
        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
            groups: dict[tuple[int, ...], list[int]] = {}
            too_long = []
            for i, (_, context, continuation) in enumerate(requests):
                if len(context) + len(continuation) > self.max_length + 1 or not context:
                    too_long.append(i)  # lm-eval truncates these from the left: its own path does that
                else:
                    groups.setdefault(tuple(context), []).append(i)
            results: list[tuple[float, bool] | None] = [None] * len(requests)
            for context, members in groups.items():
                scored = score_continuations(self.model, list(context), [requests[i][2] for i in members])
                for i, answer in zip(members, scored, strict=True):
                    results[i] = answer
                    if requests[i][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
            if too_long:
                fallback = super()._loglikelihood_tokens([requests[i] for i in too_long], disable_tqdm=True,
                                                         override_bs=override_bs)
                for i, answer in zip(too_long, fallback, strict=True):
                    results[i] = answer
            return results

    return SharedContextLM


def task_config(name: str, data_file: Path, num_fewshot: int) -> dict:
    """An lm-eval task over a built utility split (fields: prompt, choices, answer)."""
    return {
        "task": f"{TASK_PREFIX}{name.replace('-', '_')}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
        "test_split": "test",
        "fewshot_split": "test" if num_fewshot else None,
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{prompt}}\nAnswer:",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{answer}}",
        "target_delimiter": " ",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }


def evaluate_utility(model, tokenizer, splits: dict[str, Path], num_fewshot: int, batch_size: int,
                     seed: int) -> dict:
    """Score ``model`` on each split; returns {task: {acc, acc_norm, n, correct: [0/1 per sample], ...}}."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tokenizer.padding_side = "left"
    lm = _shared_context_lm(HFLM)(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        configs = {}
        for name, path in splits.items():
            config = {k: v for k, v in task_config(name, path, num_fewshot).items() if v is not None}
            (Path(tmp) / f"{config['task']}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            configs[name] = config
        manager = TaskManager(include_path=tmp, include_defaults=False)
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=[c["task"] for c in configs.values()],
            task_manager=manager,
            num_fewshot=num_fewshot,
            log_samples=True,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
            bootstrap_iters=0,
        )
    for name, config in configs.items():
        task = config["task"]
        metrics = results["results"][task]
        samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
        out[name] = {
            "acc": float(metrics["acc,none"]),
            "acc_norm": float(metrics["acc_norm,none"]),
            "n": len(samples),
            "correct": [int(s["acc"]) for s in samples],
            "ids": [s["doc"]["id"] for s in samples],
            "num_fewshot": num_fewshot,
            "protocol": "lm-eval multiple_choice, cloze 'Question: ...\\nAnswer:' + ' choice'",
        }
    return out
