from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mubench.core.config import ConfigError
from mubench.families import load_params
from tests.conftest import ROOT


def write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    mutate(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("profile", sorted((ROOT / "profiles").glob("*.yaml")) + [ROOT / "params.yaml"])
def test_committed_profiles_validate(profile):
    params = load_params(profile)
    assert params.variants()[0] == "base"


def test_unknown_method_names_value_and_allowed(tmp_path):
    path = write(tmp_path, lambda r: r.update(methods=["gaa"]))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    message = str(err.value)
    assert "\n" not in message
    assert "'gaa'" in message and "methods" in message and "allowed: dpo, ga, graddiff" in message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.update(device="tpu"), "device = 'tpu'"),
        (lambda r: r["jailbreaks"].update(template=["dan"]), "jailbreaks.template: 'dan' is not a known jailbreak"),
        (lambda r: r["jailbreaks"].update(template=["gcg"]), "jailbreaks.template: 'gcg' belongs in jailbreaks.fitted"),
        (lambda r: r["jailbreaks"]["params"].update(gcg={"steps": 0}), "jailbreaks.params.gcg.steps = 0"),
        (lambda r: r["judge"]["options"].update(refusal_keywords={"list": "v9"}),
         "judge.options.refusal_keywords.list = 'v9'"),
        (lambda r: r.update(datasets=["advbench", "nope"]), "'nope' is not a known dataset"),
        (lambda r: r["generation"].update(batch_size=0), "generation.batch_size = 0"),
        (lambda r: r.update(colour="blue"), "colour: unknown key"),
        (lambda r: r.pop("seed"), "seed: required key is missing"),
        (lambda r: r["method_params"]["npo"].update(beta=-1), "method_params.npo.beta = -1"),
        (lambda r: r["method_params"].pop("npo"), "no entry for method 'npo'"),
        (lambda r: r.update(models=["gpt"]), "'gpt' has no entry in model_zoo"),
        (lambda r: r["data"].update(utility=["advbench"]), "has role 'harmful', not 'utility'"),
        (lambda r: r["judge"].update(safety="oracle"), "judge: 'oracle' is not a known judge"),
    ],
)
def test_bad_values_give_one_line(tmp_path, mutate, expected):
    path = write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such params file"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_cli_check_exits_2_with_one_line_and_writes_nothing(tmp_path):
    path = write(tmp_path, lambda r: r.update(methods=["gaa"]))
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.run([sys.executable, "-m", "mubench.cli", "check", str(path)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "gaa" in lines[0] and "ga, graddiff, llmu, npo" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_stage_validates_before_running(tmp_path):
    path = write(tmp_path, lambda r: r.update(device="tpu"))
    proc = subprocess.run([sys.executable, "-m", "mubench.cli", "build", "--params", str(path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "device" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_paper_profile_names_the_18_datasets_and_pins_every_model():
    from mubench.core.config import HubModel
    from mubench.datasets import DATASETS

    paper = load_params(ROOT / "profiles" / "paper.yaml")
    # the paper's 18; a dataset added to the registry need not join the paper profile
    assert len(paper.datasets) == 18 and set(paper.datasets) <= set(DATASETS.names())
    assert all(isinstance(m, HubModel) and len(m.revision) == 40 for m in paper.model_zoo.values())
    assert paper.judge.options["llamaguard"]["revision"]


def test_gsm8k_is_a_utility_task_with_its_generation_settings(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["datasets"].append("gsm8k")
    raw["data"]["utility"].append("gsm8k")
    raw["utility"]["generation"] = {"num_fewshot": 9}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"utility.generation.num_fewshot = 9: Input should be less than or equal"):
        load_params(path)
    raw["utility"]["generation"] = {"num_fewshot": 8}
    path.write_text(yaml.safe_dump(raw))
    assert load_params(path).utility.generation.max_gen_toks == 256
    assert "gsm8k" in load_params(ROOT / "profiles" / "paper.yaml").data.utility


def test_validating_params_and_the_light_stages_do_not_import_torch():
    """Fetch, build, the template attacks, the judge-agreement and report stages validate every params key but
    never run a model: they must not pay torch's import at each of their ~20 DVC stage starts."""
    code = ("import sys\n"
            "from mubench.families import load_params\n"
            "load_params()\n"
            "import mubench.stages.jailbreak, mubench.stages.build, mubench.stages.fetch\n"
            "import mubench.stages.judge_agreement, mubench.stages.report, mubench.cli\n"
            "heavy = sorted({'torch', 'transformers', 'accelerate'} & set(sys.modules))\n"
            "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_sweep_queue_without_dvc_on_path_says_so_in_one_line(tmp_path):
    """Not 'dvc: no such file or directory; run the stage that makes it first', which sent a user hunting for a
    missing pipeline output."""
    path = write(tmp_path, lambda r: None)
    env = {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "mubench.cli", "sweep", "queue", "--params", str(path), "--param",
                           "lr", "--factors", "2"], capture_output=True, text=True, cwd=tmp_path, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "not found on PATH" in lines[0]
