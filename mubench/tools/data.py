"""``mubench data``: the dataset catalog (list, fetch many, pin a Hub source, verify what was fetched)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mubench.core.config import ConfigError
from mubench.core.errors import FailedStep
from mubench.core.io import read_json
from mubench.core.workspace import Workspace
from mubench.datasets import DATASETS
from mubench.datasets.catalog import HubSource
from mubench.datasets.fetch import REMOTE_KINDS, FetchError, fetch, pin_hub, verify


def print_catalog(ws: Workspace) -> None:
    """Every catalog dataset: role, rows (when fetched), license, sources, fetched or not."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mubench datasets ({len(DATASETS.names())})")
    for column in ("name", "role", "rows", "license", "sources", "fetched"):
        table.add_column(column, overflow="fold")
    for name in DATASETS.names():
        spec = DATASETS.entry(name)
        prov_file = ws.raw / name / "provenance.json"
        prov = read_json(prov_file) if prov_file.is_file() else None
        table.add_row(name, spec.role, str(prov["rows"]) if prov else "–", spec.license,
                      "\n".join(s.describe() for s in spec.sources),
                      prov["source"].get("describe", prov["source"]["kind"]) if prov else "no")
    Console(width=160).print(table)


def fetch_many(ws: Workspace, names: list[str] | None, kinds: list[str] | None, mirror: Path | None,
               say: Callable[[str], None], warn: Callable[[str], None]) -> None:
    """Fetch each dataset (``None``: the whole catalog) from the mirror first, then ``kinds`` (``None``: every
    remote kind); one line per dataset; RuntimeError naming the ones that failed, after trying all."""
    names = DATASETS.names() if names is None else names
    kinds = list(REMOTE_KINDS) if kinds is None else kinds
    failed = []
    for item in names:
        try:
            prov = fetch(DATASETS.entry(item).name, ws.raw, log=warn, mirror=mirror, kinds=kinds)
            say(f"{item}: {prov['rows']} rows from {prov['source']['describe']}")
        except FetchError as exc:
            warn(f"error: {exc}")
            failed.append(item)
    if failed:
        raise FailedStep(f"{len(failed)} of {len(names)} dataset(s) could not be fetched: {', '.join(failed)}")


def pin(name: str) -> list[str]:
    """Record the Hub revision and file sha256 of ``name``'s Hub source(s); a line per source."""
    hub = [s for s in DATASETS.entry(name).sources if isinstance(s, HubSource)]
    if not hub:
        raise ConfigError(f"dataset '{name}' has no Hub source")
    lines = []
    for source in hub:
        pins = pin_hub(source)
        files = ", ".join(f"{path} {digest[:12]}…" for path, digest in pins["files"].items())
        lines.append(f"{source.repo}@{pins['revision']}: {files}")
    return lines


def manifest(name: str, mirror: Path | None, kinds: list[str] | None) -> str:
    """Write NAME's canonical row manifest (``mubench/datasets/rows/NAME.tsv``) from the first source that
    fetches (mirror first when one is given, then ``kinds``); subset carriers cannot define the rows."""
    import tempfile

    from mubench.core.environment import mirror_root
    from mubench.datasets.canonical import write_manifest
    from mubench.datasets.fetch import FETCHERS, candidates

    spec = DATASETS.entry(name)
    root = mirror_root(mirror)
    failures = []
    for index in candidates(spec, kinds or REMOTE_KINDS, root):
        source = spec.sources[index]
        if source.subset:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                FETCHERS[source.kind](source, Path(tmp), root)
                rows = spec.parser_for(index)(Path(tmp))
            except Exception as exc:  # noqa: BLE001 - one line per source, then the next
                failures.append(f"{source.describe()}: {exc}")
                continue
        path = write_manifest(spec.name, rows)
        return f"{spec.name}: {len(rows)} canonical rows from {source.describe()} written to {path} (review, commit)"
    raise ConfigError(f"{spec.name}: no full source could be fetched for its manifest"
                      + (": " + "; ".join(failures) if failures else ""))


def verify_fetched(ws: Workspace, warn: Callable[[str], None]) -> str:
    """Re-hash every fetched file against its provenance.json; RuntimeError on any mismatch."""
    fetched = [n for n in DATASETS.names() if (ws.raw / n / "provenance.json").is_file()]
    problems = [p for n in fetched for p in verify(n, ws.raw)]
    for problem in problems:
        warn(f"error: {problem}")
    if problems:
        raise FailedStep(f"{len(problems)} problem(s) in {len(fetched)} fetched dataset(s)")
    return f"{len(fetched)} fetched dataset(s) verified: {', '.join(fetched) or 'none'}"
