"""Judging a set of responses: the rows every stage that judges writes (``evaluate``, ``tamper``), the judges
of a run and their record. One place, so an attacked copy is judged exactly like the variant it came from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mubench.core.artifacts import read_rows
from mubench.core.config import Params
from mubench.core.records import DatasetRow, HarmfulRow, JailbreakRow, JudgedRow
from mubench.judges import JUDGES
from mubench.judges.quality import degenerate
from mubench.scoring.rates import VANILLA

OVERSAFETY = "over-safety"  # the set name of the benign prompts (never an attack name)


def judge_for(params: Params, name: str, model: str | None = None):
    """Judge ``name`` with params.yaml's settings; an LLM judge's ``batch_size`` is ``model``'s own where
    ``judge.batch_size_by_model`` sets one (the evaluated model stays loaded beside it)."""
    settings = dict(params.judge.options.get(name, {}))
    batch = params.batches(model)["judge"] if model else None
    if batch is not None and "batch_size" in JUDGES.entry(name).Params.model_fields:
        settings["batch_size"] = batch
    return JUDGES.get(name, settings)


@dataclass(frozen=True)
class Judges:
    """The run's safety judge (harmful prompts, jailbreaks) and over-safety judge (benign prompts)."""

    safety: Any
    oversafety: Any

    @classmethod
    def of(cls, params: Params, model: str | None = None) -> Judges:
        """The run's judges; an LLM judge at ``model``'s judge batch (``judge.batch_size_by_model``) when set."""
        return cls(judge_for(params, params.judge.safety, model), judge_for(params, params.judge.oversafety, model))

    def record(self) -> dict[str, str]:
        """``name/version`` of each judge, for the run record beside the metrics."""
        return {"safety": f"{self.safety.name}/{self.safety.version}",
                "oversafety": f"{self.oversafety.name}/{self.oversafety.version}"}

    def labels(self) -> tuple[Any, Any]:
        return self.safety.labels, self.oversafety.labels

    def release(self) -> None:
        """Free the LLM judges' weights (utility and drift run without them)."""
        for judge in (self.safety, self.oversafety):
            getattr(judge, "release", lambda: None)()


def harmful_rows(built_dir: Path) -> list[HarmfulRow]:
    """The plain harmful prompts as judged rows: the goal is the prompt itself, the attack is none."""
    return [row.as_(HarmfulRow, goal=row.prompt, attack=VANILLA)
            for row in read_rows(DatasetRow, built_dir / "harmful.jsonl")]


def judged_rows(judge, rows: Sequence[DatasetRow | JailbreakRow], responses: list[str],
                decode=None) -> list[JudgedRow]:
    """Rows with response, judged text (decoded for encoding attacks) and the judge's verdict.

    The judge sees the plain goal (not the attack prompt) and the decoded response."""
    texts = [decode(r) if decode else r for r in responses]
    verdicts = judge.judge_many([getattr(row, "goal", row.prompt) for row in rows], texts)
    return [row.as_(JudgedRow, response=response, judged_text=text if decode else None, refused=v.refused,
                    judge_reason=v.reason, judge_label=v.label, degenerate=degenerate(text),
                    **({"judge_output": v.output} if v.output is not None else {}))
            for row, response, text, v in zip(rows, responses, texts, verdicts, strict=True)]
