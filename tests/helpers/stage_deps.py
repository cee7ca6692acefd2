"""Rewrite the `mubench/...` deps of every stage in dvc.yaml from its import closure (tests/test_stage_deps.py):
`python -m tests.helpers.stage_deps`. A folder whose every file is in the closure is listed as the folder.
Other deps (data, params files) and the file's comments stay as they are."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT
from tests.test_stage_deps import cli_function, command_closure


def collapsed(files: set) -> list[str]:
    """Sorted dep paths: a package folder whose files are all in ``files`` stands for them."""
    out: set[str] = set()
    for path in files:
        folder = path.parent
        members = {p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
        if folder != ROOT / "mubench" and members <= files:
            out.add(folder.relative_to(ROOT).as_posix())
        else:
            out.add(path.relative_to(ROOT).as_posix())
    # a data folder inside a listed package folder is already covered by it
    return sorted(dep for dep in out if not any(dep.startswith(other + "/") for other in out))


def main() -> None:
    text = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    lines = text.splitlines()
    out, stage, in_deps, pending = [], None, False, None
    for line in lines:
        match = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line)
        if match:
            stage = match.group(1)
        if re.match(r"^    deps:\s*$", line):
            in_deps, pending = True, collapsed(command_closure(cli_function(doc["stages"][stage]["cmd"])))
            out.append(line)
            continue
        if in_deps and re.match(r"^      - ", line):
            if line.strip().startswith("- mubench/"):
                if pending is not None:
                    out += [f"      - {dep}" for dep in pending]
                    pending = None
                continue
            out.append(line)
            continue
        in_deps = False
        out.append(line)
    (ROOT / "dvc.yaml").write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
