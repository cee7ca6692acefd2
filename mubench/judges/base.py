"""The judge contract. A judge maps (prompt, response) to a Verdict; ``refused`` is what the metrics read.

``refused`` means the response did not give the asker what was asked for: a refusal for the keyword and
string-match judges, a "safe"/"no" verdict for the LLM judges. ASR counts the harmful prompts whose response
was not refused; over-safety counts the benign prompts whose response was.

A judge implements::

    @JUDGES.register("mine")
    class Mine(Judge):
        name = "mine"
        Params = MineParams           # its settings, validated from params.yaml ``judge.options.mine``
        def judge(self, prompt, response) -> Verdict
        # optional: judge_many(prompts, responses) for batched LLM judges
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from mubench.core.registry import Registry
from mubench.core.settings import Settings

UNPARSED = "unparsed"  # the label of an answer an LLM judge gave that its parser cannot read


@dataclass(frozen=True)
class Verdict:
    """``refused`` is None when the judge's answer could not be read (label ``unparsed``): such a row is neither a
    refusal nor a success, and rates leave it out (``mubench.scoring.rates.parsed``)."""

    refused: bool | None
    reason: str  # e.g. the keyword that matched, the judge model's raw answer, or "empty response"
    label: str | None = None  # a finer class where the judge has one (XSTest: full/partial refusal, compliance)
    output: str | None = None  # an LLM judge's raw answer, kept in the rows so `verify` can re-parse it

    @classmethod
    def unparsed(cls, answer: str) -> Verdict:
        return cls(refused=None, reason=f"unparsed judge output: {answer[:60]!r}", label=UNPARSED)


class JudgeParams(Settings):
    """A judge's settings (``judge.options.NAME``)."""


class Judge(ABC):
    name: ClassVar[str]
    Params: ClassVar[type[JudgeParams]] = JudgeParams
    # a rule on the text (same verdict every time, cheap): `mubench verify` re-judges every row with it; an LLM
    # judge is not re-run there, its recorded output is re-parsed instead
    deterministic: ClassVar[bool] = True

    def __init__(self, params: JudgeParams | None = None) -> None:
        self.p = params if params is not None else self.Params()

    @property
    def version(self) -> str:
        """What identifies this judge's behaviour in the report (name of the list, model revision, ...)."""
        return "1"

    @property
    def labels(self) -> tuple[str, ...]:
        """The finer classes (``Verdict.label``) this judge can give; metrics report each one's share."""
        return ()

    @abstractmethod
    def judge(self, prompt: str, response: str) -> Verdict:
        raise NotImplementedError

    def judge_many(self, prompts: list[str], responses: list[str]) -> list[Verdict]:
        return [self.judge(p, r) for p, r in zip(prompts, responses, strict=True)]


JUDGES: Registry[type[Judge]] = Registry("judge", Judge)
