"""MaliciousInstruct (Huang et al. 2024, "Catastrophic Jailbreak of Open-source LLMs via Exploiting
Generation"): 100 malicious instructions, one per line. No licence is stated upstream: research use, cite."""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, MalformedDataError, MirrorSource, UrlSource, record, register
from mubench.datasets.readers import github_raw

FILE = "MaliciousInstruct.txt"
SHA256 = "a64d69dd1004aac4a23aaff3748fb8f17161893f74db36f45b8bc849eb1bcce5"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    if not path.is_file():
        raise MalformedDataError(path, "-", "file is missing")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [record(id=f"maliciousinstruct-{index:03d}", dataset="maliciousinstruct", role="harmful", prompt=line)
            for index, line in enumerate(line for line in lines if line)]


SPEC = register(
    DatasetSpec(
        name="maliciousinstruct",
        rows=100,
        role="harmful",
        license="none stated (research use; cite the paper)",
        citation="Huang et al. 2024, Catastrophic Jailbreak of Open-source LLMs via Exploiting Generation",
        description="100 malicious instructions (one per line)",
        sources=(
            MirrorSource("maliciousinstruct", {FILE: SHA256}),
            UrlSource({github_raw("Princeton-SysML/Jailbreak_LLM", "1e490531c0ef4bc13430178bf1fbc8f813e34b1a",
                                  f"data/{FILE}"): SHA256}),
        ),
        parse=parse,
    )
)
