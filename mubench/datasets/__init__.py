"""Dataset registry: one module per dataset, each registering a DatasetSpec under its name."""

from __future__ import annotations

from mubench.core.registry import Registry
from mubench.datasets.catalog import DatasetSpec

DATASETS: Registry[DatasetSpec] = Registry("dataset", DatasetSpec)


def register(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.register(spec.name)(spec)
    return spec


def is_generation_task(name: str) -> bool:
    """A utility dataset scored by generating an answer (GSM8K), not by answer choices."""
    return DATASETS.get(name).extra.get("task") == "generate"


# Importing the entries fills the registry.
from mubench.datasets import (  # noqa: E402,F401
    advbench,
    alpaca,
    arc_challenge,
    donotanswer,
    gsm8k,
    harmbench,
    hellaswag,
    inthewild_jailbreaks,
    jbb_harmful,
    maliciousinstruct,
    mmlu,
    oktest,
    or_bench_hard,
    phtest,
    pku_saferlhf,
    rho_overrefusal,
    strongreject,
    truthfulqa,
    xstest,
)
