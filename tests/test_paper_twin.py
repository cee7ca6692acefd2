"""The paper profile's CPU twin, end to end (`mubench twin paper`, then `dvc repro`, `mubench verify`, `dvc
status`): the three chat architectures and Llama Guard loaded by the real Hub code from an offline cache at the
pinned revisions, the Hub-only datasets fetched by the real Hub dataset code, every paper setting (LoRA r16 on every
linear layer, gradient checkpointing, bf16/fp16 checkpoints, GSM8K 8-shot, the tamper attacks, the statistics) at
small sizes. A change that breaks the paper path turns this red."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_pipeline import run, tiny_pipeline

pytestmark = pytest.mark.slow
MIRROR = ROOT.parent / "shared" / "datasets"
MODELS = ["llama2-7b-chat", "llama3-8b-instruct", "mistral-7b-instruct"]
# CI time: the methods whose paper settings take distinct paths (a LoRA adapter; an adapter-disabled reference; a
# partial full fine-tuning; an adapter's task-vector negation); the tiny pipeline runs all nine on CPU
METHODS = "ga,npo,rmu,sku"


def twin_env(out: Path) -> dict:
    env = {}
    for line in (out / "env").read_text(encoding="utf-8").splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def make_twin(out: Path, profile: str = "paper", methods: str | None = METHODS) -> dict:
    mubench = Path(sys.executable).parent / "mubench"
    done = subprocess.run([str(mubench), "twin", profile, "--out", str(out), "--mirror", str(MIRROR),
                           *(["--methods", methods] if methods else [])], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return twin_env(out)


@pytest.fixture(scope="module")
def paper_twin(tmp_path_factory):
    if not MIRROR.is_dir():
        pytest.skip("no dataset mirror beside the repository (../shared/datasets): the stand-ins need it")
    out = tmp_path_factory.mktemp("twin")
    env = make_twin(out)
    work = tmp_path_factory.mktemp("paper-twin")
    return work, tiny_pipeline(work, params=out / "params.yaml", extra_env=env), out


def test_the_twin_keeps_every_paper_setting_but_sizes(paper_twin):
    _, _, out = paper_twin
    paper = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text(encoding="utf-8"))
    twin = yaml.safe_load((out / "params.yaml").read_text(encoding="utf-8"))
    assert twin["models"] == paper["models"] and twin["model_zoo"] == paper["model_zoo"]
    assert twin["judge"] == paper["judge"] and twin["methods"] == METHODS.split(",")
    assert twin["datasets"] == paper["datasets"] and twin["statistics"] == paper["statistics"]
    for name, knobs in paper["method_params"].items():
        for key in ("lora", "gradient_checkpointing", "lr", "max_length", "grad_accum"):
            assert twin["method_params"][name].get(key) == knobs.get(key), (name, key)
    assert twin["utility"]["generation"]["num_fewshot"] == 8 and twin["device"] == "cpu"
    assert twin["generation"]["decode"] == paper["generation"]["decode"] == "graphs"


def test_the_twin_pipeline_ran_and_verifies(paper_twin):
    work, env, _ = paper_twin
    summary = json.loads((work / "reports" / "summary.json").read_text())
    assert {r["model"] for r in summary["rows"]} == set(MODELS)
    for model in MODELS:
        base = json.loads((work / "models" / model / "base" / "mubench.json").read_text())
        assert base["source"]["source"] == "hf"
        metrics = json.loads((work / "results" / model / "base" / "metrics.json").read_text())
        assert metrics["run"]["judges"]["safety"].startswith("llamaguard/meta-llama/Llama-Guard-3-8B@")
        assert metrics["judge"]["unparsed"] == {"safety": 0, "oversafety": 0}
        assert metrics["utility"]["per_task"]["gsm8k"]["n"] == 3
        assert metrics["run"]["decode"]["graphs"] is True  # compiled decoding (captured, aot_eager on the CPU)
    mistral = json.loads((work / "results" / "mistral-7b-instruct" / "base" / "metrics.json").read_text())
    assert mistral["run"]["system_role"] == "folded into user"
    for name in ("pku-saferlhf", "alpaca", "hellaswag"):
        provenance = json.loads((work / "data" / "raw" / name / "provenance.json").read_text())
        assert provenance["source"]["kind"] == "hf"
    out = run(["mubench", "verify"], work, env)
    assert out.startswith("verified: ") and "report: " in out and "numbers: every rate" in out
    status = run(["dvc", "status"], work, env)
    assert "up to date" in status, status


def test_a_broken_paper_setting_fails_the_twin(paper_twin, tmp_path):
    """LoRA aimed at modules the architecture does not have: the twin's unlearn stage fails with one line."""
    work, env, _ = paper_twin
    params = yaml.safe_load((work / "params.yaml").read_text(encoding="utf-8"))
    params["method_params"]["ga"]["lora"]["target_modules"] = ["qkv_proj"]  # a fused name these models lack
    (work / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    done = subprocess.run(["mubench", "unlearn", "llama2-7b-chat", "ga", "--seed", "0"], cwd=work, env=env,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert "qkv_proj" in done.stderr.strip().splitlines()[-1]


def test_the_paper_full_twin_checks_and_plans(tmp_path):
    """paper-full (full fine-tuning as the papers do it, all nine methods) through `check` and `plan`: its twin
    validates, and every GPU stage of it is planned on the twin's architectures (their snapshot configs stand in
    the workspace as the base checkpoints' configs, so the trace is quick; the full-size plan is
    benchmarks/results/plan_paper-full.json)."""
    import os
    import shutil

    if not MIRROR.is_dir():
        pytest.skip("no dataset mirror beside the repository (../shared/datasets)")
    out = tmp_path / "twin"
    env = {**os.environ, **make_twin(out, "paper-full", methods=None)}
    params = yaml.safe_load((out / "params.yaml").read_text(encoding="utf-8"))
    for name in params["models"]:
        spec = params["model_zoo"][name]
        snapshot = out / "hub" / f"models--{spec['repo'].replace('/', '--')}" / "snapshots" / spec["revision"]
        (tmp_path / "models" / name / "base").mkdir(parents=True)
        shutil.copy(snapshot / "config.json", tmp_path / "models" / name / "base" / "config.json")
    mubench = str(Path(sys.executable).parent / "mubench")
    done = subprocess.run([mubench, "check", str(out / "params.yaml")], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([mubench, "plan", str(out / "params.yaml"), "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    stages = {row["stage"] for row in json.loads(done.stdout)["stages"]}
    assert {f"unlearn {m}/{method}" for m in params["models"] for method in params["methods"]} <= stages
