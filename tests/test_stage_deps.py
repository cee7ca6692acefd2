"""Every DVC stage lists exactly the mubench code it runs: its transitive `mubench` imports, found statically.

A stage's code is the CLI command its `cmd` calls: the modules that command imports (at the top of its body, as
the CLI does lazily), then everything those import, at module level or inside functions, plus the package
files (e.g. `datasets/hub_pins.json`) of every package reached. Two modules are not followed:
- `cli.py` itself: it parses arguments and validates params and names through `mubench.families` (DVC tracks
  the paths itself); whatever decides a number lives in a module the command calls. Validation only checks
  names and knobs (an unknown name stops the stage); a stage that uses an entry imports its family itself.
- `mubench.core.config`'s validators are handed the registries; only its module-level imports are followed.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

PKG = ROOT / "mubench"
VALIDATION_ONLY = {"mubench.core.config"}  # follow only its module-level imports


def module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported(nodes: list[ast.stmt], module: str, is_package: bool) -> set[str]:
    """`mubench` modules imported anywhere in ``nodes`` (relative imports resolved; `from pkg import mod` counts
    the submodule)."""
    found = set()
    for node in (n for stmt in nodes for n in ast.walk(stmt)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "mubench"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] != "mubench":
                continue
            found.add(name)
            found |= {f"{name}.{a.name}" for a in node.names if module_file(f"{name}.{a.name}")}
    return found


def closure(start: set[str]) -> set[Path]:
    """Files of every module reachable from ``start`` (and of their parent packages), plus package data."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        body = tree.body
        if name in VALIDATION_ONLY:
            body = [n for n in body if isinstance(n, ast.Import | ast.ImportFrom)]
        todo += imported(body, name, path.name == "__init__.py")
        todo += [".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")))]
    files = {module_file(name) for name in seen}
    packages = {f.parent for f in files if f.name == "__init__.py"}
    return files | {p for pkg in packages for p in package_data(pkg)}


def package_data(pkg: Path) -> set[Path]:
    """A package's data files: its non-Python files, also in data folders below it (``datasets/rows/``), but not
    in subpackages (reached, or not, through imports) or caches."""
    out = set()
    for path in pkg.rglob("*"):
        folders = path.relative_to(pkg).parts[:-1]
        if (not path.is_file() or path.suffix in {".py", ".pyc"} or "__pycache__" in folders
                or any((pkg.joinpath(*folders[:i + 1]) / "__init__.py").is_file() for i in range(len(folders)))):
            continue
        out.add(path)
    return out


def command_closure(command: str) -> set[Path]:
    cli = ast.parse((PKG / "cli.py").read_text(encoding="utf-8"))
    functions = {n.name: n for n in cli.body if isinstance(n, ast.FunctionDef)}
    assert command in functions, f"no CLI function {command}"
    return closure(imported(functions[command].body, "mubench.cli", False) | {"mubench.core.config"})


def cli_function(cmd: str) -> str:
    """`mubench judge labels ...` -> judge_labels, `mubench jailbreak-fit ...` -> jailbreak_fit."""
    words = cmd.split()
    assert words[0] == "mubench", cmd
    name = words[1].replace("-", "_")
    return f"{name}_{words[2]}" if name in {"judge", "data"} else name


def declared(deps: list[str]) -> set[Path]:
    files = set()
    for dep in deps:
        if dep.split("/")[0] != "mubench":
            continue
        path = ROOT / dep
        assert path.exists(), f"dvc.yaml names {dep}, which does not exist"
        files |= ({p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
                  if path.is_dir() else {path})
    return files


def mismatches(doc: dict) -> dict[str, tuple[list[str], list[str]]]:
    """stage -> (code it runs that dvc.yaml leaves out, code dvc.yaml lists that it does not run)."""
    found = {}
    for stage, spec in doc["stages"].items():
        expected = command_closure(cli_function(spec["cmd"]))
        listed = declared(spec.get("deps", []))
        missing = sorted(p.relative_to(ROOT).as_posix() for p in expected - listed)
        extra = sorted(p.relative_to(ROOT).as_posix() for p in listed - expected)
        if missing or extra:
            found[stage] = (missing, extra)
    return found


@pytest.fixture(scope="module")
def dvc_doc():
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def test_every_stage_lists_exactly_the_code_it_imports(dvc_doc):
    problems = mismatches(dvc_doc)
    assert not problems, "\n".join(f"{stage}: missing {missing}, not imported {extra}"
                                   for stage, (missing, extra) in problems.items())


def test_a_dep_removed_from_dvc_yaml_is_found(dvc_doc):
    doc = copy.deepcopy(dvc_doc)
    deps = doc["stages"]["evaluate"]["deps"]
    deps.remove("mubench/scoring/drift.py")
    assert mismatches(doc) == {"evaluate": (["mubench/scoring/drift.py"], [])}


def test_a_folder_dep_stands_for_every_file_in_it(dvc_doc):
    doc = copy.deepcopy(dvc_doc)
    deps = doc["stages"]["evaluate"]["deps"]
    deps.remove("mubench/engine")
    assert mismatches(doc)["evaluate"][0] == sorted(
        p.relative_to(ROOT).as_posix() for p in (PKG / "engine").glob("*.py"))


def test_the_closure_follows_lazy_imports_and_package_data():
    files = {p.relative_to(PKG).as_posix() for p in command_closure("evaluate")}
    # generate.py imports kv and batching at module level; evaluate imports utility inside run_evaluate's
    # module; models.py reaches pins.py; the data catalog's hub pins are not evaluate's
    assert {"engine/generate.py", "engine/kv.py", "engine/batching.py", "core/runtime.py", "scoring/utility.py",
            "core/pins.py"} <= files
    assert not any(f.startswith("datasets/") for f in files)
    fetch = {p.relative_to(PKG).as_posix() for p in command_closure("fetch")}
    assert {"datasets/hub_pins.json", "datasets/rows/gsm8k.tsv"} <= fetch
