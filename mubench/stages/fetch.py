"""The ``fetch`` stage: one dataset from its pinned sources into ``data/raw/NAME`` (verified by sha256)."""

from __future__ import annotations

from collections.abc import Callable

from mubench.core.config import Params
from mubench.core.workspace import Workspace
from mubench.datasets import DATASETS
from mubench.datasets.fetch import fetch


def run_fetch(params: Params, ws: Workspace, name: str, say: Callable[[str], None]) -> dict:
    """Fetch ``name`` through ``params.data.sources`` (a configured mirror first); returns its provenance."""
    DATASETS.entry(name)
    return fetch(name, ws.raw, log=say, kinds=params.data.sources)
