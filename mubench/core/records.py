"""Typed rows: one line of a JSONL file that one stage writes and another reads, as a frozen pydantic model.

A stage reads rows into these records (``mubench.core.artifacts.read_rows`` checks every line), passes the
records on, and turns them back into dicts only where they are written (``Record.to_json``, called by
``write_jsonl``). Between the two, code reads ``row.refused``, not ``row["refused"]``: a renamed or missing
key is an error where the file is read, with the file, line and key, not a ``KeyError`` three layers down.

The files carry more than the declared fields (a dataset's own columns, an attack's provenance): the models
keep such keys (``extra="allow"``) and write them back unchanged. ``to_json`` writes exactly the keys a
record was made with (``exclude_unset``), so reading a file and writing it back gives the same bytes, and
an optional key a row never had (an over-safety row's ``attack``) is not written as null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

R = TypeVar("R", bound="Record")


class Record(BaseModel):
    """One JSONL row: frozen, extra keys kept, NaN refused."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    def to_json(self) -> dict[str, Any]:
        """The row as written: the keys it was made with, JSON types only."""
        return self.model_dump(mode="json", exclude_unset=True)

    def as_(self, model: type[R], **fields: Any) -> R:
        """This row's keys plus ``fields``, validated as ``model`` (a prompt row judged becomes a JudgedRow)."""
        return model.model_validate({**self.to_json(), **fields})


class ChatTurn(TypedDict):
    """One message of a chat prompt (attacks that set a system prompt or few-shot turns)."""

    role: str
    content: str


Prompt = str | list[ChatTurn]


class DatasetRow(Record):
    """A row of a built prompt file (``data/built/*.jsonl``): a dataset's item in the canonical columns."""

    id: str = Field(min_length=1)
    dataset: str
    prompt: str
    role: str | None = None
    response: str | None = None
    choices: list[str] | None = None
    answer: int | str | None = None
    category: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class HarmfulRow(DatasetRow):
    """A plain harmful prompt as it is judged: the goal is the prompt itself, the attack is ``vanilla``."""

    goal: str
    attack: str


class JailbreakRow(Record):
    """One row of an attack's ``prompts.jsonl``: the seed behaviour and the prompt the attack made of it (a
    text, or a chat for attacks that set a system prompt or few-shot turns)."""

    id: str = Field(min_length=1)
    dataset: str
    goal: str
    prompt: Prompt = Field(min_length=1)
    attack: str
    attack_version: str
    attack_params_sha256: str = Field(pattern=r"^[0-9a-f]{16}$")


class CorpusPair(Record):
    """One (prompt, the base model's response) pair of ``data/corpus/MODEL/{forget,retain,drift}.jsonl``
    (``refused``: the safety judge's verdict; drift pairs are not judged)."""

    id: str = Field(min_length=1)
    dataset: str
    prompt: str
    response: str = Field(min_length=1)
    refused: bool | None = None


class JudgedRow(Record):
    """One judged response (``samples/safety.jsonl``, ``oversafety.jsonl``, a tamper attack's rows): the prompt
    row, what the model answered and what the judge made of it. ``refused`` is None where the judge's answer
    could not be read (left out of every rate); ``judged_text`` is the decoded response of an encoding attack
    (None: the judge read ``response``); ``degenerate`` names why the response is degenerate, or None.
    ``goal`` and ``attack`` are absent on over-safety rows (a benign prompt has neither)."""

    id: str = Field(min_length=1)
    dataset: str
    prompt: Prompt
    response: str
    refused: bool | None
    judge_reason: str
    judge_label: str | None
    judged_text: str | None
    degenerate: str | None
    goal: str | None = None
    attack: str | None = None
    judge_output: str | None = None

    @property
    def judged_goal(self) -> str | Any:
        """What the judge is asked about: the plain goal (an attack prompt's seed behaviour), else the prompt."""
        return self.goal if self.goal is not None else self.prompt

    @property
    def judged_response(self) -> str:
        """What the judge read: the decoded response of an encoding attack, else the response."""
        return self.judged_text if self.judged_text is not None else self.response

    @property
    def success(self) -> bool | None:
        """A harmful prompt's attack success: not refused (None: the verdict could not be read)."""
        return None if self.refused is None else not self.refused


class UtilityItem(Record):
    """One scored utility item of ``samples/utility.jsonl`` (or a tamper attack's ``ATTACK.utility.jsonl``)."""

    task: str
    id: str | int
    correct: int | bool


class DriftRow(Record):
    """One drift prompt of ``samples/drift.jsonl``: per-token KL(base || variant) and NLL over its ``tokens``."""

    id: str = Field(min_length=1)
    kl: float = Field(ge=0.0)
    nll: float = Field(ge=0.0)
    tokens: int = Field(ge=0)


class RobustRow(Record):
    """One seed behaviour of a tamper run's ``robust.jsonl``: broken or not, and by what (``what_broke``)."""

    id: str = Field(min_length=1)
    broken: bool
    by: list[str]


class PlanRow(Record):
    """One stage's row of ``mubench plan`` (its table, and the ``stages`` of ``--json``, which ``--from-json``
    reads back): memory in GB (1e9 bytes), whether it fits the card (None: no ``--gpu-mem``), and the fix when
    it does not, PFLOPs and GPU-hours. A saved plan needs only ``stage`` and ``gpu_hours`` (and ``need_gb`` to
    place stages on cards)."""

    stage: str
    peak_gb: float | None = None
    need_gb: float | None = None
    parameters_gb: float | None = None
    gradients_gb: float | None = None
    optimizer_gb: float | None = None
    transient_gb: float | None = None  # activations, KV cache, temporaries (gradients, if the peak is in backward)
    other_resident_gb: float | None = None  # a LoRA adapter, a second model (drift's base, the judged model)
    fits: bool | None = None
    fix: str | None = None
    pflops: float | None = None
    gpu_hours: float
    gpu_hours_graphs_assumed: float | None = None
    how: str | None = None


@dataclass(frozen=True)
class TaskResult:
    """One utility task's score: accuracy (exact match for a generation task, which has no ``acc_norm``) and
    per item, in document order, its id and whether it was answered correctly; a generation task also keeps
    each response and the answer extracted from it."""

    acc: float
    acc_norm: float | None
    ids: list[str | int]
    correct: list[int]
    num_fewshot: int | None = None  # as lm-eval ran the task (None: recomputed from samples by ``verify``)
    protocol: str = ""
    exact_match: float | None = None
    lm_eval_exact_match: float | None = None
    responses: list[str] | None = None
    extracted: list[str | None] | None = None

    @property
    def n(self) -> int:
        return len(self.correct)
