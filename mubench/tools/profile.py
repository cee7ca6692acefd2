"""``mubench profile NAME``: make ``profiles/NAME.yaml`` the params.yaml the pipeline reads."""

from __future__ import annotations

import shutil
from pathlib import Path

from mubench.core.config import ConfigError, load_params
from mubench.core.registry import check_slug
from mubench.core.workspace import Workspace


def switch_profile(ws: Workspace, name: str) -> Path:
    """Validate ``profiles/NAME.yaml`` and copy it over params.yaml in one rename; returns the source."""
    try:
        check_slug(name, "profile")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    source = ws.profiles / f"{name}.yaml"
    if not source.is_file():
        names = sorted(p.stem for p in ws.profiles.glob("*.yaml"))
        raise ConfigError(f"profile '{name}' not found; allowed: {', '.join(names)}")
    load_params(source)
    tmp = ws.root / ".params.yaml.tmp"
    shutil.copyfile(source, tmp)
    tmp.replace(ws.root / "params.yaml")
    return source
