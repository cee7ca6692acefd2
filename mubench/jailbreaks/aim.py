"""AIM (Always Intelligent and Machiavellian; jailbreakchat via Shen et al. 2024 in-the-wild corpus).

The text is the pinned PyRIT template ``aim`` (see templates.py), never retyped here.
"""

from __future__ import annotations

from pydantic import Field

from mubench.jailbreaks.base import JAILBREAKS
from mubench.jailbreaks.templates import TemplateAttack, TemplateParams


class aimParams(TemplateParams):
    template: str = Field("aim", description="template id in the pinned corpus")


@JAILBREAKS.register("aim")
class aim(TemplateAttack):
    name = "aim"
    version = "1"
    Params = aimParams
