"""The ``judge-labels`` stage: the human-labelled refusal sets of the pinned pyrit wheel, exported as labels
CSVs (prompt, completion, label) for the judges' agreement."""

from __future__ import annotations

from pathlib import Path

from mubench.core.config import ConfigError
from mubench.core.io import write_json
from mubench.scoring.agreement import export_pyrit_labels


def run_judge_labels(out_dir: Path) -> dict[str, dict]:
    """Write the CSVs and their provenance.json into ``out_dir`` (created if missing; only those files are
    written, each atomically: nothing else in the folder is touched); returns the provenance."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a directory")
    provenance = export_pyrit_labels(out_dir)
    write_json(out_dir / "provenance.json", provenance)
    return provenance
