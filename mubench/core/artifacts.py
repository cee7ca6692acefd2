"""Typed artifacts: the files one stage writes and another reads, as pydantic models.

``metrics.json`` is written by ``evaluate`` through ``Metrics`` and read back through it by ``report`` and
``verify``, so the documented schema (docs/metrics.md) is enforced, not promised: a file missing a key fails
with one line naming the file and the key. Likewise a fetched dataset's ``provenance.json`` (``Provenance``);
JSONL rows are records (``mubench.core.records``) read through ``read_rows``. Models allow extra keys (later
versions only add keys); rates are in [0, 1] or null (a
rate over no rows), intervals are [low, high] or null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mubench.core.errors import InvalidValue
from mubench.core.io import read_json, read_numbered_jsonl
from mubench.core.records import R

M = TypeVar("M", bound=BaseModel)

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
    labels: dict[str, Rate]  # judge classes of the plain prompts' verdicts (keyword judge: echo, incoherent)
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


class Quality(Open):
    """Degenerate generations (``mubench.judges.quality``) among the responses to plain harmful and benign prompts."""

    degenerate_rate: Rate
    per_reason: dict[str, Rate]
    ci: Interval
    n: int = Field(ge=0)


Span = Annotated[list[Annotated[float, Field(ge=0.0)]], Field(min_length=2, max_length=2)] | None


class DriftIntervals(Open):
    kl: Span
    nll: Span


class Drift(Open):
    """Utility drift (``mubench.scoring.drift``): per-token KL(base || variant) and NLL on the base's benign answers."""

    kl: Annotated[float, Field(ge=0.0)] | None
    nll: Annotated[float, Field(ge=0.0)] | None
    ci: DriftIntervals
    n: int = Field(ge=0)
    tokens: int = Field(ge=0)


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


class JudgeHealth(Open):
    """Answers the judges could not read (``Verdict.unparsed``): left out of every rate, counted here."""

    unparsed: dict[str, int]        # per judged set (safety, oversafety): rows whose verdict is unparsed
    unparsed_share: dict[str, Rate]
    max_unparsed: float = Field(ge=0.0, le=1.0)


class Metrics(Open):
    """``results/MODEL/VARIANT/metrics.json``."""

    safety: Safety
    oversafety: Oversafety
    utility: Utility
    quality: Quality
    drift: Drift
    n: Counts
    judge: JudgeHealth
    run: RunRecord


class PairedTest(Open):
    """A paired comparison (``mubench.stats.paired.paired_delta``): change, its CI, the raw p-value, items."""

    delta: Annotated[float, Field(ge=-1.0, le=1.0)] | None
    ci: Annotated[list[float], Field(min_length=2, max_length=2)] | None
    p: Annotated[float, Field(ge=0.0, le=1.0)] | None
    n: int = Field(ge=0)


class TamperSafety(Open):
    per_tamper: dict[str, Rate]   # ASR of each attacked copy on the prompts it answered
    seed_asr: dict[str, Rate]           # ... on the attack seed behaviours
    knowledge_asr: Rate                 # before any tamper attack: broken by the plain prompt or a prompt attack
    robust_knowledge_asr: Rate          # ... or by any tamper attack
    ci: dict[str, Any]


class TamperRecord(Open):
    version: str
    params: dict[str, Any]
    record: dict[str, Any]
    fit: dict[str, Any]
    fit_sha256: str | None
    attacked_hash: str = Field(min_length=1)


class TamperMetrics(Open):
    """``results/MODEL/VARIANT/tamper/metrics.json`` (``mubench.stages.tamper``)."""

    safety: TamperSafety
    oversafety: dict[str, Any]
    utility: dict[str, Any]
    quality: dict[str, Any]
    tests: dict[str, dict[str, PairedTest]]   # per attack: asr / oversafety / utility vs the same checkpoint
    tamper_attacks: dict[str, TamperRecord]
    n: dict[str, int]
    run: dict[str, Any]


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class FetchedFile(Open):
    sha256: Sha256


class FetchSource(Open):
    kind: str = Field(min_length=1)
    files: dict[str, FetchedFile]


class Provenance(Open):
    """``data/raw/DATASET/provenance.json``: where a dataset's files came from, with their sha256."""

    dataset: str
    role: str
    license: str
    citation: str
    rows: int = Field(ge=0)
    source: FetchSource


class ArtifactError(InvalidValue):
    """An artifact that does not match its model; the message names the file and the key."""


def validated(model: type[M], data: dict, path: Path | str) -> M:
    """``model.model_validate(data)``; a mismatch is one ArtifactError line naming ``path`` and the key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"])
        problem = "missing" if err["type"] == "missing" else f"{err['msg']} (got {err.get('input')!r})"
        raise ArtifactError(f"{path}: {key}: {problem}; re-run the stage that wrote it (`dvc repro`)") from None


def read_rows(model: type[R], path: Path) -> list[R]:
    """A JSONL artifact as records of ``model`` (``mubench.core.records``); a line that does not match is one
    ArtifactError line naming file, line and key."""
    return [validated(model, row, f"{path}: line {number}") for number, row in read_numbered_jsonl(path)]


def read_artifact(model: type[BaseModel], path: Path) -> dict:
    """A JSON artifact checked against ``model``, returned as the plain dict it holds."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    validated(model, data, path)
    return data


def read_metrics(path: Path) -> dict:
    """A metrics.json, checked against ``Metrics``; returned as the plain dict it holds."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    validated(Metrics, data, path)
    return data
