"""Unlearning methods registry. A method is a class with a ``Params`` model and a ``loss`` (see base.py)."""

from __future__ import annotations

from mubench.core.registry import Registry
from mubench.methods.base import Method

METHODS: Registry[type] = Registry("method", Method)

from mubench.methods import dpo, ga, graddiff, llmu, npo, rmu, safe_unlearning, simnpo, sku  # noqa: E402,F401
