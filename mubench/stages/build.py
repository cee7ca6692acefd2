"""Build the benchmark splits from fetched datasets: seeded, stratified by category, leak-free.

Outputs (under ``data/built``): harmful.jsonl and oversafety.jsonl (evaluation prompts), utility/<task>.jsonl,
forget_prompts.jsonl and retain_prompts.jsonl (prompts the unlearning corpus is generated from),
drift_prompts.jsonl (held-out benign prompts whose base answers measure utility drift), build.json.
No evaluation prompt appears in the forget, retain or drift prompts, and the drift prompts are in neither the
forget nor the retain prompts (normalised-text check).
"""

from __future__ import annotations

import re
from pathlib import Path

from mubench.core.artifacts import Provenance, read_artifact
from mubench.core.config import Params
from mubench.core.errors import InvalidValue
from mubench.core.io import atomic_dir, write_json, write_jsonl
from mubench.core.outputs import claim_outputs
from mubench.core.sampling import stratified_sample
from mubench.core.workspace import Workspace

OWNER = "mubench build"
_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lowercase, drop punctuation, collapse whitespace: the key used for leak checks."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def load_rows(raw_root: Path, name: str) -> list[dict]:
    """A fetched dataset's records, after re-hashing its files against its provenance.json."""
    from mubench.datasets.fetch import read_fetched, verify

    problems = verify(name, raw_root)
    if problems:
        raise InvalidValue(f"{problems[0]} (data/raw changed since it was fetched; re-run `mubench fetch {name}`)")
    return read_fetched(name, raw_root)


def sized_sample(rows: list[dict], size: int | str, seed: int, key: str, what: str) -> list[dict]:
    """``stratified_sample`` of ``size`` rows (``all``: every row); asking for more rows than ``what`` holds is
    an error naming the params key ``key``."""
    if size == "all":
        return stratified_sample(rows, len(rows), seed)
    if size > len(rows):
        raise InvalidValue(f"data.sizes.{key} = {size}, but {what} has only {len(rows)} rows; lower it or set it "
                         "to `all`")
    return stratified_sample(rows, size, seed)


def run_build(params: Params, ws: Workspace) -> dict:
    """Write every split into ``data/built``; returns the build summary (also written as build.json)."""
    raw_root, out_dir = ws.raw, ws.built
    claim_outputs(OWNER, out_dir)
    seed, sizes, data = params.seed, params.data.sizes, params.data
    rows = {name: load_rows(raw_root, name) for name in params.datasets}
    harmful = [r for name in data.harmful
               for r in sized_sample(rows[name], sizes.harmful_per_dataset, seed, "harmful_per_dataset", name)]
    # over-safety is measured on safe prompts only (XSTest's unsafe contrast prompts are left out)
    oversafety = [r for name in data.oversafety
                  for r in sized_sample([x for x in rows[name] if not x["meta"].get("contrast")],
                                        sizes.oversafety_per_dataset, seed, "oversafety_per_dataset",
                                        f"{name} (its safe prompts)")]
    utility = {name: sized_sample(rows[name], sizes.utility_per_task, seed, "utility_per_task", name)
               for name in data.utility}
    eval_texts = {normalize(r["prompt"]) for r in harmful + oversafety}
    eval_texts |= {normalize(r["prompt"]) for split in utility.values() for r in split}

    def pool(name: str) -> list[dict]:
        return [r for r in rows[name] if normalize(r["prompt"]) not in eval_texts]

    forget = sized_sample(pool(data.forget_source), sizes.forget, seed + 1, "forget",
                          f"the forget pool ({data.forget_source} minus the evaluation prompts)")
    retain_pool = [r for r in pool(data.retain_source)
                   if normalize(r["prompt"]) not in {normalize(f["prompt"]) for f in forget}]
    retain = [as_instruction(r) for r in sized_sample(
        retain_pool, sizes.retain, seed + 2, "retain",
        f"the retain pool ({data.retain_source} minus the evaluation and forget prompts)")]
    train_texts = {normalize(r["prompt"]) for r in forget + retain}
    drift = [as_instruction(r) for r in sized_sample(
        [r for r in pool(data.drift_source) if normalize(as_instruction(r)["prompt"]) not in train_texts
         and normalize(r["prompt"]) not in train_texts], sizes.drift, seed + 3, "drift",
        f"the drift pool ({data.drift_source} minus the evaluation, forget and retain prompts)")]
    check_disjoint(harmful + oversafety + [r for s in utility.values() for r in s], forget + retain + drift)
    check_disjoint(forget + retain, drift)

    summary = {
        "seed": seed,
        "counts": {
            "harmful": {n: sum(r["dataset"] == n for r in harmful) for n in data.harmful},
            "oversafety": {n: sum(r["dataset"] == n for r in oversafety) for n in data.oversafety},
            "utility": {n: len(s) for n, s in utility.items()},
            "forget_prompts": len(forget),
            "retain_prompts": len(retain),
            "drift_prompts": len(drift),
        },
        "provenance": {name: _provenance_summary(raw_root / name) for name in params.datasets},
    }
    with atomic_dir(out_dir, OWNER) as tmp:
        write_jsonl(tmp / "harmful.jsonl", harmful)
        write_jsonl(tmp / "oversafety.jsonl", oversafety)
        for name, split in utility.items():
            write_jsonl(tmp / "utility" / f"{name}.jsonl", split)
        write_jsonl(tmp / "forget_prompts.jsonl", forget)
        write_jsonl(tmp / "retain_prompts.jsonl", retain)
        write_jsonl(tmp / "drift_prompts.jsonl", drift)
        write_json(tmp / "build.json", summary)
    return summary


def as_instruction(row: dict) -> dict:
    """A multiple-choice row as a self-contained chat prompt (question + lettered options)."""
    if not row.get("choices"):
        return row
    options = "\n".join(f"{'ABCDEFGH'[i]}. {c}" for i, c in enumerate(row["choices"]))
    return {**row, "prompt": f"{row['prompt']}\n{options}"}


def check_disjoint(eval_rows: list[dict], train_rows: list[dict]) -> None:
    """Raise if any training (or held-out) prompt equals an evaluation prompt after normalisation."""
    eval_texts = {normalize(r["prompt"]): r["id"] for r in eval_rows}
    for row in train_rows:
        hit = eval_texts.get(normalize(row["prompt"]))
        if hit:
            raise AssertionError(f"leak: training prompt {row['id']} equals evaluation prompt {hit}")


def _provenance_summary(raw_dir: Path) -> dict:
    prov = read_artifact(Provenance, raw_dir / "provenance.json")
    source = prov["source"]
    return {"license": prov["license"], "source": source.get("requirement") or source.get("describe", source["kind"]),
            "kind": source["kind"], "files": {k: v["sha256"] for k, v in source.get("files", {}).items()},
            "rows": prov["rows"]}
