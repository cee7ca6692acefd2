"""relearn_forget: k steps of fine-tuning on n pairs of the forget corpus (harmful prompts disjoint from the
evaluated ones, with the base model's compliant answers): the in-domain relearning attack of the WMDP/RMU
line."""

from __future__ import annotations

from mubench.tamper.base import TAMPER_ATTACKS
from mubench.tamper.relearn import Relearn


@TAMPER_ATTACKS.register("relearn_forget")
class RelearnForget(Relearn):
    name = "relearn_forget"
    version = "1"
    source = "forget"
