"""mubench: judging machine unlearning as a safety-alignment tool for LLMs."""

from mubench.core.kernels import pin_cpu_kernels

pin_cpu_kernels()  # before anything imports torch: the same CPU bits on every x86-64 processor

__version__ = "0.1.0"
