"""relearn_benign: k steps of fine-tuning on n benign pairs unrelated to the forget set (the base model's own
answers to retain prompts, disjoint from every evaluation set). Restoring harmful behaviour from unrelated data
shows that unlearning left it in the weights (Łucki et al. 2024)."""

from __future__ import annotations

from mubench.tamper.base import TAMPER_ATTACKS
from mubench.tamper.relearn import Relearn


@TAMPER_ATTACKS.register("relearn_benign")
class RelearnBenign(Relearn):
    name = "relearn_benign"
    version = "1"
    source = "retain"
