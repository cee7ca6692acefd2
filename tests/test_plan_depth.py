"""The plan holds at full depth, for the three paper architectures (Llama-2-7B, Llama-3-8B, Mistral-7B).

Every stage kind is traced at full depth. The two-depth extrapolation it replaced was checked here against
full-depth traces. It was 40% low for Llama-2's generation, and 6-7% low for DPO's and safe_unlearning's unlearning
step on Llama-2 (every other method within 5%). These tests keep both facts:
- generation's full-depth peaks equal an independent full-depth trace (made for issue 29);
- every other inference kind on Llama-2 (GSM8K generation, utility scoring, drift, the judge with the evaluated model
  resident, GCG) is traced at full depth;
- training kinds (unlearning: LoRA + checkpointing, a reference method; the relearning attack) are traced at
  full depth, and the fast extrapolation stays within 10% of them.
"""

from __future__ import annotations

import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
MODELS = ["llama2-7b-chat", "llama3-8b-instruct", "mistral-7b-instruct"]
# (model, method) on Llama-2 (the largest activations): LoRA + checkpointing, and DPO, where the extrapolation
# was 6.7% low (CI time bounds the rest; RMU's full-depth plan is checked against a real step in test_plan.py)
TRAINING = [("llama2-7b-chat", m) for m in ("ga", "dpo")]
# generation (64 x 1,024 prompt tokens + 256 new) traced at full depth for the issue, in GB
GENERATION_GB = {"llama2-7b-chat": 91.8, "llama3-8b-instruct": 35.7, "mistral-7b-instruct": 34.1}


def _params():
    from mubench.families import load_params

    return load_params(ROOT / "profiles" / "paper.yaml")


def _config(name):
    from mubench.plan.profile import model_config

    return model_config(name, _params().model_zoo[name])


def _training_pair(job: tuple[str, str]) -> tuple[int, int]:
    """(extrapolated peak, full-depth peak) of one unlearning step (in a child process: a fresh fake mode)."""
    from mubench.plan.unlearn import plan_unlearn

    warnings.filterwarnings("ignore")
    name, method = job
    params, config = _params(), _config(name)
    hp = params.method_config(method)
    extrapolated = plan_unlearn("x", method, hp, config, full_depth=False)
    full = plan_unlearn("x", method, hp, config)
    assert full.how == "traced at full depth", full.how
    return extrapolated.peak, full.peak


def _relearn_pair(name: str) -> tuple[int, int]:
    from mubench.plan.unlearn import plan_training
    from mubench.tamper import TAMPER_ATTACKS
    from mubench.tamper.relearn import FineTune

    warnings.filterwarnings("ignore")
    params, config = _params(), _config(name)
    attack = TAMPER_ATTACKS.get("relearn_benign", params.tamper.options("relearn_benign"))
    train = attack.p.train_params(attack.p.pairs)
    fast, full = (plan_training("x", FineTune(), train, config, "k", full_depth=depth) for depth in (False, True))
    assert full.how == "traced at full depth", full.how
    return fast.peak, full.peak


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


def test_training_is_traced_at_full_depth_and_the_fast_mode_stays_within_ten_percent(pool):
    jobs = {job: pool.submit(_training_pair, job) for job in TRAINING}
    jobs[("llama2-7b-chat", "relearn_benign")] = pool.submit(_relearn_pair, "llama2-7b-chat")
    off = {}
    for key, future in jobs.items():
        extrapolated, full = future.result()
        off[key] = (extrapolated - full) / full
    assert all(abs(v) <= 0.10 for v in off.values()), {k: round(v, 4) for k, v in off.items()}


@pytest.mark.parametrize("name", MODELS)
def test_inference_is_traced_at_full_depth_and_matches_an_independent_trace(name):
    from mubench.jailbreaks import JAILBREAKS
    from mubench.plan.evaluate import plan_drift, utility_plans
    from mubench.plan.generation import plan_generation
    from mubench.plan.judge import judge_plans
    from mubench.plan.profile import plan_jailbreak_fit
    from mubench.plan.stage import PlanSettings

    params, config = _params(), _config(name)
    gen = plan_generation("generate", config, 64, 1024, 256, "generation.batch_size")
    assert gen.how.startswith("traced at full depth")
    assert abs(gen.peak / 1e9 - GENERATION_GB[name]) <= 0.05 * GENERATION_GB[name], gen.peak
    if name != "llama2-7b-chat":
        return  # the other kinds run through the same full-depth trace: one architecture for them (CI time)
    kinds = [*utility_plans(params, config, name, ["gsm8k"]),
             plan_drift("drift", config, params.utility.batch_size, 1280, "utility.batch_size", True),
             plan_jailbreak_fit("gcg", "gcg", config, JAILBREAKS.get("gcg").fit_work())]
    assert all(plan.how.startswith("traced at full depth") for plan in kinds), [p.how for p in kinds]
    assert {p.stage.split()[0] for p in kinds} == {"utility", "drift", "gcg"}
    for judge in judge_plans(params, PlanSettings(), resident=int(14e9)):
        assert judge.how.startswith("traced at full depth") and judge.parts["evaluated model (resident)"] == 14e9


def test_the_full_size_gpu_check_runs_on_the_cpu(tmp_path):
    """benchmarks/gpu_full_size.py (issue 29's full-size check) must not rot: CI runs it narrowed, at 2 layers."""
    import json
    import subprocess
    import sys

    out = tmp_path / "gpu_full_size.json"
    # one architecture in CI (Llama-3: grouped-query attention, untied 128k vocabulary): the script's paths are the
    # same for all three
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_full_size.py"), "--layers", "2", "--small",
                           "--models", "llama3-8b-instruct", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    stages = [r["stage"] for r in report["results"]]
    for name in ["llama3-8b-instruct"]:
        assert {f"generate {name}", f"gsm8k {name}", f"drift {name} (base resident)", f"judge with {name} resident",
                f"unlearn {name}/ga", f"unlearn {name}/rmu"} <= set(stages)
    assert all(0.5 < r["ratio"] < 1.5 for r in report["results"]), report["results"]
    assert all(r["new_tokens_per_s"] > 0 for r in report["results"] if "new_tokens_per_s" in r)
    [generation] = [r for r in report["results"] if r["stage"] == "generate llama3-8b-instruct"]
    decoding = generation["decoding"]  # eager vs compiled decoding, measured the same way (issue 38)
    assert decoding["eager"]["new_tokens_per_s"] > 0 and decoding["graphs"]["new_tokens_per_s"] > 0
    assert decoding["graphs"]["first_call_s"] > 0 and decoding["speedup"] > 0
