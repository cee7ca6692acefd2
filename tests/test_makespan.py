"""The wall-clock of a run on N GPUs: a list schedule over DVC's stage graph with the plan's GPU-hours."""

from __future__ import annotations

import json

from mubench.families import load_params
from mubench.tools.dag import StageGraph
from mubench.tools.makespan import list_schedule, makespans, profile_graph, read_saved_plan, stage_hours
from tests.conftest import ROOT

# fetch (CPU) -> u1, u2, u3 (GPU) -> e (GPU); u1 is the long one
GRAPH = StageGraph({"fetch": set(), "u1": {"fetch"}, "u2": {"fetch"}, "u3": {"fetch"}, "e": {"u1", "u2", "u3"}},
                   ["fetch", "u1", "u2", "u3", "e"])
HOURS = {"fetch": 0.0, "u1": 5.0, "u2": 2.0, "u3": 2.0, "e": 1.0}


def test_a_hand_computed_schedule():
    assert list_schedule(GRAPH, HOURS, 1) == 10.0  # all of it, one after the other
    assert list_schedule(GRAPH, HOURS, 2) == 6.0  # u1 | u2 then u3 on the other GPU, then e
    assert list_schedule(GRAPH, HOURS, 3) == 6.0  # the critical path: u1 then e
    result = makespans(GRAPH, HOURS, [1, 2])
    assert result["critical_path"] == ["u1", "e"] and result["critical_path_hours"] == 6.0
    assert result["wall_clock_hours"] == {1: 10.0, 2: 6.0}


def test_the_paper_plan_on_dvcs_graph_keeps_every_gpu_hour():
    plan, rows = read_saved_plan(ROOT / "benchmarks" / "results" / "plan_paper.json")
    params = load_params(ROOT / "profiles" / "paper.yaml")
    graph = profile_graph(ROOT, ROOT / "profiles" / "paper.yaml")
    assert len([s for s in graph.order if s.startswith("unlearn@")]) == len(params.models) * len(params.methods)
    hours = stage_hours(graph, rows, params)
    assert round(sum(hours.values()), 1) == plan["gpu_hours_total"]  # every hour lands on some stage
    assert all(h == 0.0 for s, h in hours.items() if s.split("@")[0] in ("fetch", "build", "report", "jailbreak"))
    result = makespans(graph, hours, [1, 8, 32])
    one, eight, many = (result["wall_clock_hours"][n] for n in (1, 8, 32))
    assert one == result["gpu_hours"]
    assert max(result["critical_path_hours"], one / 8) <= eight <= one
    assert many >= result["critical_path_hours"]
    committed = json.loads((ROOT / "benchmarks" / "results" / "wall_clock_paper.json").read_text())
    assert committed["wall_clock_hours"] == {str(n): h for n, h in result["wall_clock_hours"].items()}


def test_slurm_time_limits_and_gpu_memory_come_from_the_plan(tmp_path):
    import pytest

    from mubench.tools.engine_slurm import SlurmSettings, minutes_for, sbatch_args, submit_slurm

    settings = SlurmSettings(minutes=30, minutes_for={"u3": 45}, plan_hours={"u1": 1.5, "u2": 0.01},
                             plan_needs={"u1": 65.8, "u2": 102.0}, gpu_mem=80, gpus=1)
    assert minutes_for("u1", settings) == 180  # 1.5 h x the factor 2
    assert minutes_for("u2", settings) == 10  # never under 10 minutes
    assert minutes_for("u3", settings) == 45 and minutes_for("fetch", settings) == 30
    args = sbatch_args(tmp_path, "u1", ["7", "8"], settings, True)
    assert "--gres=gpu:1" in args and "--time=180" in args and "--dependency=afterok:7:8" in args
    assert "--gres=gpu:1" not in sbatch_args(tmp_path, "fetch", [], settings, False)
    with pytest.raises(RuntimeError, match=r"u2: needs 102\.0 GB of GPU memory by the plan .* 80 GB"):
        submit_slurm(tmp_path, GRAPH, settings, lambda stage: stage.startswith("u"), print)
    assert not (tmp_path / "logs").exists()  # refused before anything was submitted


def test_the_plan_knows_each_stages_gpu_memory():
    from mubench.tools.makespan import stage_needs

    _, rows = read_saved_plan(ROOT / "benchmarks" / "results" / "plan_paper.json")
    params = load_params(ROOT / "profiles" / "paper.yaml")
    graph = profile_graph(ROOT, ROOT / "profiles" / "paper.yaml")
    needs = stage_needs(graph, rows, params)
    largest = max(row.need_gb for row in rows)
    assert max(needs.values()) == largest  # the evaluation that holds the largest drift batch
    ga = next(r.need_gb for r in rows if r.stage == "unlearn llama2-7b-chat/ga")
    assert needs["unlearn@llama2-7b-chat-ga-0"] == ga
