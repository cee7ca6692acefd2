"""Typed artifacts: the files one stage writes and another reads, as pydantic models.

``metrics.json`` is written by ``evaluate`` through ``Metrics`` and read back through it by ``report`` and
``verify``, so the README's stable schema is enforced, not promised: a file missing a key fails with one line
naming the file and the key. Models allow extra keys (later versions only add keys); rates are in [0, 1] or
null (a rate over no rows), intervals are [low, high] or null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mubench.io import read_json

Rate = Annotated[float, Field(ge=0.0, le=1.0)] | None
Interval = Annotated[list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=2, max_length=2)] | None


class Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)


class SafetyIntervals(Open):
    asr: Interval
    per_dataset: dict[str, Interval]
    per_attack: dict[str, Interval]
    seed_asr: Interval
    knowledge_asr: Interval


class Safety(Open):
    asr: Rate
    per_dataset: dict[str, Rate]
    per_attack: dict[str, Rate]
    seed_asr: Rate
    knowledge_asr: Rate
    ci: SafetyIntervals


class OversafetyIntervals(Open):
    refusal_rate: Interval
    per_dataset: dict[str, Interval]


class Oversafety(Open):
    refusal_rate: Rate
    labels: dict[str, Rate]
    per_dataset: dict[str, Rate]
    ci: OversafetyIntervals


class TaskScore(Open):
    acc: Rate
    acc_norm: Rate
    n: int = Field(ge=0)
    ci: Interval


class Utility(Open):
    accuracy: Rate
    per_task: dict[str, TaskScore]


class Counts(Open):
    harmful: int = Field(ge=0)
    per_attack: dict[str, int]
    attack_seeds: int = Field(ge=0)
    oversafety: int = Field(ge=0)
    utility: dict[str, int]


class RunRecord(Open):
    model: str
    variant: str
    model_hash: str = Field(min_length=1)
    device: str
    seed: int
    decode: dict[str, Any]
    judges: dict[str, str]
    versions: dict[str, str]
    platform: str


class Metrics(Open):
    """``results/MODEL/VARIANT/metrics.json``."""

    safety: Safety
    oversafety: Oversafety
    utility: Utility
    n: Counts
    run: RunRecord


class ArtifactError(ValueError):
    """An artifact that does not match its model; the message names the file and the key."""


def validated(model: type[BaseModel], data: dict, path: Path | str) -> BaseModel:
    """``model.model_validate(data)``; a mismatch is one ArtifactError line naming ``path`` and the key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"])
        problem = "missing" if err["type"] == "missing" else f"{err['msg']} (got {err.get('input')!r})"
        raise ArtifactError(f"{path}: {key}: {problem}; re-run the stage that wrote it (`dvc repro`)") from None


def read_metrics(path: Path) -> dict:
    """A metrics.json, checked against ``Metrics``; returned as the plain dict it holds."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    validated(Metrics, data, path)
    return data
