"""The method contract and the training hyperparameters every gradient method shares.

A method implements::

    class MyMethod(Method):
        name = "mine"
        Params = MyParams            # a TrainParams subclass: its own knobs, validated from params.yaml
        needs_reference = False      # True: the loop passes the frozen base model as ``ref`` (a copy in the
                                     # compute dtype; under LoRA the model with its adapters disabled)
        def loss(self, model, ref, batches) -> (loss_tensor, {"name": float, ...})

Settings are validated once, when the method is made (``METHODS.get(name, settings)`` or ``MyMethod(params)``),
and read as ``self.p`` by every hook: ``streams``, ``prepare``, ``loss`` and ``finalize`` take no params, and
the training loop reads its own settings (lr, steps, batch size, LoRA) from the same ``method.p``.

``batches`` holds one tokenised batch per stream (input_ids, attention_mask, labels with -100 on prompt and
padding tokens). ``streams`` declares them: by default only ``forget`` (harmful prompt, the model's harmful
response); a method that reads ``retain`` (benign prompt, the model's response), refusals or mismatched answers
returns them from its own ``streams`` (it may decide from its hyperparameters). Reading a stream that
``streams`` did not declare is an error that names it. Streams whose names start with ``forget`` are drawn in
the same order, so batch i of ``forget_refusal`` holds the same prompts as batch i of ``forget``. Optional
hooks, each declared by a class attribute that the plan and the training loop read (never the method's name):
``prepare`` with ``chooses_weights = True`` (it picks the few tensors that train; such a method cannot take
``lora``, which chooses them instead: ``mubench check`` refuses the pair, and the plan costs its backward as a
partial one) and ``finalize`` with ``edits_after_training = True`` (e.g. a task-vector edit after training,
which reads the reference's weights, so under LoRA merged the reference is a copy). A hook without its
declaration, or the reverse, is a TypeError when the class is defined.
Register with ``@METHODS.register("mine")`` (``METHODS`` is defined below) and import it in __init__.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from mubench.core.registry import Registry
from mubench.training.params import TrainParams

if TYPE_CHECKING:
    import torch

    from mubench.core.records import CorpusPair

class Method(ABC):
    name: ClassVar[str]
    Params: ClassVar[type[TrainParams]] = TrainParams
    needs_reference: ClassVar[bool] = False
    chooses_weights: ClassVar[bool] = False  # ``prepare`` picks the trainable tensors (else all train, or LoRA's)
    edits_after_training: ClassVar[bool] = False  # ``finalize`` edits the weights after the last step

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for flag, hook in (("chooses_weights", "prepare"), ("edits_after_training", "finalize")):
            overrides = getattr(cls, hook) is not getattr(Method, hook)
            if overrides != getattr(cls, flag):
                raise TypeError(f"{cls.__name__}: " + (f"overrides {hook} without declaring {flag} = True"
                                                       if overrides else f"declares {flag} without a {hook}"))

    def __init__(self, params: TrainParams | None = None) -> None:
        self.p = params if params is not None else self.Params()

    def streams(self, forget: list[CorpusPair], retain: list[CorpusPair], seed: int) -> dict[str, list[CorpusPair]]:
        """The (prompt, response) lists the loss reads, by stream name: only ``forget`` by default."""
        return {"forget": forget}

    @classmethod
    def settings_problem(cls, params: TrainParams) -> str | None:
        """What is wrong with ``params`` for this method (one line naming the key and the fix), or None. LoRA
        chooses the trainable weights, so a method that chooses them itself (``prepare``) cannot take it; params
        validation and the training loop both ask here."""
        if params.lora is not None and cls.chooses_weights:
            return (f"method_params.{cls.name}.lora: {cls.name} chooses its own trainable weights (prepare); "
                    "remove lora")
        return None

    def prepare(self, model, seed: int) -> None:
        """Called before the optimizer is built, for full fine-tuning only (all parameters train by default)."""
        return None

    @abstractmethod
    def loss(self, model, ref, batches: dict[str, dict[str, torch.Tensor]]):
        raise NotImplementedError

    def finalize(self, model, ref) -> None:
        """Called after the last step, on the unwrapped model."""
        return None


METHODS: Registry[type[Method]] = Registry("method", Method)
