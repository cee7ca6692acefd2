"""Shared fixtures: a tiny randomly initialised Llama with a byte-level tokenizer (no download)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mubench.core.config import TinyRandomModel
from mubench.engine.models import byte_level_tokenizer, tiny_random_model
from tests.helpers.rows import pair

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MUBENCH_GEN_CACHE", "0")


@pytest.fixture(autouse=True)
def _release_output_claims():
    """A stage's claims on its outputs last for its process (the CLI drops them when the stage returns); a test
    is that process here."""
    yield
    from mubench.core.outputs import release_claims

    release_claims()


@pytest.fixture(scope="session")
def tokenizer():
    return byte_level_tokenizer()


@pytest.fixture()
def tiny_model(tokenizer):
    spec = TinyRandomModel(source="tiny_random", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64)
    return tiny_random_model(spec, tokenizer, seed=0).eval()


@pytest.fixture()
def pairs():
    """Harmless toy prompt/response pairs (the tests only need token sequences)."""
    return [
        pair("Name a colour.", "Blue is a colour."),
        pair("Count to three.", "One, two, three."),
        pair("Say hello.", "Hello there, friend!"),
        pair("What is a cat?", "A cat is a small animal."),
    ]


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory):
    """A real single-node Slurm for the session (tests/helpers/slurm.py): the environment that points at it."""
    from tests.helpers.slurm import cluster

    with cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env
