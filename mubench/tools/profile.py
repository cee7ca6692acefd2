"""``mubench profile NAME``: make ``profiles/NAME.yaml`` the params.yaml the pipeline reads."""

from __future__ import annotations

import shutil
from pathlib import Path

from mubench.core.config import ConfigError
from mubench.core.registry import check_slug
from mubench.core.workspace import Workspace
from mubench.families import load_params


def switch_profile(ws: Workspace, name: str, force: bool = False) -> tuple[Path, Path | None]:
    """Validate ``profiles/NAME.yaml`` and copy it over params.yaml in one rename; returns the source and, where
    params.yaml held edits no profile has (replaced only with ``force``), where they were kept."""
    try:
        check_slug(name, "profile")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    source = ws.profiles / f"{name}.yaml"
    if not source.is_file():
        names = sorted(p.stem for p in ws.profiles.glob("*.yaml"))
        raise ConfigError(f"profile '{name}' not found; allowed: {', '.join(names)}")
    load_params(source)
    target, backup = ws.root / "params.yaml", None
    if target.is_file() and not any(target.read_bytes() == p.read_bytes() for p in ws.profiles.glob("*.yaml")):
        if not force:
            raise ConfigError(f"{target}: holds edits that no profile has; save them as profiles/NAME.yaml, or "
                              "pass --force to switch anyway (params.yaml is then kept as params.yaml.bak)")
        backup = next(b for i in range(10**6) if not (b := target.with_name(
            "params.yaml.bak" + (f".{i}" if i else ""))).exists())  # never over an earlier backup
        shutil.copyfile(target, backup)
    tmp = ws.root / ".params.yaml.tmp"
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return source, backup
