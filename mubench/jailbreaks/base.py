"""The attack contract.

An attack turns a harmful goal into an attack prompt and maps the model's response back to text to judge::

    @JAILBREAKS.register("mine")
    class Mine(Jailbreak):
        name = "mine"
        version = "1"                  # bump when the prompt an attack produces changes
        class Params(JailbreakParams):    # its knobs, validated from params.yaml ``jailbreaks.params.mine``
            ...
        def apply(self, goal) -> str | list[dict]   # a user message, or a whole chat (role/content dicts)
        def decode(self, response) -> str           # identity unless the attack encodes the answer

Template attacks are deterministic functions of the goal. Model-based attacks (``needs_model = True``) are
first fitted on the base model in ``fit`` (ICA picks demonstrations from the forget corpus, GCG optimises a
suffix) and their prompts are then transferred unchanged to every unlearned variant.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from mubench.core.records import CorpusPair, DatasetRow
from mubench.core.registry import Registry
from mubench.core.settings import Settings

Prompt = str | list[dict[str, str]]


class JailbreakParams(Settings):
    """An attack's settings (``jailbreaks.params.NAME``)."""


@dataclass
class FitContext:
    """What a model-based attack may read while it is fitted on the base model."""

    model: Any
    tokenizer: Any
    behaviours: list[DatasetRow]    # the attack seed rows (id, dataset, prompt)
    forget: list[CorpusPair]        # the base model's forget corpus (prompt, response)
    seed: int
    system_prompt: str | None = None


@dataclass(frozen=True)
class FitWork:
    """A fitted jailbreak's accelerator work on the base model, as ``mubench plan`` costs it (read from the attack,
    never from its name): its largest forward (``batch`` sequences of ``tokens`` tokens, the batch set by
    ``batch_key``) and the sequence forwards of the whole fit (a backward counted as two more)."""

    batch: int
    tokens: int
    sequences: int
    batch_key: str
    what: str  # how the plan traced it, e.g. "a forward at GCG's candidate shapes"


class Jailbreak(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    needs_model: ClassVar[bool] = False
    Params: ClassVar[type[JailbreakParams]] = JailbreakParams

    def __init__(self, params: JailbreakParams | None = None) -> None:
        self.p = params if params is not None else self.Params()

    def params(self) -> dict[str, Any]:
        """Everything that determines the attack prompt (recorded with the attack's outputs)."""
        return self.p.model_dump()

    def fit(self, ctx: FitContext) -> dict[str, Any]:
        """Model-based attacks: fit on the base model; returns a record of the fit (losses, choices)."""
        return {}

    @abstractmethod
    def apply(self, goal: str) -> Prompt:
        raise NotImplementedError

    def fit_work(self) -> FitWork | None:
        """The accelerator work of ``fit`` (None: it runs no model forward worth planning)."""
        return None

    def decode(self, response: str) -> str:
        """Map a response back to plain text before judging (identity unless the attack encodes)."""
        return response


JAILBREAKS: Registry[type[Jailbreak]] = Registry("jailbreak", Jailbreak)
