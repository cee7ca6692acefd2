"""PHTest (An et al. 2024, "Automatic Pseudo-Harmful Prompt Generation for Evaluating False Refusals"):
3,269 pseudo-harmful prompts labelled harmless or controversial; over-safety uses the harmless ones
(controversial rows are kept with ``meta.contrast`` set)."""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, HubSource, MalformedDataError, record, register
from mubench.datasets.readers import read_csv, require
from mubench.datasets.stand_in import mirror_rows, write_csv

FILE = "PHTest.csv"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    rows = []
    for index, (line, row) in enumerate(read_csv(path, {"Request", "Harmfulness"})):
        harm = row["Harmfulness"].strip().lower()
        if harm not in {"harmless", "controversial"}:
            raise MalformedDataError(path, line, f"Harmfulness {row['Harmfulness']!r} is not harmless/controversial")
        rows.append(record(id=f"phtest-{index:04d}", dataset="phtest", role="over-safety",
                           prompt=require(path, line, row["Request"], "Request"), category=harm,
                           meta={"harmfulness": harm, "contrast": harm != "harmless"}))
    return rows


def stand_in(mirror: Path, path: Path, n: int) -> None:
    """OKTest's first prompts, marked harmless."""
    write_csv(path, ["Request", "Harmfulness"], [[r["prompt"], "harmless"] for r in mirror_rows("oktest", mirror)[:n]])


SPEC = register(
    DatasetSpec(
        name="phtest",
        role="over-safety",
        license="MIT",
        citation="An et al. 2024, Automatic Pseudo-Harmful Prompt Generation for Evaluating False Refusals in LLMs",
        description="3,269 pseudo-harmful prompts (harmless / controversial)",
        sources=(HubSource("furonghuang-lab/PHTest", (FILE,)),),
        parse=parse,
        stand_in=stand_in,
    )
)
