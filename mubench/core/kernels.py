"""CPU kernel paths pinned before torch loads, so a CPU run gives the same bits on every x86-64 processor.

PyTorch's CPU kernels (ATen), MKL and oneDNN each pick a vector code path by the processor they find: AVX-512
on one machine, AVX2 on another. The paths round differently at the 1e-6 level (GA's first unlearning loss on the
smoke profile: -1.142452 with AVX-512, -1.142445 with AVX2), which is enough to change every checkpoint hash and
every downstream file, although no rate moves. AVX2 is the path every x86-64 CPU of the last decade has, so it
is the one pinned: ``ATEN_CPU_CAPABILITY`` for ATen's dispatch, ``MKL_CBWR`` (MKL's conditional numerical
reproducibility) for BLAS, ``ONEDNN_MAX_CPU_ISA`` for oneDNN. A value the user set is kept (and recorded).
Each is read once, when its library first runs, so ``pin_cpu_kernels`` runs at ``import mubench``, before
anything imports torch; ``kernel_record`` says what the process really used, beside every artifact.
"""

from __future__ import annotations

import os
import platform
import sys

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
X86_64 = {"x86_64", "amd64"}


def pin_cpu_kernels() -> None:
    """Pin the AVX2 paths on x86-64 unless the user chose (other processors have one path per build)."""
    if platform.machine().lower() in X86_64:
        for name, value in PINNED.items():
            os.environ.setdefault(name, value)


def kernel_record() -> dict[str, str | None]:
    """The pinned variables as this process has them, and ATen's capability in use (when torch is loaded)."""
    record: dict[str, str | None] = {name: os.environ.get(name) for name in PINNED}
    torch = sys.modules.get("torch")
    record["aten_capability"] = torch.backends.cpu.get_cpu_capability() if torch is not None else None
    return record
