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

    assert all(JAILBREAKS.get(n).name == n for n in JAILBREAKS.names())
    assert all(METHODS.get(n).name == n for n in METHODS.names())
    assert all(JUDGES.get(n).name == n for n in JUDGES.names())
    assert all(DATASETS.get(n).name == n for n in DATASETS.names())
