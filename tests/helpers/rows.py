"""Typed rows for tests that score hand-made judged rows, utility results and drift rows."""

from __future__ import annotations

from mubench.core.records import CorpusPair, DriftRow, JudgedRow, TaskResult


def judged(row_id: str, dataset: str, attack: str | None = None, refused: bool | None = False,
           degenerate: str | None = None, judge_label: str | None = None, reason: str = "ok") -> JudgedRow:
    """A judged row; ``attack`` None makes an over-safety row (no attack, no goal)."""
    where = {"attack": attack, "goal": f"goal of {row_id}"} if attack is not None else {}
    return JudgedRow(id=row_id, dataset=dataset, prompt=f"prompt of {row_id}", response="a response", refused=refused,
                     judge_reason=reason, judge_label=judge_label, judged_text=None, degenerate=degenerate, **where)


def task(correct: list[int], acc_norm: float | None = None) -> TaskResult:
    """A multiple-choice task's result over ``correct``."""
    return TaskResult(acc=sum(correct) / len(correct), acc_norm=acc_norm, ids=[str(i) for i in range(len(correct))],
                      correct=correct)


def drift(row_id: str, kl: float, nll: float, tokens: int) -> DriftRow:
    return DriftRow(id=row_id, kl=kl, nll=nll, tokens=tokens)


def pair(prompt: str, response: str) -> CorpusPair:
    """A (prompt, response) corpus pair (its id is its prompt: unique in every test that uses it)."""
    return CorpusPair(id=prompt, dataset="test", prompt=prompt, response=response)
