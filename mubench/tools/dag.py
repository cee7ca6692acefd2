"""The stage graph as DVC sees it, for running stages side by side (``mubench submit``).

The graph is DVC's own (``dvc.yaml`` through ``Repo.index.graph``), never a second list of ours: a stage instance
(``evaluate@smollm2-135m-ga-0``) depends on the stages whose outputs it reads. What is out of date is DVC's
answer too (``Repo.status``), closed over everything downstream of it, since a stage whose upstream re-runs is
out of date once that upstream has run (``make`` semantics; DVC skips it then if nothing it reads changed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import chdir
from dataclasses import dataclass, field
from pathlib import Path

from mubench.core.errors import FailedStep


@dataclass
class StageGraph:
    """``upstream[s]``: the stages ``s`` reads outputs of; ``order``: every stage, upstream first; ``params``:
    the params keys each stage lists (a stage listing ``device`` runs a model)."""

    upstream: dict[str, set[str]]
    order: list[str]
    params: dict[str, set[str]] = field(default_factory=dict)

    def downstream(self, stages: set[str]) -> set[str]:
        """``stages`` and every stage that reads, directly or not, an output of one of them."""
        out = set(stages)
        for stage in self.order:  # upstream first: one pass suffices
            if self.upstream[stage] & out:
                out.add(stage)
        return out

    def restricted(self, stages: set[str]) -> StageGraph:
        """The graph of ``stages`` alone (an upstream outside the set is already up to date)."""
        return StageGraph({s: self.upstream[s] & stages for s in self.order if s in stages},
                          [s for s in self.order if s in stages], {s: self.params.get(s, set()) for s in stages})

    def critical_path(self, seconds: dict[str, float]) -> tuple[float, list[str]]:
        """The longest chain of ``seconds`` through the graph: (its length, its stages)."""
        finish: dict[str, float] = {}
        via: dict[str, str | None] = {}
        for stage in self.order:
            before = max(self.upstream[stage], key=lambda u: finish[u], default=None)
            finish[stage] = seconds.get(stage, 0.0) + (finish[before] if before else 0.0)
            via[stage] = before
        if not finish:
            return 0.0, []
        end = max(finish, key=finish.get)
        chain, node = [], end
        while node:
            chain.append(node)
            node = via[node]
        return finish[end], chain[::-1]


def _params_keys(stage) -> set[str]:
    keys: set[str] = set()
    for dep in getattr(stage, "params", []) or []:
        keys |= set(getattr(dep, "params", None) or [])
    return keys


@contextlib.contextmanager
def dvc_repo(root: Path) -> Iterator:
    """DVC's Repo of ``root`` (entered there: stage names are relative to the working directory), with DVC's own
    errors (a corrupted dvc.lock, an unreadable .dvc/tmp) as one RuntimeError line that names the file."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with chdir(root), Repo(".") as repo:
            yield repo
    except DvcException as exc:
        cause = " ".join(str(exc.__cause__).split()) if exc.__cause__ and str(exc.__cause__) not in str(exc) else ""
        raise FailedStep(f"dvc: {' '.join(str(exc).split())}" + (f" ({cause[:200]})" if cause else "")) from None


def dvc_message(stderr: str) -> str:
    """DVC's error as one line: its ERROR lines, else its message's unindented lines (DVC prints a YAML error
    as a sentence naming the file, then the parser's, each above an indented excerpt), never the support footer
    that ends its output."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Having any troubles")]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR")]
    if errors:
        return "; ".join(errors)
    said = [line.strip() for line in lines if not line.startswith((" ", "\t"))]
    return " ".join(said[:3]) if said else "no message"


def load_graph(root: Path) -> StageGraph:
    """DVC's graph of every stage instance in ``root``'s ``dvc.yaml``."""
    import networkx as nx

    with dvc_repo(root) as repo:  # stage names are relative to the working directory
        graph = repo.index.graph
        names = {stage: stage.addressing for stage in graph.nodes}
        upstream = {names[s]: {names[d] for d in graph.successors(s)} for s in graph.nodes}
        params = {names[s]: _params_keys(s) for s in graph.nodes}
        order = [names[s] for s in reversed(list(nx.topological_sort(graph)))]
    return StageGraph(upstream, order, params)


def out_of_date(root: Path, graph: StageGraph) -> set[str]:
    """The stages ``dvc repro`` would run: DVC's changed stages and everything downstream of them."""
    with dvc_repo(root) as repo:
        changed = set(repo.status())
    return graph.downstream({s for s in changed if s in graph.upstream})


def serial_order(root: Path) -> list[str]:
    """The order in which a serial ``dvc repro`` of the whole project visits the stages (DVC's own plan)."""
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    with dvc_repo(root) as repo:
        stages = collect_stages(repo, ["dvc.yaml"])
        return [s.addressing for s in plan_repro(get_active_graph(repo.index.graph), stages)]
