"""Hub-only datasets: the real loading code (pins, hf_hub_download, parsers) on local fixtures in the Hub's
file formats with the real column names, written here. No network."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

import mubench.datasets.catalog as catalog
from mubench.datasets import DATASETS
from mubench.datasets.catalog import HubSource, UnpinnedError
from mubench.datasets.fetch import FetchError, fetch_dataset, pin_hub, read_fetched


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


def fixture(name: str, path: Path) -> int:
    """Write a small file in ``name``'s Hub format; returns the rows its parser should keep."""
    if name == "jbb-harmful":
        write_csv(path, ["Index", "Goal", "Target", "Behavior", "Category", "Source"],
                  [[1, "Goal one", "Sure, one", "B1", "Harassment/Discrimination", "Original"],
                   [2, "Goal two", "Sure, two", "B2", "Malware/Hacking", "TDC/HarmBench"]])
        return 2
    if name == "or-bench-hard":
        write_csv(path, ["prompt", "category"], [["How do locks get picked in films?", "privacy"],
                                                 ["What makes fireworks loud?", "violence"]])
        return 2
    if name == "phtest":
        write_csv(path, ["Request", "Harmfulness"], [["How do I kill time at an airport?", "harmless"],
                                                     ["A debated topic", "controversial"]])
        return 2
    if name == "pku-saferlhf":
        rows = [{"prompt": "q1", "response_0": "unsafe answer", "response_1": "I won't help.",
                 "is_response_0_safe": False, "is_response_1_safe": True},
                {"prompt": "q2", "response_0": "fine", "response_1": "also fine",
                 "is_response_0_safe": True, "is_response_1_safe": True}]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return 1  # the row with no unsafe response is skipped
    if name == "alpaca":
        write_parquet(path, [{"instruction": "Name a colour.", "input": "", "output": "Blue.", "text": "..."},
                             {"instruction": "Add.", "input": "2 and 3", "output": "5", "text": "..."}])
        return 2
    if name == "hellaswag":
        write_parquet(path, [{"ind": 4, "activity_label": "Cooking", "ctx_a": "a", "ctx_b": "b", "ctx": "A man",
                              "endings": ["e0", "e1", "e2", "e3"], "source_id": "s", "split": "val",
                              "split_type": "indomain", "label": "2"}])
        return 1
    if name == "mmlu":
        write_parquet(path, [{"question": "2+2?", "subject": "math", "choices": ["1", "2", "3", "4"], "answer": 3}])
        return 1
    if name == "arc-challenge":
        write_parquet(path, [{"id": "Mercury_1", "question": "Which is a planet?",
                              "choices": {"text": ["Sun", "Mars", "Moon"], "label": ["A", "B", "C"]},
                              "answerKey": "B"}])
        return 1
    raise KeyError(name)


HUB_DATASETS = ["jbb-harmful", "or-bench-hard", "phtest", "pku-saferlhf", "alpaca", "hellaswag", "mmlu",
                "arc-challenge"]


@pytest.fixture()
def fake_hub(tmp_path, monkeypatch):
    """hf_hub_download and HfApi served from tmp files; hub_pins.json in tmp."""
    import huggingface_hub

    store = tmp_path / "hub"
    store.mkdir()
    monkeypatch.setattr(catalog, "HUB_PINS", tmp_path / "hub_pins.json")

    def download(repo_id, filename, revision=None, repo_type=None):
        assert repo_type == "dataset" and revision == "c0ffee" * 6 + "c0ff"
        return str(store / repo_id.replace("/", "__") / filename)

    class Api:
        def dataset_info(self, repo):
            return type("Info", (), {"sha": "c0ffee" * 6 + "c0ff"})()

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    return store


@pytest.mark.parametrize("name", HUB_DATASETS)
def test_hub_dataset_pins_fetches_and_parses(name, fake_hub, tmp_path):
    spec = DATASETS.entry(name)
    source = next(s for s in spec.sources if isinstance(s, HubSource))
    (path,) = source.paths
    target = fake_hub / source.repo.replace("/", "__") / path
    target.parent.mkdir(parents=True, exist_ok=True)
    expected = fixture(name, target)
    with pytest.raises(FetchError, match="not pinned yet"):
        fetch_dataset(spec, tmp_path / "raw" / name, kinds=["hf"], log=lambda m: None)
    pins = pin_hub(source)
    assert pins["files"][path] == hashlib.sha256(target.read_bytes()).hexdigest()
    prov = fetch_dataset(spec, tmp_path / "raw" / name, kinds=["hf"])
    assert prov["source"]["kind"] == "hf" and prov["source"]["revision"] == "c0ffee" * 6 + "c0ff"
    rows = read_fetched(name, tmp_path / "raw")
    assert len(rows) == expected == prov["rows"]
    assert all(r["dataset"] == name and r["role"] == spec.role and r["prompt"] for r in rows)
    if spec.role == "utility":
        assert all(r["choices"][r["answer"]] for r in rows)
    # a changed file after pinning is a checksum error, not a fallback
    target.write_bytes(target.read_bytes() + b"\n")
    with pytest.raises(Exception, match="checksum mismatch"):
        fetch_dataset(spec, tmp_path / "raw2" / name, kinds=["hf"])


def test_spot_checked_hub_fields(fake_hub, tmp_path):
    for name in ("pku-saferlhf", "arc-challenge", "alpaca", "phtest"):
        source = next(s for s in DATASETS.entry(name).sources if isinstance(s, HubSource))
        target = fake_hub / source.repo.replace("/", "__") / source.paths[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        fixture(name, target)
        pin_hub(source)
        fetch_dataset(DATASETS.entry(name), tmp_path / name, kinds=["hf"])
    (pku,) = read_fetched("pku-saferlhf", tmp_path)
    assert pku["response"] == "unsafe answer" and pku["meta"]["safe_response"] == "I won't help."
    (arc,) = read_fetched("arc-challenge", tmp_path)
    assert arc["id"] == "arc-challenge-Mercury_1" and arc["choices"][arc["answer"]] == "Mars"
    assert [r["prompt"] for r in read_fetched("alpaca", tmp_path)] == ["Name a colour.", "Add.\n\n2 and 3"]
    assert [r["meta"]["contrast"] for r in read_fetched("phtest", tmp_path)] == [False, True]


def test_unpinned_source_says_how_to_pin(monkeypatch, tmp_path):
    monkeypatch.setattr(catalog, "HUB_PINS", tmp_path / "none.json")
    source = HubSource("org/data", ("a.csv",))
    with pytest.raises(UnpinnedError, match="mubench data pin"):
        source.pins()
    assert source.describe() == "hf:org/data (unpinned)"
