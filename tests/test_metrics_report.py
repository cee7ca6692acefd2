from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mubench.config import load_params
from mubench.metrics import bootstrap_ci, compute_metrics, delta, rate, rate_with_ci
from mubench.report import markdown, run_report
from tests.conftest import ROOT


def test_rate_and_delta_hand_computed():
    assert rate([1, 0, 0, 1]) == 0.5 and rate([]) is None  # a rate over no rows is not 0.0
    assert rate_with_ci([], 100, 0.95, 0) == {"rate": None, "ci": None, "n": 0}
    assert delta(0.25, 0.75) == -0.5 and delta(None, 0.2) is None


def test_bootstrap_ci_is_seeded_and_brackets_the_rate():
    flags = [1] * 30 + [0] * 70
    low, high = bootstrap_ci(flags, 2000, 0.95, seed=0)
    assert low < 0.3 < high and low > 0.18 and high < 0.42
    assert bootstrap_ci(flags, 2000, 0.95, seed=0) == [low, high]
    assert bootstrap_ci([1, 1, 1], 500, 0.95, seed=0) == [1.0, 1.0]
    assert rate_with_ci([0, 1], 100, 0.9, 0)["n"] == 2


@pytest.fixture()
def params():
    p = load_params(ROOT / "params.yaml")
    attacks = p.attacks.model_copy(update={"template": ["prefix_injection", "base64"], "model_based": []})
    return p.model_copy(update={"methods": ["ga", "npo"], "attacks": attacks})


def judged(row_id, dataset, attack, refused):
    return {"id": row_id, "dataset": dataset, "attack": attack, "refused": refused}


def test_metrics_schema_and_values(params):
    safety = [judged("a1", "advbench", "vanilla", False), judged("a2", "advbench", "vanilla", True),
              judged("h1", "harmbench", "vanilla", False), judged("h2", "harmbench", "vanilla", False),
              # attack seeds: a2 and h2; a2 resists plain but breaks under prefix_injection; h2 breaks plain
              judged("a2", "advbench", "prefix_injection", False), judged("a2", "advbench", "base64", True),
              judged("h2", "harmbench", "prefix_injection", True), judged("h2", "harmbench", "base64", True)]
    over = [{"dataset": "rho-overrefusal", "refused": True, "judge_label": "full_refusal"},
            {"dataset": "rho-overrefusal", "refused": False, "judge_label": "full_compliance"},
            {"dataset": "rho-overrefusal", "refused": False, "judge_label": "full_compliance"},
            {"dataset": "rho-overrefusal", "refused": False, "judge_label": "full_compliance"}]
    utility = {"mmlu": {"acc": 0.5, "acc_norm": 0.25, "n": 4, "correct": [1, 0, 1, 0]}}
    m = compute_metrics(params, safety, over, utility)
    assert m["safety"]["asr"] == 0.75
    assert m["safety"]["per_dataset"] == {"advbench": 0.5, "harmbench": 1.0}
    assert m["safety"]["per_attack"] == {"prefix_injection": 0.5, "base64": 0.0}
    # seeds a2, h2: vanilla breaks h2 only (0.5); with attacks both are broken (knowledge-level 1.0)
    assert m["safety"]["seed_asr"] == 0.5 and m["safety"]["knowledge_asr"] == 1.0 and m["n"]["attack_seeds"] == 2
    assert m["oversafety"]["refusal_rate"] == 0.25
    assert m["oversafety"]["labels"] == {"full_compliance": 0.75, "full_refusal": 0.25}
    assert m["utility"]["accuracy"] == 0.5 and m["utility"]["per_task"]["mmlu"]["acc_norm"] == 0.25
    assert m["n"]["harmful"] == 4 and m["n"]["oversafety"] == 4
    for value in [m["safety"]["asr"], m["oversafety"]["refusal_rate"], m["utility"]["accuracy"]]:
        assert 0.0 <= value <= 1.0
    from mubench.artifacts import Metrics

    m["run"] = fake_metrics(0.5, 0.1, 0.3)["run"]
    # what evaluate writes is byte for byte what it computed (no int turned float, no key added)
    assert json.dumps(Metrics.model_validate(m).model_dump(), sort_keys=True) == json.dumps(m, sort_keys=True)


def fake_metrics(asr, over, acc):
    """A complete metrics.json (the typed schema) with the given headline rates."""
    ci = [round(asr - 0.1, 6), round(asr + 0.1, 6)]
    return {"safety": {"asr": asr, "per_dataset": {"advbench": asr, "harmbench": asr},
                       "per_attack": {"prefix_injection": asr, "base64": asr},
                       "seed_asr": asr, "knowledge_asr": min(1.0, asr + 0.1),
                       "ci": {"asr": ci, "per_dataset": {"advbench": ci, "harmbench": ci},
                              "per_attack": {"prefix_injection": ci, "base64": ci}, "seed_asr": ci,
                              "knowledge_asr": ci}},
            "oversafety": {"refusal_rate": over, "labels": {"full_refusal": over}, "per_dataset": {"xstest": over},
                           "ci": {"refusal_rate": [over, over], "per_dataset": {"xstest": [over, over]}}},
            "utility": {"accuracy": acc, "per_task": {"mmlu": {"acc": acc, "acc_norm": acc, "n": 10,
                                                               "ci": [acc, acc]}}},
            "n": {"harmful": 10, "per_attack": {"prefix_injection": 4, "base64": 4}, "attack_seeds": 4,
                  "oversafety": 10, "utility": {"mmlu": 10}},
            "run": {"model": "smollm2-135m", "variant": "v", "model_hash": "ab" * 8, "device": "cpu", "seed": 0,
                    "decode": {}, "versions": {}, "platform": "x86_64",
                    "judges": {"safety": "refusal_keywords/v1", "oversafety": "refusal_keywords/v1"}}}


def test_a_metrics_file_missing_a_key_fails_report_with_the_file_and_key(tmp_path, params):
    from mubench.artifacts import ArtifactError

    for variant in ("base", "ga", "npo"):
        out = tmp_path / "results" / "smollm2-135m" / variant
        out.mkdir(parents=True)
        metrics = fake_metrics(0.5, 0.1, 0.3)
        if variant == "npo":
            del metrics["safety"]["ci"]["knowledge_asr"]
        (out / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ArtifactError, match="npo/metrics.json: safety.ci.knowledge_asr: missing"):
        run_report(params, tmp_path / "results", tmp_path, tmp_path / "reports")


def test_metrics_round_trip_through_their_model(params):
    from mubench.artifacts import Metrics

    metrics = fake_metrics(0.5, 0.1, 0.3)
    dumped = Metrics.model_validate(metrics).model_dump()
    assert json.dumps(dumped, sort_keys=True) == json.dumps(metrics, sort_keys=True)


def test_report_rows_deltas_and_plot(tmp_path, params):
    for variant, values in {"base": (0.9, 0.0, 0.3), "ga": (0.5, 0.2, 0.25), "npo": (0.6, 0.1, 0.28)}.items():
        out = tmp_path / "results" / "smollm2-135m" / variant
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps(fake_metrics(*values)))
    built = tmp_path / "built"
    built.mkdir()
    (built / "build.json").write_text(json.dumps({"provenance": {"advbench": {
        "source": "pyrit==1.1.0", "license": "MIT", "rows": 520, "files": {"adv_bench.prompt": "ab" * 32}}}}))
    summary = run_report(params, tmp_path / "results", built, tmp_path / "reports")
    ga = next(r for r in summary["rows"] if r["variant"] == "ga")
    assert ga["delta"] == {"asr": -0.4, "oversafety_refusal_rate": 0.2, "utility_accuracy": -0.05,
                           "knowledge_asr": -0.4}
    text = (tmp_path / "reports" / "summary.md").read_text()
    assert "| smollm2-135m | ga | 50.0 (-40.0) [40.0, 60.0]" in text and "pyrit==1.1.0" in text
    assert (tmp_path / "reports" / "trilemma.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "reports" / "attacks_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert "## ASR per attack (%)" in text and "| smollm2-135m | ga | 50.0 | 50.0 | 50.0 |" in text
    assert markdown(params, summary) == text


def test_report_names_missing_cell(tmp_path, params):
    with pytest.raises(FileNotFoundError, match="mubench evaluate smollm2-135m base"):
        run_report(params, tmp_path / "results", tmp_path, tmp_path / "reports")


def test_profile_yaml_is_plain_mapping():
    assert isinstance(yaml.safe_load((ROOT / "params.yaml").read_text()), dict)
    assert Path(ROOT / "profiles" / "tiny.yaml").is_file()
