"""What a Hub dataset's offline stand-in is made of: rows of public datasets read from a local mirror, written in
the Hub dataset's own file schema.

The CPU twin of a paper profile (``mubench twin``) cannot reach the Hub, so each Hub dataset declares how to
stand in for itself (``DatasetSpec.stand_in(mirror, path, n)``: write the file at ``path`` with ``n`` rows); the
twin pins the written files and fetches them through the real Hub dataset code. The project writes no content of
its own beyond ``REFUSAL`` (harmless): every prompt comes from a public dataset.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

REFUSAL = "I can't help with that."  # the stand-in safe response (a refusal, project-written and harmless)

StandIn = Callable[[Path, Path, int], None]  # (mirror root, the file to write, rows)


def mirror_rows(name: str, mirror: Path) -> list[dict]:
    """A public dataset's rows through its own catalog parser, from the mirror."""
    import tempfile

    from mubench.datasets.catalog import DATASETS
    from mubench.datasets.fetch import fetch_mirror

    spec = DATASETS.entry(name)
    index = next(i for i, s in enumerate(spec.sources) if s.kind == "mirror")
    with tempfile.TemporaryDirectory() as tmp:
        fetch_mirror(spec.sources[index], Path(tmp), mirror)
        return spec.parser_for(index)(Path(tmp))


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def write_json_lines(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
