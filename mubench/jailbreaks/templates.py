"""Jailbreak templates from a pinned public corpus: the templates shipped in the ``pyrit==1.1.0`` wheel.

The wheel is fetched with ``pip download --no-deps`` (never imported) and verified by sha256; each template
file is verified by its own sha256 before use, so a template text is never retyped into this code base.
A template is a YAML document whose ``value`` holds the text with a ``{{ prompt }}`` slot.
"""

from __future__ import annotations

import re

import yaml
from pydantic import Field, field_validator

from mubench.core.errors import InvalidValue
from mubench.jailbreaks.base import Jailbreak, JailbreakParams

REQUIREMENT = "pyrit==1.1.0"
WHEEL_SHA256 = "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a"
TEMPLATE_DIR = "pyrit/datasets/jailbreak/templates"
# template id -> sha256 of the YAML file in the wheel (the ids these attacks may use)
PINNED: dict[str, str] = {
    "aim": "2b685c9509991182e0f93b42f1442244561c4ddce1e6cce759a18cce6446410f",
    "dev_mode_compact": "58050270481a9b04e5c1e62280f0e63e05324f645585d3a076471984dae0ccaf",
    "dev_mode_1": "ac79a6d5962589d74fbd51131223dd459b16c339a323a9c1c4ef547dda05c397",
    "evil_confidant": "3bb914c804ac7c698475530ea662a0075dd65f37ca276349da49625345109b3e",
    "refusal_suppression": "2dbcb1b175c8fa98b74b9e659ccb702728512f1f1011b5875518b344f4474056",
}
_SLOT = re.compile(r"\{\{\s*prompt\s*\}\}")
_loaded: dict[str, str] = {}


def load_template(template_id: str) -> str:
    """The verified text of a pinned template (cached per process)."""
    from mubench.core.pins import download_wheel, read_member

    if template_id not in PINNED:
        raise InvalidValue(f"template '{template_id}' is not pinned; allowed: {', '.join(sorted(PINNED))}")
    if template_id not in _loaded:
        member = f"{TEMPLATE_DIR}/{template_id}.yaml"
        raw = read_member(download_wheel(REQUIREMENT, WHEEL_SHA256), member, PINNED[template_id])
        text = str(yaml.safe_load(raw.decode("utf-8"))["value"]).strip()
        if len(_SLOT.findall(text)) != 1:
            raise InvalidValue(f"{member}: expected one {{{{ prompt }}}} slot")
        _loaded[template_id] = text
    return _loaded[template_id]


def render(template: str, goal: str) -> str:
    return _SLOT.sub(lambda _: goal, template)


class TemplateParams(JailbreakParams):
    template: str = Field(description="template id in the pinned corpus")

    @field_validator("template")
    @classmethod
    def _pinned(cls, value: str) -> str:
        if value not in PINNED:
            raise InvalidValue(f"'{value}' is not a pinned template; allowed: {', '.join(sorted(PINNED))}")
        return value


class TemplateAttack(Jailbreak):
    """An attack that fills the goal into one pinned corpus template (its id is checked by TemplateParams)."""

    def params(self) -> dict:
        return {"template": self.p.template, "corpus": REQUIREMENT,
                "template_sha256": PINNED[self.p.template]}

    def apply(self, goal: str) -> str:
        return render(load_template(self.p.template), goal)
