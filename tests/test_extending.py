"""Extending is short and tested: one new entry per family (tests/fixtures/extension/mubench_toys.py, a module
outside ``mubench/`` that registers through the registries' public API) goes through params validation, `mubench
check`, the memory and time plan, a real run of each entry on the tiny model, and the twin path (a new Hub
dataset's own offline stand-in, pinned and fetched through the real Hub code).

It runs in a child process: registering is global, and the other tests count the shipped entries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "extension"
MIRROR = ROOT.parent / "shared" / "datasets"

DRIVER = r'''
import json, sys
from pathlib import Path

import mubench_toys  # noqa: F401 - registers one entry per family
import torch

from mubench.core.config import ConfigError, TinyRandomModel
from mubench.core.records import CorpusPair
from mubench.core.workspace import Workspace
from mubench.engine.models import byte_level_tokenizer, tiny_random_model
from mubench.families import FAMILIES, load_params
from mubench.plan.profile import plan_profile
from mubench.tamper.base import TamperContext
from mubench.tools.plan import check
from mubench.training.loop import unlearn

params_file, bad_file, root = map(Path, sys.argv[1:4])
from mubench.datasets.stand_in import mirror_rows
mirror_rows_first = mirror_rows("advbench", Path(sys.argv[4]))[0]["prompt"]
out = {"check": check(params_file, Workspace(root), None)}
try:
    load_params(bad_file)
except ConfigError as exc:
    out["typo"] = str(exc)
params = load_params(params_file)
out["stages"] = {p.stage: p.flops for p in plan_profile(params, ws=Workspace(root))}

tokenizer = byte_level_tokenizer()
spec = TinyRandomModel(source="tiny_random", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64)
pairs = [CorpusPair(id="a", dataset="toy", prompt="Name a colour.", response="Blue is a colour."),
         CorpusPair(id="b", dataset="toy", prompt="Count to three.", response="One, two, three.")]
method = FAMILIES.methods.get("toy_ascent", params.method_config("toy_ascent"))
result = unlearn(method, tiny_random_model(spec, tokenizer, seed=0), tokenizer, pairs, [], 0, "cpu")
out["forget_nll"] = [step["forget_nll"] for step in result.history]
model = tiny_random_model(spec, tokenizer, seed=0)
before = model.get_output_embeddings().weight.detach().clone()
attack = FAMILIES.tamper.get("toy_shrink", params.tamper.options("toy_shrink"))
model, record = attack.apply(model, TamperContext(tokenizer, pairs, pairs, 0))
out["shrunk"] = bool(torch.allclose(model.get_output_embeddings().weight, before * 0.25)) and record == {"factor": 0.25}
judge = FAMILIES.judges.get("toy_judge", params.judge.options.get("toy_judge"))
out["verdicts"] = [judge.judge("q", r).refused for r in ("I can't help with that.", "Sure.")]
out["prompt"] = FAMILIES.jailbreaks.get("toy_fitted").apply("Name a colour.")

# the twin path: the Hub dataset's own stand-in, pinned in an offline Hub cache, fetched by the real Hub code
from mubench.datasets.fetch import fetch_dataset
from mubench.tools.twin import save_stand_ins

mirror = Path(sys.argv[4])
pins = save_stand_ins(root / "hub", ["toy-hub"], mirror, root / "hub_pins.json", n=5)
spec = FAMILIES.datasets.entry("toy-hub")
provenance = fetch_dataset(spec, root / "raw" / "toy-hub", log=lambda message: None, kinds=["hf"])
rows = spec.parse(root / "raw" / "toy-hub")
out["hub"] = {"pinned": sorted(pins), "kind": provenance["source"]["kind"], "rows": len(rows),
              "first": rows[0]["prompt"] == mirror_rows_first}
print("RESULT " + json.dumps(out))
'''


def _profile(tmp_path, **changes) -> tuple:
    raw = yaml.safe_load((ROOT / "profiles" / "tiny.yaml").read_text(encoding="utf-8"))
    raw["datasets"].append("toy-harmful")
    raw["data"]["harmful"].append("toy-harmful")
    raw["methods"] = ["toy_ascent"]
    raw["method_params"] = {"toy_ascent": {"lr": 1.0e-3, "steps": 3, "batch_size": 2, "max_length": 64,
                                           "scale": 0.5}}
    raw["jailbreaks"]["template"] = ["prefix_injection"]
    raw["jailbreaks"]["fitted"] = ["toy_fitted"]
    raw["jailbreaks"]["params"] = {"toy_fitted": {"batch": 3}}
    raw["tamper"] = {"names": ["toy_shrink"], "params": {"toy_shrink": {"factor": 0.25}}}
    raw["judge"]["safety"] = "toy_judge"
    raw["judge"]["options"] = {"toy_judge": {"prefix": "I can't"}}
    raw.update(changes)
    path = tmp_path / f"params{len(changes)}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_a_new_entry_in_every_family_is_validated_checked_planned_and_runs(tmp_path):
    good = _profile(tmp_path)
    typo = _profile(tmp_path, methods=["toy_ascnt"])
    if not MIRROR.is_dir():
        pytest.skip("no dataset mirror beside the repository (../shared/datasets)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURE), str(ROOT)]),
           # the twin's offline Hub: a cache in the test's folder, its pins file, no network
           "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1",
           "MUBENCH_HUB_PINS": str(tmp_path / "hub_pins.json")}
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(good), str(typo), str(tmp_path), str(MIRROR)],
                          cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert "methods ['toy_ascent']" in out["check"][0] and "toy_fitted" in out["check"][0]
    assert "tamper ['toy_shrink']" in out["check"][0] and "toy-harmful" in out["check"][0]
    # a typo of the new name is one line that offers it
    assert "'toy_ascnt' is not a known method" in out["typo"] and "toy_ascent" in out["typo"]
    stages = out["stages"]
    # planned from what each entry declares: the method's training step, the attack's fit work, the edit
    assert stages["unlearn tiny-llama/toy_ascent"] > 0
    assert stages["toy_fitted tiny-llama"] > 0
    assert any(s.startswith("toy_shrink") for s in stages), sorted(stages)
    # the method really ascends the forget NLL in the one training loop
    assert len(out["forget_nll"]) == 3 and out["forget_nll"][-1] > out["forget_nll"][0]
    assert out["shrunk"] is True
    assert out["verdicts"] == [True, False]
    assert out["prompt"] == "Please answer politely: Name a colour."
    assert out["hub"] == {"pinned": ["toy-org/toy-behaviours"], "kind": "hf", "rows": 5, "first": True}
