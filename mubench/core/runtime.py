"""Device choice, dtype and seeding: one place so every stage does it the same way."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from mubench.core.errors import FailedStep


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is exposed to this process (device nodes or the container runtime's variable),
    whether or not torch can use it."""
    visible = os.environ.get("NVIDIA_VISIBLE_DEVICES", "")
    return Path("/dev/nvidiactl").exists() or visible not in ("", "void", "none")


def pick_device(requested: str = "auto") -> str:
    """``auto`` means the GPU when torch can use one, else the CPU (saying so when a GPU is there but unusable,
    e.g. a driver older than the CUDA build of torch)."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise FailedStep("device: 'cuda' requested but torch sees no usable GPU; use device: auto or cpu")
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if gpu_present():
            from mubench.core.progress import log

            log(f"[device] a GPU is exposed but torch (CUDA {torch.version.cuda or 'none'}) cannot use it (driver "
                "too old for this build?); running on the CPU")
        return "cpu"
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
