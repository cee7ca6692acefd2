"""The tamper contract: an edit of a checkpoint's weights that tests whether unlearning removed harmful
knowledge or only hid it (the attacked checkpoint is then evaluated like any variant).

A tamper attack implements::

    @TAMPER_ATTACKS.register("mine")
    class Mine(TamperAttack):
        name = "mine"
        version = "1"                       # bump when the same inputs give other weights
        edit_kind = "projection"            # how it changes weights, hence how `mubench plan` costs it:
                                            # "training" (a run of the training loop; ``training()`` gives
                                            # its method and settings) or "projection" (an edit, no forward)
        class Params(TamperParams):    # its knobs, validated from params.yaml ``tamper.params.mine``
            ...
        def fit(self, ctx) -> dict          # optional: learn from the base model (e.g. a direction)
        def apply(self, model, ctx)         # -> (the attacked model: ``model`` edited in place, or a new
                                            #     object, e.g. LoRA merged), a record of what was done

``fit`` runs once on the base model; ``apply`` runs on the base and on every unlearned variant, with what
``fit`` learned, so all of them get the same attack.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from mubench.core.records import CorpusPair
from mubench.core.registry import Registry
from mubench.core.settings import Settings


class TamperParams(Settings):
    """A tamper attack's settings (``tamper.params.NAME``)."""


@dataclass
class TamperContext:
    """What a tamper attack may read. Every prompt here is disjoint from the evaluation sets (``mubench build``
    checks forget and retain prompts against them)."""

    tokenizer: Any
    forget: list[CorpusPair]        # the base model's forget corpus (harmful prompt, its compliant answer)
    retain: list[CorpusPair]             # the base model's retain corpus (benign prompt, its answer)
    seed: int
    device: str = "cpu"
    system_prompt: str | None = None
    fitted: dict[str, Any] = field(default_factory=dict)  # what ``fit`` learned on the base model


EDIT_KINDS = ("training", "projection")


class TamperAttack(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    Params: ClassVar[type[Settings]] = TamperParams  # relearning's extends the training loop's TrainParams
    edit_kind: ClassVar[Literal["training", "projection"]]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # every attack is planned by its kind: one that declares none (or another) would be skipped by the plan
        if "name" in vars(cls) and getattr(cls, "edit_kind", None) not in EDIT_KINDS:
            raise TypeError(f"{cls.__name__}: declare edit_kind, one of {', '.join(EDIT_KINDS)} (how `mubench "
                            "plan` costs the attack)")

    def training(self):
        """For ``edit_kind = "training"``: (the Method the training loop runs, its TrainParams), as ``apply``
        runs it; the plan traces one step of it."""
        raise NotImplementedError(f"{self.name}: edit_kind {self.edit_kind!r} has no training run")

    def __init__(self, params: TamperParams | None = None) -> None:
        self.p = params if params is not None else self.Params()

    def merges_adapter(self) -> bool:
        """Whether a LoRA variant is merged into its weights before ``apply`` (an attack that edits weights must
        see them all); an attack that trains its own LoRA stacks it on the variant's adapter instead."""
        return True

    def fit(self, base_model, ctx: TamperContext) -> dict[str, Any]:
        """Learn from the base model what ``apply`` needs (stored in ``ctx.fitted``); a record of the fit."""
        return {}

    @abstractmethod
    def apply(self, model, ctx: TamperContext) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError

    def load_dtype(self, device: str):
        """The dtype the attacked checkpoint is loaded in (the evaluation dtype unless the attack trains)."""
        from mubench.core.runtime import compute_dtype

        return compute_dtype(device)


TAMPER_ATTACKS: Registry[type[TamperAttack]] = Registry("tamper attack", TamperAttack)
