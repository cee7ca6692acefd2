"""Device choice, dtype and seeding: one place so every stage does it the same way."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def pick_device(requested: str = "auto") -> str:
    """``auto`` means the GPU when one is present, else the CPU."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' requested but no GPU is visible; use device: auto or cpu")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def compute_dtype(device: str) -> torch.dtype:
    """bf16 on the GPU, fp32 on the CPU."""
    return torch.bfloat16 if device == "cuda" else torch.float32


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; ask torch for deterministic kernels (exact on CPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
