"""HellaSwag (Zellers et al. 2019), validation split: pick the right ending (4 choices) of a scene."""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, HubSource, MalformedDataError, record, register
from mubench.datasets.readers import check_columns, read_parquet, require
from mubench.datasets.stand_in import mirror_rows, write_parquet

FILE = "data/validation-00000-of-00001.parquet"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    table = read_parquet(path)
    check_columns(path, table, {"ind", "activity_label", "ctx", "endings", "label"})
    rows = []
    for index, item in enumerate(table):
        endings = list(item["endings"] or [])
        if len(endings) != 4 or str(item["label"]) not in {"0", "1", "2", "3"}:
            raise MalformedDataError(path, index, "needs 4 endings and a label 0-3")
        rows.append(record(id=f"hellaswag-{int(item['ind']):05d}", dataset="hellaswag", role="utility",
                           prompt=require(path, index, item["ctx"], "ctx"), choices=endings,
                           answer=int(item["label"]), category=item["activity_label"]))
    return rows


def stand_in(mirror: Path, path: Path, n: int) -> None:
    """ARC-Challenge's four-choice questions as contexts and endings."""
    rows = [r for r in mirror_rows("arc-challenge", mirror) if len(r["choices"]) == 4][:n]
    write_parquet(path, [{"ind": i, "activity_label": "stand-in", "ctx": r["prompt"], "endings": r["choices"],
                          "label": str(r["answer"])} for i, r in enumerate(rows)])


SPEC = register(
    DatasetSpec(
        name="hellaswag",
        rows=10042,  # the documented row count of the pinned split (the plan counts it; `check` bounds sizes by it)
        role="utility",
        license="MIT",
        citation="Zellers et al. 2019, HellaSwag: Can a Machine Really Finish Your Sentence?",
        description="10,042 validation contexts with 4 endings and the gold index",
        sources=(HubSource("Rowan/hellaswag", (FILE,)),),
        parse=parse,
        stand_in=stand_in,
    )
)
