"""The five families, loaded, and params validated against them.

``mubench.core`` sits below the families (they build on its registry and settings), so it cannot import them to
check the names a params file uses; this module imports every family, which registers its entries, and hands the
registries to ``mubench.core.config.load_params``. Everything that reads a params file from disk (the CLI, the
tools, tests) loads it here.
"""

from __future__ import annotations

from pathlib import Path

from mubench.core import config
from mubench.core.config import ConfigError, Families, Params
from mubench.datasets import DATASETS
from mubench.jailbreaks import JAILBREAKS
from mubench.judges import JUDGES
from mubench.methods import METHODS
from mubench.tamper import TAMPER_ATTACKS

FAMILIES = Families(datasets=DATASETS, methods=METHODS, jailbreaks=JAILBREAKS, tamper=TAMPER_ATTACKS, judges=JUDGES)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Parse and validate a params file (every name against its family); ConfigError with one line otherwise."""
    return config.load_params(path, FAMILIES)


def validate_params(raw: dict) -> Params:
    """A params mapping built in code (e.g. the twin's), validated exactly as a params file is."""
    return Params.model_validate(raw, context={"families": FAMILIES})


def require_member(name: str | int, allowed: list, key: str, family: str | None = None) -> None:
    """A name given on the command line: registered in ``family`` (else UnknownNameError listing the names, so a
    typo reads as one), then listed under ``key`` of this run's params (else ConfigError listing them)."""
    if family is not None and name not in allowed:
        FAMILIES.of(family).entry(name)
    if name not in allowed:
        raise ConfigError(f"'{name}' is not in {key} of this run; allowed: "
                          f"{', '.join(map(str, allowed)) or '(none)'}")
