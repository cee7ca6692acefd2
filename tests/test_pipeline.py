"""The whole DVC pipeline (every stage) on the tiny profile, in a scratch copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
METHODS = ["ga", "graddiff", "llmu", "npo", "rmu", "sku", "safe_unlearning", "simnpo", "dpo"]
ATTACKS = ["aim", "dev_mode", "evil_confidant", "prefix_injection", "refusal_suppression", "base64", "caesar",
           "deep_inception", "past_tense", "ica", "gcg"]


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / ".dvc", work / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    shutil.copytree(ROOT / "mubench", work / "mubench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "profiles" / "tiny.yaml", work / "params.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MUBENCH_CACHE": os.environ.get("MUBENCH_CACHE", str(Path.home() / ".cache" / "mubench")),
           "MUBENCH_GEN_CACHE": "0", "DVC_NO_ANALYTICS": "1"}
    run(["git", "init", "-q"], work, env)
    run(["dvc", "repro"], work, env)
    return work, env


def test_every_stage_ran_and_outputs_exist(tiny_repo):
    work, _ = tiny_repo
    for variant in ("base", *METHODS):
        metrics = json.loads((work / "results" / "tiny-llama" / variant / "metrics.json").read_text())
        for value in (metrics["safety"]["asr"], metrics["oversafety"]["refusal_rate"],
                      metrics["utility"]["accuracy"], *metrics["safety"]["per_attack"].values()):
            assert 0.0 <= value <= 1.0
        assert set(metrics["safety"]["per_attack"]) == set(ATTACKS)
        assert 0.0 <= metrics["safety"]["knowledge_asr"] <= 1.0 and metrics["n"]["attack_seeds"] == 6
        samples = (work / "results" / "tiny-llama" / variant / "samples" / "safety.jsonl").read_text()
        first = json.loads(samples.splitlines()[0])
        assert {"prompt", "response", "refused"} <= set(first)
    for method in METHODS:
        assert (work / "models" / "tiny-llama" / method / "model.safetensors").is_file()
        assert (work / "results" / "tiny-llama" / method / "loss.csv").read_text().startswith("step,loss")
        assert json.loads((work / "results" / "tiny-llama" / method / "train.json").read_text())["steps"] == 2
    summary = json.loads((work / "reports" / "summary.json").read_text())
    assert [r["variant"] for r in summary["rows"]] == ["base", *METHODS]
    assert (work / "reports" / "trilemma.png").stat().st_size > 1000
    assert (work / "reports" / "attacks_heatmap.png").stat().st_size > 1000
    gcg = json.loads((work / "data" / "attacks_fitted" / "tiny-llama" / "gcg" / "attack.json").read_text())
    suffix = gcg["fit"]["suffix"]
    prompts = (work / "data" / "attacks_fitted" / "tiny-llama" / "gcg" / "prompts.jsonl").read_text().splitlines()
    assert all(json.loads(line)["prompt"].endswith(suffix) for line in prompts)
    agreement = json.loads((work / "results" / "judges" / "agreement.json").read_text())
    assert 0.0 < agreement["refusal_keywords/v2-substring-echo0.75"]["refusal"]["accuracy"] <= 1.0
    assert "| tiny-llama | ga |" in (work / "reports" / "summary.md").read_text()


def test_dvc_status_is_clean_and_lock_records_params(tiny_repo):
    work, env = tiny_repo
    status = run(["dvc", "status"], work, env)
    assert "changed" not in status and "modified" not in status, status
    lock = (work / "dvc.lock").read_text()
    assert "method_params" in lock and "unlearn@tiny-llama-ga" in lock


def test_rerun_gives_identical_metrics(tiny_repo):
    work, env = tiny_repo
    path = work / "results" / "tiny-llama" / "npo" / "metrics.json"
    before, lock = path.read_text(), (work / "dvc.lock").read_text()
    run(["dvc", "repro", "-f", "-s", "unlearn@tiny-llama-npo"], work, env)
    run(["dvc", "repro", "-f", "-s", "evaluate@tiny-llama-npo"], work, env)
    assert path.read_text() == before
    run(["dvc", "repro"], work, env)
    # no clock time or machine value in any tracked output: the lineage itself is reproduced
    assert (work / "dvc.lock").read_text() == lock


def test_changing_one_method_reruns_only_that_method(tiny_repo):
    work, env = tiny_repo
    params = (work / "params.yaml").read_text()
    (work / "params.yaml").write_text(params.replace("ga: {lr: 1.0e-3,", "ga: {lr: 2.0e-3,"))
    try:
        dry = run(["dvc", "repro", "--dry"], work, env)
    finally:
        (work / "params.yaml").write_text(params)
    ran = {line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")}
    # a dry run lists the stages whose own deps/params changed; downstream ones follow when outputs change
    assert ran == {"unlearn@tiny-llama-ga"}, ran
