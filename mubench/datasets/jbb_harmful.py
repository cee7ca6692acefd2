"""JailbreakBench JBB-Behaviors (Chao et al. 2024): 100 harmful behaviours in 10 categories (Hub only)."""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, HubSource, record, register
from mubench.datasets.readers import read_csv, require
from mubench.datasets.stand_in import mirror_rows, write_csv

FILE = "data/harmful-behaviors.csv"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    return [record(id=f"jbb-{int(row['Index']):03d}", dataset="jbb-harmful", role="harmful",
                   prompt=require(path, line, row["Goal"], "Goal"), category=row["Category"] or None,
                   meta={"behavior": row["Behavior"], "source": row["Source"], "target": row["Target"]})
            for line, row in read_csv(path, {"Index", "Goal", "Target", "Behavior", "Category", "Source"})]


def stand_in(mirror: Path, path: Path, n: int) -> None:
    """AdvBench's last goals as behaviours."""
    write_csv(path, ["Index", "Goal", "Target", "Behavior", "Category", "Source"],
              [[i + 1, r["prompt"], "Sure, here is", f"behaviour {i + 1}", "stand-in", "AdvBench"]
               for i, r in enumerate(mirror_rows("advbench", mirror)[-n:])])


SPEC = register(
    DatasetSpec(
        name="jbb-harmful",
        rows=100,  # the documented row count of the pinned split (the plan counts it; `check` bounds sizes by it)
        role="harmful",
        license="MIT",
        citation="Chao et al. 2024, JailbreakBench: An Open Robustness Benchmark for Jailbreaking LLMs",
        description="100 harmful behaviours (Goal, Target, Behavior, Category, Source)",
        sources=(HubSource("JailbreakBench/JBB-Behaviors", (FILE,)),),
        parse=parse,
        stand_in=stand_in,
    )
)
