"""AdvBench harmful behaviours (Zou et al. 2023), from the PyRIT wheel's seed dataset (520 goals)."""

from __future__ import annotations

from pathlib import Path

import yaml

from mubench.data import register
from mubench.data.catalog import DatasetSpec, MalformedDataError, PypiSource, record

FILE = "pyrit/datasets/seed_datasets/local/adv_bench.prompt"


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
        categories = seed.get("harm_categories") or []
        rows.append(
            record(
                id=f"advbench-{index:04d}",
                dataset="advbench",
                role="harmful",
                prompt=str(seed["value"]),
                category=categories[0] if categories else None,
                meta={"harm_categories": categories},
            )
        )
    return rows


SPEC = register(
    DatasetSpec(
        name="advbench",
        role="harmful",
        license="MIT",
        citation="Zou et al. 2023, Universal and Transferable Adversarial Attacks on Aligned Language Models",
        description="520 harmful behaviours as instructions (harmful_behaviors.csv goals)",
        sources=(
            PypiSource(
                requirement="pyrit==1.1.0",
                wheel_sha256="84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
                files={FILE: "ccf76355d0d661bcf81f57f70baa1db9299da8aa9352f39b3672cf3da560d3e0"},
            ),
        ),
        parse=parse,
    )
)
