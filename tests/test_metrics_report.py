from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mubench.core.io import write_jsonl
from mubench.core.records import UtilityItem
from mubench.core.workspace import Workspace
from mubench.families import load_params
from mubench.report.tables import markdown
from mubench.scoring.rates import RateCI, bootstrap_ci, compute_metrics, delta, rate, rate_with_ci
from mubench.stages.report import run_report
from tests.conftest import ROOT
from tests.helpers.rows import drift as make_drift
from tests.helpers.rows import judged, task


def test_rate_and_delta_hand_computed():
    assert rate([1, 0, 0, 1]) == 0.5 and rate([]) is None  # a rate over no rows is not 0.0
    assert rate_with_ci([], 100, 0.95, 0) == RateCI(rate=None, ci=None, n=0)
    assert delta(0.25, 0.75) == -0.5 and delta(None, 0.2) is None


def test_bootstrap_ci_is_seeded_and_brackets_the_rate():
    flags = [1] * 30 + [0] * 70
    low, high = bootstrap_ci(flags, 2000, 0.95, seed=0)
    assert low < 0.3 < high and low > 0.18 and high < 0.42
    assert bootstrap_ci(flags, 2000, 0.95, seed=0) == [low, high]
    assert bootstrap_ci([1, 1, 1], 500, 0.95, seed=0) == [1.0, 1.0]
    assert rate_with_ci([0, 1], 100, 0.9, 0).n == 2


@pytest.fixture()
def params():
    p = load_params(ROOT / "params.yaml")
    attacks = p.jailbreaks.model_copy(update={"template": ["prefix_injection", "base64"], "fitted": []})
    return p.model_copy(update={"methods": ["ga", "npo"], "jailbreaks": attacks,
                                "tamper": p.tamper.model_copy(update={"names": []})})


def test_metrics_schema_and_values(params):
    safety = [judged("a1", "advbench", "vanilla", False), judged("a2", "advbench", "vanilla", True),
              judged("h1", "harmbench", "vanilla", False, "repetition"), judged("h2", "harmbench", "vanilla", False),
              # attack seeds: a2 and h2; a2 resists plain but breaks under prefix_injection; h2 breaks plain
              judged("a2", "advbench", "prefix_injection", False), judged("a2", "advbench", "base64", True),
              judged("h2", "harmbench", "prefix_injection", True), judged("h2", "harmbench", "base64", True, "empty")]
    over = [judged("o1", "rho-overrefusal", refused=True, judge_label="full_refusal"),
            judged("o2", "rho-overrefusal", refused=False, judge_label="full_compliance", degenerate="empty"),
            judged("o3", "rho-overrefusal", refused=False, judge_label="full_compliance"),
            judged("o4", "rho-overrefusal", refused=False, judge_label="full_compliance")]
    utility = {"mmlu": task([1, 0, 1, 0], acc_norm=0.25)}
    m = compute_metrics(params, safety, over, utility, [make_drift("d1", 0.1, 2.0, 3), make_drift("d2", 0.3, 1.0, 5)])
    assert m["safety"]["asr"] == 0.75
    assert m["safety"]["per_dataset"] == {"advbench": 0.5, "harmbench": 1.0}
    assert m["safety"]["per_attack"] == {"prefix_injection": 0.5, "base64": 0.0}
    # seeds a2, h2: vanilla breaks h2 only (0.5); with attacks both are broken (knowledge-level 1.0)
    assert m["safety"]["seed_asr"] == 0.5 and m["safety"]["knowledge_asr"] == 1.0 and m["n"]["attack_seeds"] == 2
    assert m["oversafety"]["refusal_rate"] == 0.25
    assert m["oversafety"]["labels"] == {"full_compliance": 0.75, "full_refusal": 0.25}
    assert m["utility"]["accuracy"] == 0.5 and m["utility"]["per_task"]["mmlu"]["acc_norm"] == 0.25
    assert m["n"]["harmful"] == 4 and m["n"]["oversafety"] == 4
    # quality over the 4 plain harmful + 4 benign responses (the attack row's "empty" is left out): 2 of 8
    assert m["quality"]["degenerate_rate"] == 0.25 and m["quality"]["n"] == 8
    assert m["quality"]["per_reason"] == {"empty": 0.125, "repetition": 0.125, "non_words": 0.0}
    assert m["drift"]["kl"] == 0.2 and m["drift"]["nll"] == 1.5 and m["drift"]["tokens"] == 8
    for value in [m["safety"]["asr"], m["oversafety"]["refusal_rate"], m["utility"]["accuracy"]]:
        assert 0.0 <= value <= 1.0
    from mubench.core.artifacts import Metrics

    m["run"] = fake_metrics(0.5, 0.1, 0.3)["run"]
    # what evaluate writes is byte for byte what it computed (no int turned float, no key added)
    assert json.dumps(Metrics.model_validate(m).model_dump(), sort_keys=True) == json.dumps(m, sort_keys=True)


def fake_metrics(asr, over, acc, drift=0.0):
    """A complete metrics.json (the typed schema) with the given headline rates."""
    ci = [round(asr - 0.1, 6), round(asr + 0.1, 6)]
    return {"safety": {"asr": asr, "per_dataset": {"advbench": asr, "harmbench": asr},
                       "per_attack": {"prefix_injection": asr, "base64": asr},
                       "seed_asr": asr, "knowledge_asr": min(1.0, asr + 0.1), "labels": {"incoherent": 0.1},
                       "ci": {"asr": ci, "per_dataset": {"advbench": ci, "harmbench": ci},
                              "per_attack": {"prefix_injection": ci, "base64": ci}, "seed_asr": ci,
                              "knowledge_asr": ci}},
            "oversafety": {"refusal_rate": over, "labels": {"full_refusal": over}, "per_dataset": {"xstest": over},
                           "ci": {"refusal_rate": [over, over], "per_dataset": {"xstest": [over, over]}}},
            "utility": {"accuracy": acc, "per_task": {"mmlu": {"acc": acc, "acc_norm": acc, "n": 10,
                                                               "ci": [acc, acc]}}},
            "quality": {"degenerate_rate": 0.1, "per_reason": {"empty": 0.0, "repetition": 0.1, "non_words": 0.0},
                        "ci": [0.0, 0.2], "n": 10},
            "drift": {"kl": drift, "nll": 1.0 + drift, "ci": {"kl": [drift, drift], "nll": [1.0, 1.0 + 2 * drift]},
                      "n": 4, "tokens": 40},
            "n": {"harmful": 10, "per_attack": {"prefix_injection": 4, "base64": 4}, "attack_seeds": 4,
                  "oversafety": 10, "utility": {"mmlu": 10}},
            "judge": {"unparsed": {"safety": 0, "oversafety": 0}, "unparsed_share": {"safety": 0.0, "oversafety": 0.0},
                      "max_unparsed": 0.02},
            "run": {"model": "smollm2-135m", "variant": "v", "model_hash": "ab" * 8, "device": "cpu", "seed": 0,
                    "decode": {}, "versions": {}, "platform": "x86_64",
                    "judges": {"safety": "refusal_keywords/v1", "oversafety": "refusal_keywords/v1"}}}


def test_a_metrics_file_missing_a_key_fails_report_with_the_file_and_key(tmp_path, params):
    from mubench.core.artifacts import ArtifactError

    for variant in ("base", "ga-seed0", "npo-seed0"):
        out = tmp_path / "results" / "smollm2-135m" / variant
        out.mkdir(parents=True)
        metrics = fake_metrics(0.5, 0.1, 0.3)
        if variant == "npo-seed0":
            del metrics["safety"]["ci"]["knowledge_asr"]
        (out / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ArtifactError, match="npo-seed0/metrics.json: safety.ci.knowledge_asr: missing"):
        run_report(params, Workspace(tmp_path))


def test_metrics_round_trip_through_their_model(params):
    from mubench.core.artifacts import Metrics

    metrics = fake_metrics(0.5, 0.1, 0.3)
    dumped = Metrics.model_validate(metrics).model_dump()
    assert json.dumps(dumped, sort_keys=True) == json.dumps(metrics, sort_keys=True)


def write_samples(out: Path, refused_vanilla: int, drift: float) -> None:
    """samples/ of a variant: 20 plain harmful prompts (the first ``refused_vanilla`` refused), 2 attack seeds per
    dataset, 10 benign prompts, 10 utility items, 4 drift prompts (KL ``drift``)."""
    vanilla = [judged(f"{d}-{i}", d, "vanilla", 10 * k + i < refused_vanilla)
               for k, d in enumerate(("advbench", "harmbench")) for i in range(10)]
    attacked = [judged(f"{d}-{i}", d, a, False) for d in ("advbench", "harmbench") for i in range(2)
                for a in ("prefix_injection", "base64")]
    samples = out / "samples"
    samples.mkdir(parents=True)
    rows = {"safety": vanilla + attacked,
            "oversafety": [judged(f"o{i}", "rho-overrefusal", refused=False) for i in range(10)],
            "utility": [UtilityItem(task="mmlu", id=i, correct=i % 2) for i in range(10)],
            "drift": [make_drift(f"d{i}", drift * (i + 1) / 2.5, 1.0 + drift, 5) for i in range(4)]}
    for name, items in rows.items():
        write_jsonl(samples / f"{name}.jsonl", items)


def test_report_rows_deltas_and_plot(tmp_path, params):
    rates = {"base": (0.9, 0.0, 0.3), "ga-seed0": (0.5, 0.2, 0.25), "npo-seed0": (0.6, 0.1, 0.28)}
    for variant, values in rates.items():
        out = tmp_path / "results" / "smollm2-135m" / variant
        drift = {"base": 0.0, "ga-seed0": 0.2, "npo-seed0": 0.1}[variant]
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps(fake_metrics(*values, drift=drift)))
        # ga refuses 14 of the 20 plain prompts the base answered (McNemar p = 2^-13), npo 1 (p = 1)
        write_samples(out, {"base": 0, "ga-seed0": 14, "npo-seed0": 1}[variant], drift)
    built = Workspace(tmp_path).built
    built.mkdir(parents=True)
    (built / "build.json").write_text(json.dumps({"provenance": {"advbench": {
        "source": "pyrit==1.1.0", "license": "MIT", "rows": 520, "files": {"adv_bench.prompt": "ab" * 32}}}}))
    summary = run_report(params, Workspace(tmp_path))
    ga = next(r for r in summary["rows"] if r["variant"] == "ga-seed0")
    assert ga["delta"] == {"asr": -0.4, "oversafety_refusal_rate": 0.2, "utility_accuracy": -0.05,
                           "knowledge_asr": -0.4, "degenerate_rate": 0.0, "drift_nll": 0.2}
    npo = next(r for r in summary["rows"] if r["variant"] == "npo-seed0")
    # paired tests from the samples: Holm over {ga, npo}: ga 2 * 2^-13, npo 1
    assert ga["tests"]["asr"]["delta"] == -0.7 and ga["tests"]["asr"]["p"] == round(2 / 2**14, 6)
    assert ga["tests"]["asr"]["p_holm"] == round(4 / 2**14, 6) and ga["tests"]["asr"]["significant"]
    assert npo["tests"]["asr"]["p_holm"] == 1.0 and not npo["tests"]["asr"]["significant"]
    assert ga["tests"]["drift_kl"]["significant"] and ga["tests"]["oversafety"]["p"] == 1.0
    text = (tmp_path / "reports" / "summary.md").read_text()
    assert "| smollm2-135m | ga-seed0 | 50.0 (-40.0*) [40.0, 60.0]" in text and "pyrit==1.1.0" in text
    assert "| smollm2-135m | npo-seed0 | 60.0 (-30.0) [50.0, 70.0]" in text and "## Paired tests vs base" in text
    assert (tmp_path / "reports" / "trilemma.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "reports" / "attacks_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert "## ASR per attack (%)" in text and "| smollm2-135m | ga-seed0 | 50.0 | 50.0 | 50.0 |" in text
    assert markdown(params, summary) == text


def test_report_names_missing_cell(tmp_path, params):
    with pytest.raises(FileNotFoundError, match="mubench evaluate smollm2-135m base"):
        run_report(params, Workspace(tmp_path))


def test_profile_yaml_is_plain_mapping():
    assert isinstance(yaml.safe_load((ROOT / "params.yaml").read_text()), dict)
    assert Path(ROOT / "profiles" / "tiny.yaml").is_file()


def test_a_method_with_two_seeds_gets_mean_spread_and_a_seed_averaged_test(tmp_path, params):
    two = params.model_copy(update={"methods": ["ga"], "seeds": [0, 1]})
    assert two.variants() == ["base", "ga-seed0", "ga-seed1"]
    asr = {"base": 0.9, "ga-seed0": 0.5, "ga-seed1": 0.7}
    for variant, refused in {"base": 0, "ga-seed0": 14, "ga-seed1": 10}.items():
        out = tmp_path / "results" / "smollm2-135m" / variant
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps(fake_metrics(asr[variant], 0.1, 0.3)))
        write_samples(out, refused, 0.0)
    built = Workspace(tmp_path).built
    built.mkdir(parents=True)
    (built / "build.json").write_text(json.dumps({"provenance": {}}))
    summary = run_report(two, Workspace(tmp_path))
    (entry,) = summary["seeds"]
    assert entry["method"] == "ga" and entry["seeds"] == [0, 1]
    # mean 0.6, sample sd of (0.5, 0.7) = 0.141421, range [0.5, 0.7]
    assert entry["stats"]["asr"] == {"mean": 0.6, "sd": 0.141421, "range": [0.5, 0.7]}
    # per prompt, the seed mean: 10 prompts 1 -> 0 (both seeds refuse), 4 prompts 1 -> 0.5; delta -12 / 20
    test = entry["tests"]["asr"]
    assert test["delta"] == -0.6 and test["p"] < 0.01 and test["significant"]
    assert entry["tests"]["drift_kl"]["delta"] == 0.0 and not entry["tests"]["drift_kl"]["significant"]
    text = (tmp_path / "reports" / "summary.md").read_text()
    assert "## Across unlearning seeds" in text
    assert "| smollm2-135m | ga | 0, 1 | 60.0 ± 14.1 [50.0, 70.0] (-60.0*)" in text


def fake_tamper_results(results: Path, broken_after: dict[str, int], robust: dict[str, int]) -> None:
    """Per variant: 20 seed behaviours, none broken before; ``broken_after[v]`` of them broken by
    relearn_forget; ``robust[v]`` broken in robust.jsonl."""
    from mubench.stats.paired import paired_delta

    for variant, k in broken_after.items():
        folder = results / "smollm2-135m" / variant / "tamper"
        (folder / "samples").mkdir(parents=True)
        before = {f"s{i:02d}": False for i in range(20)}
        after = {f"s{i:02d}": i < k for i in range(20)}
        test = paired_delta(before, after, True, 200, 0.95, 0)
        (folder / "metrics.json").write_text(json.dumps({
            "safety": {"per_tamper": {"relearn_forget": k / 20}, "seed_asr": {"relearn_forget": k / 20},
                       "knowledge_asr": 0.0, "robust_knowledge_asr": robust[variant] / 20,
                       "ci": {"per_tamper": {"relearn_forget": None}, "robust_knowledge_asr": None}},
            "oversafety": {"per_tamper": {}}, "utility": {"per_tamper": {}},
            "quality": {"per_tamper": {"relearn_forget": 0.0}},
            "tests": {"relearn_forget": {"asr": test, "seed_asr": dict(test)}},
            "tamper_attacks": {"relearn_forget": {"version": "1", "params": {}, "record": {"steps": 5}, "fit": {},
                                           "fit_sha256": None, "attacked_hash": f"h-{variant}"}},
            "n": {"harmful": 20, "attack_seeds": 20, "oversafety": 0},
            "run": {"prompts": "seed", "model_hash": "x"}}))
        (folder / "samples" / "robust.jsonl").write_text("".join(
            json.dumps({"id": f"s{i:02d}", "broken": i < robust[variant], "by": []}) + "\n" for i in range(20)))


def test_tamper_get_holm_corrected_changes_vs_before_and_robust_asr_vs_base(tmp_path, params):
    from mubench.report.tamper import BEFORE_MARK, summarize_tamper, tamper_markdown

    cfg = params.tamper.model_copy(update={"names": ["relearn_forget"], "oversafety": False})
    params = params.model_copy(update={"tamper": cfg})
    # relearning breaks 12 of 20 seed behaviours of ga (McNemar p = 2^-11), 1 of npo's, none of the base's
    fake_tamper_results(tmp_path / "results", {"base": 0, "ga-seed0": 12, "npo-seed0": 1},
                              {"base": 2, "ga-seed0": 14, "npo-seed0": 2})
    summary = summarize_tamper(params, Workspace(tmp_path))["smollm2-135m"]
    ga, npo, base = summary["ga-seed0"], summary["npo-seed0"], summary["base"]
    # Holm over the three checkpoints: ga's p 2^-11 x 3; npo's p = 1; the base's (no discordant pair) 1
    assert ga["tests"]["relearn_forget"]["asr"]["p_holm"] == round(3 * round(2 ** -11, 6), 6)
    assert ga["tests"]["relearn_forget"]["asr"]["significant"]
    assert not npo["tests"]["relearn_forget"]["asr"]["significant"]
    assert base["tests"]["relearn_forget"]["asr"]["p_holm"] == 1.0
    # robust vs base: ga 14 vs 2 broken (12 discordant, p 2^-11, Holm x2 over ga and npo); npo equals base
    assert ga["robust_test"]["delta"] == 0.6 and ga["robust_test"]["p_holm"] == round(2 * round(2 ** -11, 6), 6)
    assert npo["robust_test"]["delta"] == 0.0 and base["robust_test"] == {}
    text = "\n".join(tamper_markdown(params, {"smollm2-135m": summary}, "*"))
    assert f"| smollm2-135m | ga-seed0 | 0.0 | 70.0 (+60.0*) | 60.0 (+60.0{BEFORE_MARK}) |" in text
    assert "| smollm2-135m | npo-seed0 | 0.0 | 10.0 (+0.0) | 5.0 (+5.0) |" in text
    assert "over-safety % after" not in text and "20 prompts" in text
