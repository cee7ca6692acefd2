"""Generation utility tasks (GSM8K): lm-eval's ``generate_until`` protocol over a built split, scored by exact
match on the final number.

The task is lm-eval's own ``gsm8k-cot`` (the chain-of-thought few-shot prompt of Wei et al. 2022: ``Q: ...\\nA:``
with its 8 worked exemplars, greedy decoding, stop sequences ``Q:``, ``</s>``, ``<|im_end|>``), read from the
installed lm-eval package, pointed at mubench's built split. The answer is the last number in the response;
it matches when it equals the reference after removing commas and ``$`` and a trailing ``.`` (lm-eval's
"flexible-extract" filter and exact-match settings, implemented here once so they can be tested and
audited per sample). The model's ``generate_until`` requests are served by mubench's batched generation
(``generate.generate_sets`` on raw text: length-sorted batches, stop at EOS, the generation cache).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mubench.core.errors import InvalidValue

TASK_PREFIX = "mubench_"
_NUMBER = re.compile(r"-?[$0-9.,]{2,}|-?[0-9]+")  # lm-eval gsm8k "flexible-extract"


def normalize_number(text: str) -> str:
    """A number as exact match compares it: commas and ``$`` removed, a trailing ``.`` dropped."""
    return re.sub(r"[,$]", "", text.strip()).removesuffix(".")


def extract_answer(response: str) -> str | None:
    """The last number in ``response`` (normalised), or None when it holds no number."""
    found = [m for m in _NUMBER.findall(response) if re.search(r"[0-9]", m)]
    return normalize_number(found[-1]) if found else None


def exact_match(response: str, reference: str) -> bool:
    """Whether the response's final number equals the reference number."""
    answer = extract_answer(response)
    return answer is not None and answer == normalize_number(reference)


def lm_eval_cot_config() -> dict:
    """lm-eval's ``gsm8k-cot`` task YAML as shipped in the installed package."""
    import lm_eval

    path = Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k-cot.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def generation_task_config(name: str, data_file: Path, num_fewshot: int, max_gen_toks: int) -> dict:
    """An lm-eval ``generate_until`` task over a built split (fields: prompt, answer): lm-eval's gsm8k-cot
    prompt, exemplars and stop sequences, greedy, at most ``max_gen_toks`` new tokens."""
    cot = lm_eval_cot_config()
    return {
        "task": f"{TASK_PREFIX}{name.replace('-', '_')}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "Q: {{prompt}}\nA:",
        "doc_to_target": "{{answer}}",
        # the exemplars in the split's field names: question -> prompt, worked solution -> answer
        "fewshot_config": {**cot["fewshot_config"],
                           "samples": [{"prompt": x["question"], "answer": x["target"]}
                                       for x in cot["fewshot_config"]["samples"]]},
        "num_fewshot": num_fewshot,
        "generation_kwargs": {**cot["generation_kwargs"], "do_sample": False, "max_gen_toks": max_gen_toks},
        "filter_list": [f for f in cot["filter_list"] if f["name"] == "flexible-extract"],
        "metric_list": cot["metric_list"],
        "metadata": {"version": cot["metadata"]["version"]},
    }


def cut_at_stop(text: str, until: list[str]) -> str:
    """``text`` up to the first stop sequence (lm-eval's post-processing of a generation)."""
    cuts = [text.index(stop) for stop in until if stop and stop in text]
    return text[:min(cuts)] if cuts else text


def serve_generate_until(lm, requests, model_hash: str | None, cache, batch_size: int,
                         graphs: bool = False) -> list[str]:
    """lm-eval ``generate_until`` requests answered by mubench's batched greedy generation on the raw contexts
    (``graphs``: compiled decoding, ``DecodeParams.graphs``), each cut at its stop sequences."""
    from mubench.engine.generate import DecodeParams, generate_sets

    groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
    for i, request in enumerate(requests):
        context, kwargs = request.args
        if kwargs.get("do_sample"):
            raise InvalidValue("generation utility tasks decode greedily (do_sample: false)")
        until = kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        groups.setdefault((int(kwargs.get("max_gen_toks", lm.max_gen_toks)), tuple(until)), []).append(i)
    out: list[str] = [""] * len(requests)
    for (max_new, until), members in groups.items():
        texts = [requests[i].args[0] for i in members]
        answers = generate_sets(lm.model, lm.tokenizer, {"utility": texts}, DecodeParams(max_new, graphs=graphs),
                                batch_size, model_hash, cache, "utility generation", chat=False)["utility"]
        for i, text in zip(members, answers, strict=True):
            out[i] = cut_at_stop(text, list(until))
    return out


def scored_samples(samples: list[dict]) -> dict[str, Any]:
    """exact_match per sample (mubench's extraction) from lm-eval's logged samples, in doc order."""
    samples = sorted(samples, key=lambda s: s["doc_id"])
    responses = [s["resps"][0][0] for s in samples]
    correct = [int(exact_match(r, str(s["doc"]["answer"]))) for r, s in zip(responses, samples, strict=True)]
    return {"correct": correct, "ids": [s["doc"]["id"] for s in samples], "responses": responses,
            "extracted": [extract_answer(r) for r in responses]}
