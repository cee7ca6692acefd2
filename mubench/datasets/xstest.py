"""XSTest (Röttger et al. 2024): 250 safe prompts that look unsafe, plus 200 unsafe contrast prompts.

Every row keeps its upstream ``label`` (safe / unsafe) in ``meta.label`` and its ``type`` as category;
over-safety is measured on the safe prompts (``meta.contrast`` marks the unsafe ones).
"""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, MalformedDataError, MirrorSource, UrlSource, record, register
from mubench.datasets.readers import github_raw, read_csv, require

FILE = "xstest_prompts.csv"
SHA256 = "11783fb294ed017473ee53c207d71f2161c7672c8d0b037501e78387f801cb5a"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    rows = []
    for line, row in read_csv(path, {"id", "prompt", "type", "label", "focus", "note"}):
        if row["label"] not in {"safe", "unsafe"}:
            raise MalformedDataError(path, line, f"label {row['label']!r} is not safe/unsafe")
        rows.append(record(id=f"xstest-{int(row['id']):03d}", dataset="xstest", role="over-safety",
                           prompt=require(path, line, row["prompt"], "prompt"), category=row["type"],
                           meta={"label": row["label"], "contrast": row["label"] == "unsafe",
                                 "focus": row["focus"], "note": row["note"]}))
    return rows


SPEC = register(
    DatasetSpec(
        name="xstest",
        rows=450,
        role="over-safety",
        license="CC-BY-4.0",
        citation="Röttger et al. 2024, XSTest: A Test Suite for Identifying Exaggerated Safety Behaviours in LLMs",
        description="250 safe prompts in 10 types + 200 unsafe contrast prompts",
        sources=(
            MirrorSource("xstest", {FILE: SHA256}),
            UrlSource({github_raw("paul-rottger/exaggerated-safety", "d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d",
                                  FILE): SHA256}),
        ),
        parse=parse,
    )
)
