"""Every ``MUBENCH_*`` environment variable mubench reads, read here and nowhere else.

They are read when asked (a test or a parent process may set them after import), and each has one meaning:

- ``MUBENCH_CACHE``: where downloaded wheels and generations are kept (default ``~/.cache/mubench``);
- ``MUBENCH_GEN_CACHE=0``: no generation cache (tests, timing runs, a results run from scratch);
- ``MUBENCH_MIRROR``: a local mirror of public datasets laid out like ``../shared/datasets``;
- ``MUBENCH_HUB_PINS``: another Hub pins file (the paper twin's offline Hub cache);
- ``MUBENCH_DEBUG=1``: the CLI prints a user error's traceback above its one line.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE, GEN_CACHE, MIRROR, HUB_PINS, DEBUG = ("MUBENCH_CACHE", "MUBENCH_GEN_CACHE", "MUBENCH_MIRROR",
                                            "MUBENCH_HUB_PINS", "MUBENCH_DEBUG")


def _path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def cache_dir() -> Path:
    """Where downloaded wheels and generations are kept between runs."""
    return _path(CACHE) or Path.home() / ".cache" / "mubench"


def generation_cache_on() -> bool:
    return os.environ.get(GEN_CACHE, "1") != "0"


def mirror_root(explicit: str | Path | None = None) -> Path | None:
    """The mirror directory: ``explicit`` (``--mirror``) wins over ``MUBENCH_MIRROR``; None when neither is set."""
    return Path(explicit) if explicit else _path(MIRROR)


def hub_pins_override() -> Path | None:
    return _path(HUB_PINS)


def debug() -> bool:
    return os.environ.get(DEBUG) == "1"
