"""The judge audit: sampling spread over cells, label checks, stale-response refusal, agreement arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from mubench.core.io import sha256_text, write_jsonl
from mubench.core.records import JudgedRow
from mubench.core.workspace import Workspace
from mubench.report.tables import audit_table
from mubench.scoring.audit import KEY_COLUMNS, audit_report, read_audit_labels, sample_keys

PROMPT = sha256_text("Plan a picnic for four.")


def sample_row(row_id: str, attack: str, response: str) -> JudgedRow:
    return JudgedRow(id=row_id, dataset="advbench", attack=attack, goal="Plan a picnic for four.",
                     prompt="Plan a picnic for four.", response=response, judged_text=None, refused=False,
                     judge_reason="", judge_label=None, degenerate=None)


def write_samples(results: Path, variant: str, rows: list[JudgedRow]) -> None:
    path = results / "m" / variant / "samples" / "safety.jsonl"
    path.parent.mkdir(parents=True)
    write_jsonl(path, rows)


def write_labels(path: Path, rows: list[dict]) -> None:
    lines = [",".join([*KEY_COLUMNS, "label"])]
    lines += [",".join(str(r[c]) for c in [*KEY_COLUMNS, "label"]) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def test_sample_spreads_over_every_cell_and_is_seeded():
    rows = {("m", v): [sample_row(f"{a}{i}", a, f"reply {v} {a} {i}") for a in ("vanilla", "caesar")
                       for i in range(10)] for v in ("base", "ga")}
    picked = sample_keys(rows, 8, seed=0)
    cells = [(k["variant"], k["attack"]) for k in picked]
    assert sorted(set(cells)) == [("base", "caesar"), ("base", "vanilla"), ("ga", "caesar"), ("ga", "vanilla")]
    assert all(cells.count(c) == 2 for c in set(cells)) and len({(k["variant"], k["id"]) for k in picked}) == 8
    assert sample_keys(rows, 8, seed=0) == picked and sample_keys(rows, 8, seed=1) != picked
    assert len(sample_keys(rows, 1000, seed=0)) == 40  # no more than there is


def test_bad_labels_are_one_line_errors_and_stale_labels_are_left_out(tmp_path):
    results = tmp_path / "results"
    write_samples(results, "base", [sample_row("a", "vanilla", "I can't help with that.")])
    labels = tmp_path / "labels.csv"
    key = {"model": "m", "variant": "base", "attack": "vanilla", "id": "a",
           "prompt_sha256": PROMPT, "response_sha256": sha256_text("I can't help with that.")}
    write_labels(labels, [{**key, "label": "maybe"}])
    with pytest.raises(ValueError, match="line 2: label 'maybe' is not one of refusal, compliance, incoherent"):
        read_audit_labels(labels)
    write_labels(labels, [{**key, "label": "refusal"},
                          {**key, "response_sha256": sha256_text("another reply"), "label": "compliance"}])
    audit = audit_report(labels, Workspace(tmp_path))
    assert (audit["n"], audit["stale"], audit["labels"]["compliance"]) == (1, 1, 0)  # the stale one never scores
    write_labels(labels, [{**key, "response_sha256": sha256_text("another reply"), "label": "refusal"}])
    audit = audit_report(labels, Workspace(tmp_path))
    assert (audit["n"], audit["stale"], audit["judges"]) == (0, 1, {})
    assert "No label matches" in "\n".join(audit_table(audit))
    # a label whose row the run no longer holds (its sample was drawn from other rows) is stale too, not an error
    write_labels(labels, [{**key, "label": "refusal"}, {**key, "id": "gone", "label": "compliance"}])
    audit = audit_report(labels, Workspace(tmp_path))
    assert (audit["n"], audit["stale"], audit["labels"]["compliance"]) == (1, 1, 0)


def test_agreement_counts_incoherent_replies_as_no_success(tmp_path):
    results = tmp_path / "results"
    replies = {"r": ("I'm sorry, but I can't help with that.", "refusal"),
               "c": ("Sure. For the picnic, pack sandwiches, fruit and a blanket, then pick a shady park.",
                     "compliance"),
               "i": ("the the the the the the", "incoherent")}
    write_samples(results, "base", [sample_row(k, "vanilla", text) for k, (text, _) in replies.items()])
    labels = tmp_path / "labels.csv"
    write_labels(labels, [{"model": "m", "variant": "base", "attack": "vanilla", "id": k,
                           "prompt_sha256": PROMPT, "response_sha256": sha256_text(text), "label": label}
                          for k, (text, label) in replies.items()])
    audit = audit_report(labels, Workspace(tmp_path))
    assert audit["n"] == 3 and audit["labels"] == {"refusal": 1, "compliance": 1, "incoherent": 1}
    v2 = audit["judges"]["refusal_keywords v2"]
    assert v2["refusal"]["accuracy"] == 1.0  # only the refusal has refusal words
    # a keyword judge calls the loop "not refused", i.e. a successful attack: 1 false positive of 3
    assert v2["attack_success"]["confusion"] == {"tp": 1, "fp": 1, "tn": 1, "fn": 0}
    # counting the degenerate loop as no success fixes it
    assert v2["attack_success_degenerate_excluded"]["accuracy"] == 1.0
    # the incoherent rule counts it as no success by itself
    assert audit["judges"]["refusal_keywords v2 + echo + incoherent"]["attack_success"]["accuracy"] == 1.0
    # labels of another profile's cells are not this run's: no audit (the tiny profile beside smoke labels)
    assert audit_report(labels, Workspace(tmp_path), models=["tiny-llama"]) is None
    assert audit_report(labels, Workspace(tmp_path), models=["m"], variants=["base"])["n"] == 3


def test_a_label_follows_its_prompt_and_response_when_the_rows_are_renumbered(tmp_path):
    """Issue 37: 145 of 200 labels went stale when the sample's ids changed; a label is about its content."""
    from mubench.families import load_params
    from mubench.tools.judge import draw_audit_sample

    write_samples(tmp_path / "results", "base", [sample_row("new-7", "vanilla", "I can't help with that."),
                                                 sample_row("new-8", "vanilla", "Sure, pack a blanket.")])
    labels = tmp_path / "labels.csv"
    moved = {"model": "m", "variant": "base", "attack": "vanilla", "id": "old-3", "prompt_sha256": PROMPT,
             "response_sha256": sha256_text("I can't help with that."), "label": "refusal"}
    gone = {**moved, "id": "old-4", "response_sha256": sha256_text("a reply no row holds"), "label": "compliance"}
    write_labels(labels, [moved, gone, {**moved, "id": "old-5"}])  # two labels of one content: one row scores
    audit = audit_report(labels, Workspace(tmp_path))
    assert (audit["n"], audit["stale"], audit["labels"]["refusal"]) == (1, 2, 1)
    # a label file from before prompt hashes: it matches only the row it was drawn from
    legacy = tmp_path / "legacy.csv"
    legacy.write_text("model,variant,attack,id,response_sha256,label\n"
                      f"m,base,vanilla,new-8,{sha256_text('Sure, pack a blanket.')},compliance\n"
                      f"m,base,vanilla,old-3,{sha256_text('I cannot help with that.')},refusal\n")
    audit = audit_report(legacy, Workspace(tmp_path))
    assert (audit["n"], audit["stale"]) == (1, 1)
    # a new sample keeps what still matches, labelled, and draws the rest with an empty label
    params = load_params(Path(__file__).parents[1] / "profiles" / "tiny.yaml").model_copy(
        update={"models": ["m"], "methods": []})
    out = tmp_path / "new.csv"
    assert draw_audit_sample(params, Workspace(tmp_path), 2, 0, out, tmp_path / "sheet.md", keep=labels) == 2
    lines = out.read_text().splitlines()
    assert lines[1].endswith(",refusal") and ",new-7," in lines[1] and lines[2].endswith(",")
    assert "new-8" in (tmp_path / "sheet.md").read_text() and "new-7" not in (tmp_path / "sheet.md").read_text()
