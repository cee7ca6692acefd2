"""The wall-clock of a run on N GPUs: a list schedule over DVC's stage graph with the plan's GPU-hours."""

from __future__ import annotations

import json

from mubench.core.config import load_params
from mubench.tools.dag import StageGraph
from mubench.tools.makespan import list_schedule, makespans, profile_graph, stage_hours
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
    plan = json.loads((ROOT / "benchmarks" / "results" / "plan_paper.json").read_text())
    params = load_params(ROOT / "profiles" / "paper.yaml")
    graph = profile_graph(ROOT, ROOT / "profiles" / "paper.yaml")
    assert len([s for s in graph.order if s.startswith("unlearn@")]) == len(params.models) * len(params.methods)
    hours = stage_hours(graph, plan["stages"], params)
    assert round(sum(hours.values()), 1) == plan["gpu_hours_total"]  # every hour lands on some stage
    assert all(h == 0.0 for s, h in hours.items() if s.split("@")[0] in ("fetch", "build", "report", "jailbreak"))
    result = makespans(graph, hours, [1, 8, 32])
    one, eight, many = (result["wall_clock_hours"][n] for n in (1, 8, 32))
    assert one == result["gpu_hours"]
    assert max(result["critical_path_hours"], one / 8) <= eight <= one
    assert many >= result["critical_path_hours"]
    committed = json.loads((ROOT / "benchmarks" / "results" / "wall_clock_paper.json").read_text())
    assert committed["wall_clock_hours"] == {str(n): h for n, h in result["wall_clock_hours"].items()}
