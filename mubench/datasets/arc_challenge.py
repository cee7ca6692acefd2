"""ARC-Challenge (Clark et al. 2018), test split: 1,172 grade-school science questions, 3-5 choices.

The mirror holds LLM-Adapters' reformatted copy (question and choices flattened into one ``instruction``,
gold ``answerN``; no upstream ids), parsed back into question + choices here; ids are row indices.
"""

from __future__ import annotations

import re
from pathlib import Path

from mubench.datasets.catalog import (
    DatasetSpec,
    HubSource,
    MalformedDataError,
    MirrorSource,
    UrlSource,
    record,
    register,
)
from mubench.datasets.readers import check_columns, github_raw, read_json_list, read_parquet, require

FILE = "ARC-Challenge/test.json"
SHA256 = "4a89ce368ae01a71d268d9851686738b2a0a1d84271116bab49a1dd2b48ecad7"
_INSTRUCTION = re.compile(r"^Please choose the correct answer to the question: (?P<question>.*?)\n\n"
                          r"(?P<choices>Answer1: .*?)\n\nAnswer format: ", re.DOTALL)
_CHOICE = re.compile(r"Answer(\d+): ")


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    rows = []
    for index, item in enumerate(read_json_list(path)):
        match = _INSTRUCTION.match(item.get("instruction", ""))
        if not match:
            raise MalformedDataError(path, index, "instruction is not in LLM-Adapters' ARC format")
        parts = _CHOICE.split(match.group("choices"))[1:]  # [n1, text1, n2, text2, ...]
        numbers, choices = parts[0::2], [c.strip() for c in parts[1::2]]
        if numbers != [str(i) for i in range(1, len(numbers) + 1)] or not all(choices):
            raise MalformedDataError(path, index, "choices are not Answer1..AnswerN")
        gold = re.fullmatch(r"answer(\d+)", item.get("answer", ""))
        if not gold or not 1 <= int(gold.group(1)) <= len(choices):
            raise MalformedDataError(path, index, f"answer {item.get('answer')!r} is not answer1..answer{len(choices)}")
        rows.append(record(id=f"arc-challenge-{index:04d}", dataset="arc-challenge", role="utility",
                           prompt=match.group("question").strip(), choices=choices, answer=int(gold.group(1)) - 1))
    return rows


HUB_FILE = "ARC-Challenge/test-00000-of-00001.parquet"


def parse_hub(raw_dir: Path) -> list[dict]:
    """allenai/ai2_arc's parquet: id, question, choices {text, label}, answerKey (one of the labels)."""
    path = raw_dir / HUB_FILE
    table = read_parquet(path)
    check_columns(path, table, {"id", "question", "choices", "answerKey"})
    rows = []
    for index, item in enumerate(table):
        labels, texts = list(item["choices"]["label"]), list(item["choices"]["text"])
        if item["answerKey"] not in labels:
            raise MalformedDataError(path, index, f"answerKey {item['answerKey']!r} is not one of {labels}")
        rows.append(record(id=f"arc-challenge-{item['id']}", dataset="arc-challenge", role="utility",
                           prompt=require(path, index, item["question"], "question"), choices=texts,
                           answer=labels.index(item["answerKey"])))
    return rows


SPEC = register(
    DatasetSpec(
        name="arc-challenge",
        rows=1172,
        role="utility",
        license="CC-BY-SA-4.0",
        citation="Clark et al. 2018, Think you have Solved Question Answering? Try ARC, the AI2 Reasoning Challenge",
        description="1,172 test questions with 3-5 choices and the gold index",
        sources=(
            MirrorSource("arc", {FILE: SHA256}),
            HubSource("allenai/ai2_arc", (HUB_FILE,), parse=parse_hub),
            UrlSource({github_raw("AGI-Edgerunners/LLM-Adapters", "816657208af4db747803f87ba40a4c71383fed7a",
                                  f"dataset/{FILE}"): SHA256}),
        ),
        parse=parse,
    )
)
