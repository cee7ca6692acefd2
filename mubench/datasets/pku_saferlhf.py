"""PKU-SafeRLHF (Ji et al. 2024): harmful questions with paired responses and per-response safety labels.

Forget pairs: (prompt, an unsafe response); the safe response, when there is one, is kept in
``meta.safe_response`` (a refusal-style target). Rows with no unsafe response are skipped.
"""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, HubSource, MalformedDataError, record, register
from mubench.datasets.readers import read_jsonl, require
from mubench.datasets.stand_in import REFUSAL, mirror_rows, write_json_lines

FILE = "data/Alpaca-7B/test.jsonl"
COLUMNS = {"prompt", "response_0", "response_1", "is_response_0_safe", "is_response_1_safe"}


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    rows = []
    for line, item in read_jsonl(path):
        if missing := COLUMNS - set(item):
            raise MalformedDataError(path, line, f"missing keys {sorted(missing)}")
        responses = [(item["response_0"], item["is_response_0_safe"]), (item["response_1"], item["is_response_1_safe"])]
        unsafe = [text for text, safe in responses if not safe and text]
        if not unsafe:
            continue
        safe = [text for text, is_safe in responses if is_safe and text]
        rows.append(record(id=f"pku-saferlhf-{line:05d}", dataset="pku-saferlhf", role="forget",
                           prompt=require(path, line, item["prompt"], "prompt"), response=unsafe[0],
                           meta={"safe_response": safe[0] if safe else None}))
    return rows


def stand_in(mirror: Path, path: Path, n: int) -> None:
    """AdvBench's first goals, each with the goal echoed as the unsafe response and a refusal as the safe one."""
    write_json_lines(path, [{"prompt": r["prompt"], "response_0": r["prompt"], "response_1": REFUSAL,
                             "is_response_0_safe": False, "is_response_1_safe": True}
                            for r in mirror_rows("advbench", mirror)[:n]])


SPEC = register(
    DatasetSpec(
        name="pku-saferlhf",
        role="forget",
        license="CC-BY-NC-4.0",
        citation="Ji et al. 2024, PKU-SafeRLHF: Towards Multi-Level Safety Alignment for LLMs with Human Preference",
        description="harmful prompts with an unsafe response (and a safe one where labelled), Alpaca-7B test split",
        sources=(HubSource("PKU-Alignment/PKU-SafeRLHF", (FILE,)),),
        parse=parse,
        stand_in=stand_in,
    )
)
