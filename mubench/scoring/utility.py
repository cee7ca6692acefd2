"""Utility scoring through lm-eval (log-likelihood multiple choice in cloze form: acc and acc_norm).

Each utility split built by mubench becomes a local lm-eval task (a generated YAML over the split's jsonl),
so the scoring protocol is lm-eval's own; the task YAML is recorded in the metrics for audit. The model
wrapper is lm-eval's ``HFLM`` with one change: the choices of a question share its context, so the context
is run once (contexts batched across questions) and its KV cache reused for every choice (lm-eval re-runs
context + choice per choice); the log-likelihoods are lm-eval's to float tolerance (tests/test_utility.py).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import torch
import yaml
from transformers import DynamicCache

from mubench.core.errors import InvalidValue
from mubench.core.records import TaskResult, UtilityItem
from mubench.engine.batching import length_batches
from mubench.engine.kv import CACHE_ARG, returned_cache

TASK_PREFIX = "mubench_"


def score_contexts(model, groups: list[tuple[list[int], list[list[int]]]], batch_size: int
                   ) -> list[list[tuple[float, bool]]]:
    """Per (context, continuations) group: (sum of log p(continuation tokens | context), whether greedy decoding
    yields them) for each continuation.

    Contexts are run once each, up to ``batch_size`` at a time (cut by ``length_batches``, left padded); every
    continuation then runs on a copy of its context's cache rows (batches cut the same way), so a question's
    choices never recompute its context."""
    results: list[list[tuple[float, bool]]] = [[] for _ in groups]
    for chunk in length_batches([len(context) for context, _ in groups], batch_size):
        for g, scored in zip(chunk, score_batch(model, [groups[g] for g in chunk], batch_size), strict=True):
            results[g] = scored
    return results


def _token_scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target) and whether it is the argmax, per position (logits ``(..., vocab)``, targets ``(...)``)."""
    logits = logits.float()
    logp = logits.gather(-1, targets[..., None])[..., 0] - logits.logsumexp(-1)
    return logp, logits.argmax(-1) == targets


@torch.no_grad()
def score_batch(model, groups: list[tuple[list[int], list[list[int]]]], batch_size: int
                 ) -> list[list[tuple[float, bool]]]:
    device = model.device
    width = max(len(context) for context, _ in groups)
    ids = torch.zeros((len(groups), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    positions = torch.zeros_like(ids)
    for i, (context, _) in enumerate(groups):
        ids[i, width - len(context):] = torch.tensor(context)
        mask[i, width - len(context):] = 1
        positions[i, width - len(context):] = torch.arange(len(context))
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                use_cache=True, logits_to_keep=1)
    last = out.logits[:, -1]  # after each context's last token: predicts each continuation's first token
    layers = [(layer.keys, layer.values) for layer in returned_cache(out).layers]
    rows = [(g, cont) for g, (_, conts) in enumerate(groups) for cont in conts]
    scores: dict[int, tuple[float, bool]] = {}
    for members in length_batches([len(cont) for _, cont in rows], batch_size):
        part = [rows[m] for m in members]
        owner = torch.tensor([g for g, _ in part], device=device)
        first = torch.tensor([cont[0] for _, cont in part], device=device)
        logp, greedy = _token_scores(last.index_select(0, owner), first)
        logp, greedy = logp[:, None], greedy[:, None]
        rest = max(len(cont) for _, cont in part) - 1
        if rest > 0:
            # each continuation but its last token, right padded (pads follow the real tokens, so the causal
            # mask keeps them out of every scored position), on its context's cache rows
            cont_ids = torch.zeros((len(part), rest), dtype=torch.long)
            targets = torch.zeros_like(cont_ids)
            cont_positions = torch.zeros_like(cont_ids)
            for r, (g, cont) in enumerate(part):
                cont_ids[r, :len(cont) - 1] = torch.tensor(cont[:-1])
                targets[r, :len(cont) - 1] = torch.tensor(cont[1:])
                cont_positions[r] = len(groups[g][0]) + torch.arange(rest)
            cache = DynamicCache(ddp_cache_data=[(k.index_select(0, owner), v.index_select(0, owner))
                                                 for k, v in layers])
            cont_mask = torch.cat([mask.to(device).index_select(0, owner),
                                   torch.ones((len(part), rest), dtype=torch.long, device=device)], dim=1)
            logits = model(input_ids=cont_ids.to(device), attention_mask=cont_mask,
                           position_ids=cont_positions.to(device), use_cache=True, **{CACHE_ARG: cache}).logits
            rest_logp, rest_greedy = _token_scores(logits, targets.to(device))
            logp, greedy = torch.cat([logp, rest_logp], 1), torch.cat([greedy, rest_greedy], 1)
        for r, (m, (_, cont)) in enumerate(zip(members, part, strict=True)):
            scores[m] = (float(logp[r, :len(cont)].double().sum()), bool(greedy[r, :len(cont)].all()))
    grouped: list[list[tuple[float, bool]]] = [[] for _ in groups]
    for m, (g, _) in enumerate(rows):
        grouped[g].append(scores[m])
    return grouped


def _shared_context_lm(hflm_class):
    """lm-eval's HFLM whose log-likelihood requests are scored per context with a shared KV cache."""

    class SharedContextLM(hflm_class):
        serve_generation = None  # set by ``evaluate_utility``: generation requests through mubench's generation

        def generate_until(self, requests, disable_tqdm: bool = False):
            if self.serve_generation is None:
                return super().generate_until(requests, disable_tqdm)
            return self.serve_generation(requests)

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
            groups: dict[tuple[int, ...], list[int]] = {}
            too_long = []
            for i, (_, context, continuation) in enumerate(requests):
                if len(context) + len(continuation) > self.max_length + 1 or not context:
                    too_long.append(i)  # lm-eval truncates these from the left: its own path does that
                else:
                    groups.setdefault(tuple(context), []).append(i)
            results: list[tuple[float, bool] | None] = [None] * len(requests)
            contexts = list(groups)
            batch = self.batch_size if isinstance(self.batch_size, int) else 16  # 16 where lm-eval says "auto"
            scored = score_contexts(self.model, [(list(c), [requests[i][2] for i in groups[c]]) for c in contexts],
                                    batch)
            for context, answers in zip(contexts, scored, strict=True):
                for i, answer in zip(groups[context], answers, strict=True):
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


def is_generation_split(path: Path) -> bool:
    """A built utility split whose rows carry no answer choices (GSM8K: a final number to generate)."""
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    return bool(first.strip()) and not json.loads(first).get("choices")


def utility_splits(built_dir: Path, names: list[str]) -> dict[str, Path]:
    """The built split of each utility task (``build`` writes ``utility/NAME.jsonl``)."""
    return {name: built_dir / "utility" / f"{name}.jsonl" for name in names}


def generation_tasks(splits: dict[str, Path]) -> list[str]:
    """The built utility splits (name -> file) that are generation tasks."""
    return [name for name, path in splits.items() if is_generation_split(path)]


def task_config(name: str, data_file: Path, num_fewshot: int) -> dict:
    """An lm-eval task over a built utility split (fields: prompt, choices, answer)."""
    return {
        "task": f"{TASK_PREFIX}{name.replace('-', '_')}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
        "test_split": "test",
        "fewshot_split": "test" if num_fewshot else None,
        "num_fewshot": num_fewshot,
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
                     seed: int, generation: dict | None = None, model_hash: str | None = None,
                     cache=None, graphs: bool = False) -> dict[str, TaskResult]:
    """Score ``model`` on each split; returns each task's TaskResult (accuracy, per-item correctness).

    A split without answer choices is a generation task (GSM8K, ``mubench.scoring.utility_generation``), run with the
    ``generation`` settings ({num_fewshot, max_gen_toks}) and scored by exact match (``acc`` = ``exact_match``,
    no ``acc_norm``); its generations are served by mubench's batched generation and cache (``model_hash``,
    ``cache``), decoded as the model's other generations are (``graphs``: ``generation.decode``)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from mubench.scoring.utility_generation import generation_task_config, serve_generate_until

    generating = set(generation_tasks(splits))
    if generating and generation is None:
        raise InvalidValue(f"{', '.join(sorted(generating))}: a generation task needs the generation settings "
                         "(utility.generation)")
    tokenizer.padding_side = "left"
    lm = _shared_context_lm(HFLM)(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    lm.serve_generation = lambda requests: serve_generate_until(lm, requests, model_hash, cache, batch_size,
                                                                    graphs)
    with tempfile.TemporaryDirectory() as tmp:
        configs = {}
        for name, path in splits.items():
            if name in generating:
                config = generation_task_config(name, path, generation["num_fewshot"], generation["max_gen_toks"])
            else:
                config = {k: v for k, v in task_config(name, path, num_fewshot).items() if v is not None}
            (Path(tmp) / f"{config['task']}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            configs[name] = config
        manager = TaskManager(include_path=tmp, include_defaults=False)
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=[c["task"] for c in configs.values()],
            task_manager=manager,
            num_fewshot=None,  # each task's own (its config)
            log_samples=True,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
            bootstrap_iters=0,
        )
    return {name: task_result(results, config, name in generating, num_fewshot) for name, config in configs.items()}


def task_result(results: dict, config: dict, generated: bool, num_fewshot: int) -> TaskResult:
    """One task's entry of ``evaluate_utility`` from lm-eval's results: accuracy (exact match for a generation
    task) and the per-sample correctness, in document order."""
    from mubench.scoring.utility_generation import scored_samples

    task = config["task"]
    metrics = results["results"][task]
    samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
    if generated:
        scored = scored_samples(samples)
        exact = sum(scored["correct"]) / len(samples) if samples else 0.0
        return TaskResult(
            acc=exact, acc_norm=None, exact_match=exact, **scored,
            lm_eval_exact_match=float(metrics["exact_match,flexible-extract"]), num_fewshot=config["num_fewshot"],
            protocol="lm-eval generate_until (gsm8k-cot prompt, greedy); exact match of the last number")
    return TaskResult(
        acc=float(metrics["acc,none"]), acc_norm=float(metrics["acc_norm,none"]),
        correct=[int(s["acc"]) for s in samples], ids=[s["doc"]["id"] for s in samples], num_fewshot=num_fewshot,
        protocol="lm-eval multiple_choice, cloze 'Question: ...\\nAnswer:' + ' choice'")


def utility_rows(utility: dict[str, TaskResult]) -> list[UtilityItem]:
    """Per utility item: task, id, correct; a generation task's items add the response and extracted answer."""
    rows = []
    for task, res in utility.items():
        for k, (i, c) in enumerate(zip(res.ids, res.correct, strict=True)):
            extra = ({"response": res.responses[k], "extracted": res.extracted[k]}
                     if res.responses is not None and res.extracted is not None else {})
            rows.append(UtilityItem(task=task, id=i, correct=c, **extra))
    return rows
