"""Developer Mode (the DAN family; jailbreakchat via the in-the-wild corpus).

The text is the pinned PyRIT template ``dev_mode_compact`` (see templates.py), never retyped here.
"""

from __future__ import annotations

from pydantic import Field

from mubench.jailbreaks.base import JAILBREAKS
from mubench.jailbreaks.templates import TemplateAttack, TemplateParams


class DevModeParams(TemplateParams):
    template: str = Field("dev_mode_compact", description="template id in the pinned corpus")


@JAILBREAKS.register("dev_mode")
class DevMode(TemplateAttack):
    name = "dev_mode"
    version = "1"
    Params = DevModeParams
