"""The architecture's three rules (docs/extending.md "Layout"), checked on the source:

- a stage (``mubench/stages/NAME.py``) imports no other stage: what two stages share lives in a layer below;
- no module imports another module's private name (``from m import _x``, or ``m._x`` on an imported module);
- ``cli.py`` only parses arguments and calls a stage or a tool: it imports from ``mubench.core``,
  ``mubench.stages`` and ``mubench.tools`` only, and writes no file itself.

Each rule is a function of source text, so each is also shown to catch a violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PKG = ROOT / "mubench"
CLI_MAY_IMPORT = ("mubench.core.", "mubench.stages.", "mubench.tools.")
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
