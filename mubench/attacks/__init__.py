"""Jailbreak attack registry. An attack rewrites a harmful goal into an attack prompt (see base.py)."""

from __future__ import annotations

from mubench.registry import Registry

ATTACKS: Registry[type] = Registry("attack")

from mubench.attacks import base64, prefix_injection  # noqa: E402,F401


def get_attack(name: str):
    return ATTACKS.get(name)()
