"""TruthfulQA (Lin et al. 2022), multiple-choice form: 790 questions (``mc_task.json``).

``choices``/``answer`` are the MC1 targets (one correct answer, lm-eval's truthfulqa_mc1); the MC2 targets
(several correct answers) are kept in ``meta.mc2_choices`` / ``meta.mc2_labels``.
"""

from __future__ import annotations

from pathlib import Path

from mubench.datasets.catalog import DatasetSpec, MalformedDataError, MirrorSource, UrlSource, record, register
from mubench.datasets.readers import github_raw, read_json_list, require

FILE = "mc_task.json"
SHA256 = "c90d853454fd48c676accb33e16923ac438dbb6fb37ecc7c6a70e33c9e556e87"


def parse(raw_dir: Path) -> list[dict]:
    path = raw_dir / FILE
    rows = []
    for index, item in enumerate(read_json_list(path)):
        mc1, mc2 = item.get("mc1_targets") or {}, item.get("mc2_targets") or {}
        correct = [i for i, label in enumerate(mc1.values()) if label == 1]
        if len(correct) != 1 or not mc2:
            raise MalformedDataError(path, index, "mc1_targets needs exactly one correct answer, mc2_targets some")
        rows.append(record(id=f"truthfulqa-{index:03d}", dataset="truthfulqa", role="utility",
                           prompt=require(path, index, item.get("question"), "question"), choices=list(mc1),
                           answer=correct[0], meta={"mc2_choices": list(mc2), "mc2_labels": list(mc2.values())}))
    return rows


SPEC = register(
    DatasetSpec(
        name="truthfulqa",
        rows=790,
        role="utility",
        license="Apache-2.0",
        citation="Lin et al. 2022, TruthfulQA: Measuring How Models Mimic Human Falsehoods",
        description="790 questions, MC1 (one correct) and MC2 (several correct) targets",
        sources=(
            MirrorSource("truthfulqa", {FILE: SHA256}),
            UrlSource({github_raw("sylinrl/TruthfulQA", "f6be04e52bbcb41d4d20daee6358231d4a5015d2",
                                  f"data/{FILE}"): SHA256}),
        ),
        parse=parse,
    )
)
