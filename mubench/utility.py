"""Utility scoring through lm-eval (log-likelihood multiple choice in cloze form: acc and acc_norm).

Each utility split built by mubench becomes a local lm-eval task (a generated YAML over the split's jsonl),
so the scoring protocol is lm-eval's own; the task YAML is recorded in the metrics for audit.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import yaml

TASK_PREFIX = "mubench_"


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
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
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
