"""The docs stay true to the tree: every path they cite exists, the README's results table is the report's,
the README stays short, the site builds with --strict, and no page describes the machine it was written on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mubench.tools.readme import sync
from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CITED = re.compile(r"`((?:mubench|tests|benchmarks|requirements|profiles|\.ci)/[^`\s]*)`")
PLACEHOLDER = re.compile(r"[A-Z]{3,}|\*")  # mubench/methods/NAME.py, data/jailbreaks*/...
MACHINE = ("this machine", "this sandbox", "on this 2-core", "cores here", "our machine", "local wheel",
           "wheel folder", "/opt/wheels", "epyc", "xeon", "ryzen", "threadripper", "graviton")
# what a user reads besides the pages: the changelog, the set-up files and their comments, the configuration
USER_FACING = [ROOT / "CHANGELOG.md", ROOT / "Makefile", ROOT / "Dockerfile", ROOT / "params.yaml", ROOT / "mkdocs.yml",
               *sorted((ROOT / "requirements").glob("*.in")), *sorted((ROOT / "profiles").glob("*.yaml"))]


def cited_paths(text: str) -> list[str]:
    return [p.rstrip(".,:;") for p in CITED.findall(text) if not PLACEHOLDER.search(p)]


def test_every_cited_path_exists():
    missing = {page.relative_to(ROOT).as_posix(): [p for p in cited_paths(page.read_text(encoding="utf-8"))
                                                   if not (ROOT / p.split("::")[0]).exists()]
               for page in PAGES}
    assert not {k: v for k, v in missing.items() if v}, missing
    assert len(cited_paths("see `mubench/nothere.py` and `mubench/methods/NAME.py`")) == 1


def test_the_readme_is_short_and_its_results_are_the_reports():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150
    assert sync(ROOT / "README.md", ROOT / "reports" / "summary.md", check_only=True) is False


def test_a_stale_results_table_is_found(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text(encoding="utf-8").replace("| base |", "| BASE |", 1))
    with pytest.raises(ValueError, match="results block differs"):
        sync(readme, ROOT / "reports" / "summary.md", check_only=True)
    assert sync(readme, ROOT / "reports" / "summary.md") is True
    assert sync(readme, ROOT / "reports" / "summary.md", check_only=True) is False


def machine_phrases(text: str) -> list[str]:
    """The phrases of ``text`` that describe a particular machine (ours) instead of any user's."""
    return [m for m in MACHINE if m in text.lower()]


def test_no_page_describes_the_machine_it_was_written_on():
    found = {page.name: machine_phrases(page.read_text(encoding="utf-8")) for page in [*PAGES, *USER_FACING]}
    assert not {k: v for k, v in found.items() if v}, found
    assert machine_phrases("this machine serves it from a local wheel") == ["this machine", "local wheel"]
    assert machine_phrases("measured on an AMD EPYC 7B13") == ["epyc"]


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is not installed (requirements/docs.lock)")
def test_the_site_builds_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    proc = subprocess.run([mkdocs, "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "site" / "catalogue" / "tamper" / "index.html").is_file()


SECTION_REF = re.compile(r'(README|docs/[A-Za-z0-9/_-]+\.md),? "([^"]+)"')
REFERRING = [ROOT / "dvc.yaml", ROOT / ".dvc" / "config", ROOT / "params.yaml", ROOT / "Makefile", ROOT / "Dockerfile",
             *sorted((ROOT / "profiles").glob("*.yaml")), *sorted((ROOT / "mubench").rglob("*.py")),
             *sorted((ROOT / "tests").glob("*.py")), *PAGES]


def headings(page: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in page.read_text(encoding="utf-8").splitlines()
            if line.startswith("#")}


def dead_section_refs(text: str) -> list[str]:
    """References such as `docs/running.md, "The pipeline"` whose page has no such heading."""
    dead = []
    for page, section in SECTION_REF.findall(text):
        path = ROOT / ("README.md" if page == "README" else page)
        if not path.is_file() or section not in headings(path):
            dead.append(f"{page} {section!r}")
    return dead


def test_references_to_a_page_section_name_one_that_exists():
    found = {p.relative_to(ROOT).as_posix(): dead_section_refs(p.read_text(encoding="utf-8")) for p in REFERRING
             if p != Path(__file__)}
    assert not {k: v for k, v in found.items() if v}, found
    assert dead_section_refs('see README "Reproduce"') == ["README 'Reproduce'"]
    assert dead_section_refs('see docs/running.md, "The pipeline"') == []


def test_the_cli_reference_and_the_error_list_are_the_codes():
    import typer

    from mubench.cli import app
    from mubench.tools.reference import cli_markdown, error_messages, split_fix, sync_docs

    cli = typer.main.get_command(app)
    assert sync_docs(ROOT, cli, check_only=True) == []
    page = cli_markdown(cli)
    for command in ("mubench evaluate", "mubench judge audit-sample", "mubench data manifest", "mubench readme"):
        assert f"`{command}`" in page, command
    messages = [m for _, _, _, m in error_messages(ROOT / "mubench")]
    assert any(m.startswith("{path}: holds no rows") for m in messages)
    assert split_fix("doctor: {'; '.join(x)}; fix it") == ("doctor: {'; '.join(x)}", "fix it")


def test_a_new_error_message_makes_the_error_list_stale(tmp_path):
    import shutil

    import typer

    from mubench.cli import app
    from mubench.tools.reference import sync_docs

    shutil.copytree(ROOT / "mubench", tmp_path / "mubench")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    bad = 'def f(path):\n    raise ValueError(f"{path}: is odd; make it even")\n'
    (tmp_path / "mubench" / "extra.py").write_text(bad)
    with pytest.raises(ValueError, match="troubleshooting.md: stale"):
        sync_docs(tmp_path, typer.main.get_command(app), check_only=True)
    assert sync_docs(tmp_path, typer.main.get_command(app)) == ["docs/troubleshooting.md"]
    assert "| `{path}: is odd` | `make it even` |" in (tmp_path / "docs" / "troubleshooting.md").read_text()
