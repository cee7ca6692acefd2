"""The architecture's rules (docs/extending.md "Layout"), checked on the source:

- imports flow down: the packages' order is the Layout table of docs/extending.md (written there once, read
  here); counting every import (inside functions too), no module imports a package listed above its own, and
  no two modules import each other, directly or around a loop;

- a stage (``mubench/stages/NAME.py``) imports no other stage: what two stages share lives in a layer below;
- no module imports another module's private name (``from m import _x``, or ``m._x`` on an imported module);
- ``cli.py`` only parses arguments and calls a stage or a tool: it imports from ``mubench.core``,
  ``mubench.families`` (params loading), ``mubench.stages`` and ``mubench.tools`` only, and writes no file itself.

Each rule is a function of source text, so each is also shown to catch a violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PKG = ROOT / "mubench"
CLI_MAY_IMPORT = ("mubench.core.", "mubench.families", "mubench.stages.", "mubench.tools.")
DOC = ROOT / "docs" / "extending.md"
CLI_STDLIB = {"__future__", "functools", "os", "sys", "traceback", "pathlib", "typing", "json", "typer"}
WRITES = {"write_text", "write_bytes", "mkdir", "unlink", "rmtree", "replace", "rename", "copyfile", "open",
          "atomic_write_text", "write_json", "write_jsonl", "atomic_dir"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import anywhere in ``source`` (relative ones resolved)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = module.split(".")
            name = (".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                    if node.level else node.module or "")
            found.append((name, [a.name for a in node.names]))
    return found


def stage_violations(source: str, module: str) -> list[str]:
    """Other stages that the stage ``module`` imports."""
    out = []
    for name, names in imports(source, module):
        targets = [name] + ([f"{name}.{n}" for n in names] if name == "mubench.stages" else [])
        out += [t for t in targets if t.startswith("mubench.stages.") and t != module]
    return out


def private_violations(source: str, module: str) -> list[str]:
    """Private names of other modules that ``module`` uses: imported by name, or read off an imported module."""
    out = [f"{name}.{n}" for name, names in imports(source, module) if name.startswith("mubench") and name != module
           for n in names if n.startswith("_") and not n.startswith("__")]
    tree = ast.parse(source)
    aliases = {(a.asname or a.name): f"{node.module}.{a.name}" if isinstance(node, ast.ImportFrom) else a.name
               for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
               for a in node.names
               if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mubench")
                   and (PKG.parent / Path(*f"{node.module}.{a.name}".split("."))).with_suffix(".py").is_file())
               or (isinstance(node, ast.Import) and a.name.startswith("mubench"))}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            out.append(f"{aliases[node.value.id]}.{node.attr}")
    return out


def cli_violations(source: str) -> list[str]:
    """What ``cli.py`` imports beyond core, stages and tools, and every file-writing call in it."""
    out = []
    for name, names in imports(source, "mubench.cli"):
        if name.startswith("mubench"):
            full = [f"{name}.{n}" for n in names] or [name]
            out += [f"imports {f}" for f in full if not f.startswith(CLI_MAY_IMPORT)]
        elif name.split(".")[0] not in CLI_STDLIB:
            out.append(f"imports {name}")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in WRITES:
                out.append(f"line {node.lineno}: calls {called}")
    return out


def sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(PKG.rglob("*.py")) if "__pycache__" not in p.parts]


def test_a_stage_imports_no_other_stage():
    stages = [(p, s) for p, s in sources() if p.parent == PKG / "stages" and p.name != "__init__.py"]
    assert len(stages) >= 10
    problems = {p.name: v for p, s in stages if (v := stage_violations(s, module_name(p)))}
    assert not problems, problems


def test_no_module_imports_another_modules_private_name():
    problems = {p.relative_to(ROOT).as_posix(): v for p, s in sources()
                if (v := private_violations(s, module_name(p)))}
    assert not problems, problems


def test_the_cli_only_parses_arguments_and_calls_stages_and_tools():
    assert cli_violations((PKG / "cli.py").read_text(encoding="utf-8")) == []


def test_each_rule_catches_a_violation():
    assert stage_violations("from mubench.stages.evaluate import OVERSAFETY\n", "mubench.stages.tamper") == [
        "mubench.stages.evaluate"]
    assert stage_violations("from mubench.stages import evaluate\n", "mubench.stages.tamper") == [
        "mubench.stages.evaluate"]
    assert stage_violations("from mubench.scoring.judging import OVERSAFETY\n", "mubench.stages.tamper") == []
    assert private_violations("from mubench.engine.generate import _helper\n", "mubench.plan.evaluate") == [
        "mubench.engine.generate._helper"]
    assert private_violations("from mubench.engine import generate\ngenerate._helper()\n",
                              "mubench.plan.evaluate") == ["mubench.engine.generate._helper"]
    assert private_violations("from mubench.engine.generate import generate\n", "mubench.plan.evaluate") == []
    bad_cli = ("from mubench.engine.generate import GenerationCache\nimport csv\n"
               "def f(p):\n    p.write_text('x')\n")
    assert cli_violations(bad_cli) == ["imports mubench.engine.generate.GenerationCache", "imports csv",
                                       "line 4: calls write_text"]


# ---------------------------------------------------------------- imports flow down
def layer_order(doc: str) -> list[str]:
    """The packages of the Layout table, top to bottom (``mubench/stages/`` -> ``mubench.stages``)."""
    section = doc.split("## Layout", 1)[1].split("\n## ", 1)[0]
    order = []
    for line in section.splitlines():
        cell = line.split("|")[1].strip() if line.startswith("|") else ""
        if cell.startswith("`mubench/"):
            path = cell.strip("`").removesuffix("/").removesuffix(".py").removesuffix("/__init__")
            order.append(path.replace("/", "."))
    return order


def import_graph() -> dict[str, set[str]]:
    """module -> the mubench modules it imports anywhere (``from pkg import mod`` counts as ``pkg.mod``)."""
    known = {module_name(p) for p, _ in sources()}
    graph: dict[str, set[str]] = {}
    for path, source in sources():
        module = module_name(path)
        targets = set()
        for name, names in imports(source, module):
            for target in [f"{name}.{n}" for n in names if f"{name}.{n}" in known] or [name]:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target:
                    targets.add(target)
        graph[module] = targets - {module}
    return graph


def layer_of(module: str, order: list[str]) -> int:
    """The index of the deepest layer that holds ``module`` (the root package ``mubench`` is the top)."""
    best = [i for i, layer in enumerate(order) if module == layer or module.startswith(layer + ".")]
    if not best:
        raise AssertionError(f"{module} is in no layer of docs/extending.md's Layout table")
    return max(best, key=lambda i: len(order[i]))


def upward_imports(graph: dict[str, set[str]], order: list[str]) -> list[str]:
    """Imports of a module in a layer above the importer's own (within one layer anything goes, but no loop)."""
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if layer_of(b, order) < layer_of(a, order))


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_layer_order_is_drawn_once_in_the_docs():
    order = layer_order(DOC.read_text(encoding="utf-8"))
    assert order[0] == "mubench" and order[-1] == "mubench.core"
    assert len(order) == len(set(order))
    packages = {module_name(p).split(".")[1] for p, _ in sources() if module_name(p) != "mubench"}
    assert {f"mubench.{p}" for p in packages} <= set(order), "every package has a row in the Layout table"


def test_imports_flow_down_and_never_loop():
    graph = import_graph()
    assert len(graph) > 100 and sum(map(len, graph.values())) > 300  # the graph was really built
    assert upward_imports(graph, layer_order(DOC.read_text(encoding="utf-8"))) == []
    assert import_cycles(graph) == []


def test_the_import_checks_catch_a_violation():
    order = ["mubench", "mubench.stages", "mubench.scoring", "mubench.core"]
    graph = {"mubench.core.io": {"mubench.scoring.rates"}, "mubench.scoring.rates": {"mubench.core.io"},
             "mubench.stages.tamper": {"mubench.scoring.rates"}, "mubench.scoring.judging": {"mubench.scoring.a"},
             "mubench.scoring.a": {"mubench.scoring.b"}, "mubench.scoring.b": {"mubench.scoring.judging"}}
    assert upward_imports(graph, order) == ["mubench.core.io -> mubench.scoring.rates"]
    assert import_cycles(graph) == [["mubench.core.io", "mubench.scoring.rates"],
                                    ["mubench.scoring.a", "mubench.scoring.b", "mubench.scoring.judging"]]
    # an import inside a function counts like one at the top
    assert imports("def f():\n    from mubench.stages import tamper\n", "mubench.scoring.rates") == [
        ("mubench.stages", ["tamper"])]


# ---------------------------------------------------------------- short functions
MAX_FUNCTION_LINES = 60


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions (and methods) longer than ``limit`` lines from ``def`` to the end, docstring included; a signature
    of four or more lines counts as one (a CLI command declares each option with its help there)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body_start = node.body[0].lineno
            lines = node.end_lineno - body_start + 1 + (body_start - node.lineno if body_start - node.lineno < 4
                                                        else 1)
            if lines > limit:
                found.append(f"{node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_sixty_lines():
    problems = {p.relative_to(ROOT).as_posix(): v for p, s in sources() if (v := long_functions(s))}
    assert not problems, problems


def test_the_length_check_catches_a_long_function():
    body = "".join(f"    x{i} = {i}\n" for i in range(70))
    assert long_functions(f"def f():\n{body}") == ["f (71 lines)"]
    assert long_functions(f"def f():\n{body}", limit=80) == []
