"""Refusal suppression (Wei et al. 2023, "Jailbroken"): rules that forbid the usual refusal words.

The text is the pinned PyRIT template ``refusal_suppression`` (see templates.py), never retyped here.
"""

from __future__ import annotations

from pydantic import Field

from mubench.jailbreaks.base import JAILBREAKS
from mubench.jailbreaks.templates import TemplateAttack, TemplateParams


class RefusalSuppressionParams(TemplateParams):
    template: str = Field("refusal_suppression", description="template id in the pinned corpus")


@JAILBREAKS.register("refusal_suppression")
class RefusalSuppression(TemplateAttack):
    name = "refusal_suppression"
    version = "1"
    Params = RefusalSuppressionParams
