"""Datasets: one module per dataset, each registering a DatasetSpec under its name (see catalog.py).

Importing this package registers every entry; the registry lives in ``catalog.py``, so entries import downwards."""

from __future__ import annotations

from mubench.datasets import (  # noqa: F401
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
from mubench.datasets.catalog import DATASETS, DatasetSpec, is_generation_task, register

__all__ = ["DATASETS", "DatasetSpec", "is_generation_task", "register"]
