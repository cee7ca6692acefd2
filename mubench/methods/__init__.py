"""Unlearning methods. A method is a class with a ``Params`` model and a ``loss`` (see base.py).

Importing this package registers every entry; the registry lives in ``base.py``, so entries import downwards."""

from __future__ import annotations

from mubench.methods import dpo, ga, graddiff, llmu, npo, rmu, safe_unlearning, simnpo, sku  # noqa: F401
from mubench.methods.base import METHODS, Method

__all__ = ["METHODS", "Method"]
