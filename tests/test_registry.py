"""Registries refuse entries that would file results under the wrong name or are not of the family's class."""

from __future__ import annotations

import pytest

from mubench.core.registry import Registry
from mubench.jailbreaks.base import Jailbreak
from mubench.methods.base import Method


def test_an_entry_whose_name_differs_from_its_key_is_refused():
    registry = Registry("method", Method)

    with pytest.raises(ValueError, match="method 'ga2': its name attribute is 'ga'"):
        @registry.register("ga2")
        class Mislabelled(Method):
            name = "ga"


def test_an_entry_of_another_family_is_refused():
    registry = Registry("jailbreak", Jailbreak)

    with pytest.raises(TypeError, match="jailbreak 'x': .* is not a Jailbreak"):
        @registry.register("x")
        class NotAJailbreak(Method):
            name = "x"


def test_a_name_that_is_not_a_folder_name_is_refused():
    with pytest.raises(ValueError, match="cannot be used as a folder name"):
        Registry("method").register("../x")


def test_every_shipped_entry_passes():
    from mubench.datasets import DATASETS
    from mubench.jailbreaks import JAILBREAKS
    from mubench.judges import JUDGES
    from mubench.methods import METHODS

    assert all(JAILBREAKS.entry(n).name == n for n in JAILBREAKS.names())
    assert all(METHODS.entry(n).name == n for n in METHODS.names())
    assert all(JUDGES.entry(n).name == n for n in JUDGES.names())
    assert all(DATASETS.entry(n).name == n for n in DATASETS.names())


# ---------------------------------------------------------------- one contract for every family
CLASS_FAMILIES = ["methods", "jailbreaks", "tamper", "judges"]


def _registry(family: str):
    from mubench.families import FAMILIES

    return getattr(FAMILIES, family)


@pytest.mark.parametrize("family", CLASS_FAMILIES)
def test_every_class_family_has_the_same_shape(family):
    """An abstract base that names what goes in and out, a Params model per entry, settings validated once at
    construction by ``get(name, settings)``, and the registry defined beside the base (entries import down)."""
    import abc
    import importlib

    from mubench.core.settings import Settings

    registry = _registry(family)
    base = registry.base
    assert isinstance(base, abc.ABCMeta) and base.__abstractmethods__, f"{base.__name__} is not abstract"
    assert base.__doc__ or importlib.import_module(base.__module__).__doc__
    assert any(v is registry for v in vars(importlib.import_module(base.__module__)).values()), \
        "the registry is defined in the base's module"
    for name in registry.names():
        cls = registry.entry(name)
        assert issubclass(cls.Params, Settings), name
        if any(f.is_required() for f in cls.Params.model_fields.values()):
            continue  # an LLM judge needs its model named; the twin and the paper path build those
        entry = registry.get(name)
        assert isinstance(entry, cls) and isinstance(entry.p, cls.Params)
        assert registry.get(name, entry.p).p is entry.p  # a validated instance is taken as it is


@pytest.mark.parametrize("family", CLASS_FAMILIES)
def test_settings_are_validated_once_with_one_line_naming_the_key(family):
    from pydantic import ValidationError

    registry = _registry(family)
    name = registry.names()[0]
    with pytest.raises(ValidationError, match="no_such_knob"):
        registry.get(name, {"no_such_knob": 1})


def test_a_dataset_is_a_registered_spec_that_takes_no_settings():
    datasets = _registry("datasets")
    spec = datasets.get("advbench")
    assert spec is datasets.entry("advbench")
    with pytest.raises(TypeError, match="takes no settings"):
        datasets.get("advbench", {"rows": 3})


def test_every_llm_judge_reads_the_answer_words_it_declares():
    """The twin builds its stand-in classifiers' vocabulary from these words, so parse must read exactly them."""
    from mubench.judges import JUDGES
    from mubench.judges.llm import LlmJudge
    from mubench.tools.twin import verdict_words

    llm = [name for name in JUDGES.names() if issubclass(JUDGES.entry(name), LlmJudge)]
    assert llm and sorted(verdict_words()) == sorted(w for n in llm for w in JUDGES.entry(n).answer_words())
    for name in llm:
        judge = JUDGES.get(name)
        flag, passed = judge.answer_words()
        assert judge.parse(flag).refused is False and judge.parse(passed).refused is True, name


def test_a_hook_must_be_declared_and_an_entry_must_implement_the_contract():
    from mubench.tamper.base import TamperAttack

    with pytest.raises(TypeError, match="overrides prepare without declaring chooses_weights"):
        class Sneaky(Method):
            name = "sneaky"

            def loss(self, model, ref, batches):
                return 0.0, {}

            def prepare(self, model, seed):
                return None

    class NoLoss(Method):
        name = "no_loss"

    with pytest.raises(TypeError, match="abstract method"):
        NoLoss()
    with pytest.raises(TypeError, match="declare edit_kind"):
        class Undeclared(TamperAttack):
            name = "undeclared"
            version = "1"
