"""The one type of an expected, user-fixable problem.

A ``UserError`` is a problem the user can fix (a setting, a file, a missing stage output, a tool that failed):
its message is already one line that names what is wrong and how to fix it, and the CLI prints it as
``error: ...`` and exits with ``exit_code`` (2 for configuration and names, 1 otherwise). Every other exception
is a bug and keeps its traceback. ``InvalidValue`` and ``FailedStep`` keep the built-in bases code already
catches (``ValueError``, ``RuntimeError``); pydantic validators may raise ``InvalidValue`` like any ValueError.
"""

from __future__ import annotations

from typing import ClassVar


class UserError(Exception):
    exit_code: ClassVar[int] = 1


class InvalidValue(UserError, ValueError):
    """A value the user gave, or a file holds, is not what mubench can use."""


class FailedStep(UserError, RuntimeError):
    """A step cannot go on (an output is missing or busy, a download does not match, a tool failed)."""
