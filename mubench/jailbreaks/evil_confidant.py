"""Evil Confidant role play (jailbreakchat via the in-the-wild corpus).

The text is the pinned PyRIT template ``evil_confidant`` (see templates.py), never retyped here.
"""

from __future__ import annotations

from pydantic import Field

from mubench.jailbreaks.base import JAILBREAKS
from mubench.jailbreaks.templates import TemplateAttack, TemplateParams


class EvilConfidantParams(TemplateParams):
    template: str = Field("evil_confidant", description="template id in the pinned corpus")


@JAILBREAKS.register("evil_confidant")
class EvilConfidant(TemplateAttack):
    name = "evil_confidant"
    version = "1"
    Params = EvilConfidantParams
