"""OKTest (Shi et al. 2024, "Navigating the OverKill in Large Language Models"): 300 benign prompts that
contain words a safety filter may overreact to. No licence is stated upstream: research use, cite."""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, MirrorSource, UrlSource, record, register
from mubench.datasets.readers import github_raw, read_csv, require

FILE = "OKTest.csv"
SHA256 = "1be3e8d3fe6b45a170653da63c8cf70dbf97508a48735e65db0713a44e158860"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    return [record(id=f"oktest-{index:03d}", dataset="oktest", role="over-safety",
                   prompt=require(path, line, row["prompt"], "prompt"))
            for index, (line, row) in enumerate(read_csv(path, {"prompt"}))]


SPEC = register(
    DatasetSpec(
        name="oktest",
        rows=300,
        role="over-safety",
        license="none stated (research use; cite the paper)",
        citation="Shi et al. 2024, Navigating the OverKill in Large Language Models",
        description="300 benign prompts with trigger words (the held-out 50 are not used)",
        sources=(
            MirrorSource("oktest", {FILE: SHA256}),
            UrlSource({github_raw("InvokerStark/OverKill", "9551a7ff7b2cb18d178e64fb5cc95e4684311b3b",
                                  f"data/{FILE}"): SHA256}),
        ),
        parse=parse,
    )
)
