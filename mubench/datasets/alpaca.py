"""Stanford Alpaca (Taori et al. 2023): 52k benign instructions with responses; the retain set."""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, HubSource, record, register
from mubench.datasets.readers import check_columns, read_parquet, require
from mubench.datasets.stand_in import mirror_rows, write_parquet

FILE = "data/train-00000-of-00001-a09b74b3ef9c3b56.parquet"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    table = read_parquet(path)
    check_columns(path, table, {"instruction", "input", "output"})
    rows = []
    for index, item in enumerate(table):
        instruction = require(path, index, item["instruction"], "instruction")
        prompt = f"{instruction}\n\n{item['input']}" if item["input"] else instruction
        rows.append(record(id=f"alpaca-{index:05d}", dataset="alpaca", role="retain", prompt=prompt,
                           response=require(path, index, item["output"], "output")))
    return rows


def stand_in(mirror: Path, path: Path, n: int) -> None:
    """GSM8K's first questions as instructions, their worked solutions as outputs."""
    write_parquet(path, [{"instruction": r["prompt"], "input": "",
                          "output": str(r["meta"].get("solution") or r["answer"])}
                         for r in mirror_rows("gsm8k", mirror)[:n]])


SPEC = register(
    DatasetSpec(
        name="alpaca",
        role="retain",
        license="CC-BY-NC-4.0",
        citation="Taori et al. 2023, Stanford Alpaca: An Instruction-following LLaMA Model",
        description="52,002 instruction / input / output triples",
        sources=(HubSource("tatsu-lab/alpaca", (FILE,)),),
        parse=parse,
        stand_in=stand_in,
    )
)
