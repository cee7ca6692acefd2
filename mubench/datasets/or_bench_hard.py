"""OR-Bench-Hard-1K (Cui et al. 2024): 1,319 seemingly toxic but benign prompts that most models over-refuse."""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, HubSource, record, register
from mubench.datasets.readers import read_csv, require
from mubench.datasets.stand_in import mirror_rows, write_csv

FILE = "or-bench-hard-1k.csv"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    return [record(id=f"or-bench-hard-{index:04d}", dataset="or-bench-hard", role="over-safety",
                   prompt=require(path, line, row["prompt"], "prompt"), category=row["category"] or None)
            for index, (line, row) in enumerate(read_csv(path, {"prompt", "category"}))]


def stand_in(mirror: Path, path: Path, n: int) -> None:
    """XSTest's first prompts, with their categories."""
    write_csv(path, ["prompt", "category"],
              [[r["prompt"], r["category"] or "stand-in"] for r in mirror_rows("xstest", mirror)[:n]])


SPEC = register(
    DatasetSpec(
        name="or-bench-hard",
        role="over-safety",
        license="CC-BY-4.0",
        citation="Cui et al. 2024, OR-Bench: An Over-Refusal Benchmark for Large Language Models",
        description="hard subset: benign prompts in 10 categories that models often refuse",
        sources=(HubSource("bench-llm/or-bench", (FILE,)),),
        parse=parse,
        stand_in=stand_in,
    )
)
