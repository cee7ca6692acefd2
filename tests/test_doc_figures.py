"""Every figure the README and the docs state is one the committed run holds.

Two kinds of text carry figures:
- generated blocks (the results table and the findings, ``mubench readme``): regenerated from reports/ and compared;
- prose and tables outside them: every percentage and every decimal number must be a value of the committed
  files (reports/, results/, benchmarks/results/, params) at the precision it is written, or be listed below as
  a figure that is not a result (a setting, a hardware specification, a measurement of something else), with why.

So a figure that a re-made run changed, or one typed wrong, fails here; `test_a_planted_wrong_figure_fails`
checks that the scanner catches one."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import yaml

from mubench.tools.readme import BLOCKS, sync_all
from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SOURCES = [ROOT / "reports" / "summary.json", *sorted((ROOT / "results").rglob("*.json")),
           *sorted((ROOT / "benchmarks" / "results").glob("*.json"))]
CSV_SOURCES = [*sorted((ROOT / "reports").glob("*.csv")), *sorted((ROOT / "results").rglob("*.csv"))]
PARAMS = [ROOT / "params.yaml", *sorted((ROOT / "profiles").glob("*.yaml"))]
# a percentage, or a decimal number; not part of a version (3.11, 2.13.0), a name (v2, r16) or a path
FIGURE = re.compile(r"(?<![\w./=])(?<!\w-)[-+−]?(\d+(?:\.\d+)?)(?=\s?%)"
                    r"|(?<![\w./=~^])(?<!\w-)[-+−]?(\d+\.\d+)(?!\w|\.\d)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK_TARGET = re.compile(r"\]\([^)]*\)|https?://\S+|doi:\S+")
VERSIONED = re.compile(r"(?:Python|DVC|Slurm|CUDA|torch|transformers|Debian|Ubuntu|mkdocs|pip|version|nanogcg|"
                       r"Llama|Llama-Guard|Mistral|Gemma|Qwen|SmolLM2|bookworm|jammy|pyrit|lm-eval|peft)[ -]"
                       r"(\d+(?:\.\d+)+)", re.I)

# Figures that are not results of the committed run: page -> {figure: why}
NOT_RESULTS: dict[str, dict[str, str]] = {
    "README.md": {"5%": "the significance level", "95%": "the confidence level", "10%": "the plan's fit margin",
                  "0.35": "the roofline's utilisation setting", "0.7": "the roofline's bandwidth setting",
                  "1.3": "the roofline's per-step overhead setting (ms per layer)"},
    "metrics.md": {"95%": "the confidence level", "5%": "the significance level",
                   "0.02": "the default of judge.max_unparsed"},
    "judges.md": {"75%": "the echo rule's word-share threshold", "0.02": "the default of judge.max_unparsed"},
    "reproducing.md": {"5%": "the default of compare --max-flips", "0.05": "the default of compare --alpha",
                       "1%": "the default of compare --rtol", "0.897826": "an AVX-512 run before the kernel pin",
                       "1.358038": "GA's first loss in the run committed before this one"},
    "paper-path.md": {"10%": "the plan's fit margin", "0.02": "a weight's standard deviation in the check",
                      "0.52": "a measured cosine (benchmarks/paper_twin_gpu.py)",
                      "0.90": "a measured cosine (benchmarks/paper_twin_gpu.py)",
                      "0.997": "a measured cosine (benchmarks/paper_twin_gpu.py)",
                      "0.53": "a measured cosine (benchmarks/paper_twin_gpu.py)"},
    "paper-scale.md": {"10%": "the plan's fit margin", "5%": "the trace check's tolerance",
                       "0.35": "the roofline's utilisation setting", "0.7": "the roofline's bandwidth setting",
                       "1.3": "the roofline's per-step overhead setting (ms per layer)",
                       "0.52": "Llama-2's KV cache per token in MB (architecture)",
                       "3.35": "H100 bandwidth in TB/s (specification)", "4.8": "H200 bandwidth (specification)",
                       "2.04": "A100 bandwidth (specification)", "0.86": "L40S bandwidth (specification)",
                       "35%": "the roofline's utilisation setting",
                       "102.0": "the example refusal (generation batch 64, not the profile's)",
                       "91.8": "the example refusal (generation batch 64, not the profile's)",
                       "6-11%": "a measured tracing gap", "6-7%": "a measured tracing gap",
                       "129.7": "the plan before per-model batches and the tamper utility sample (CHANGELOG.md)"},
    "methods.md": {"1.02": "a measured ratio on the GPU check (benchmarks/results/gpu_check_h200.json)"},
    "results.md": {},
}


def committed_values() -> set[str]:
    """Every numeric value of the committed files, written as the docs may write it: as it is, at 0-6 decimals,
    and as a percentage at 0-2 decimals (signs dropped: the prose's sign is a direction)."""
    numbers: list[float] = []

    def walk(x) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, int | float) and not isinstance(x, bool):
            numbers.append(float(x))
        elif isinstance(x, str):
            numbers.extend(float(m) for m in re.findall(r"\d+\.\d+|\d+", x))

    for path in SOURCES:
        walk(json.loads(path.read_text(encoding="utf-8")))
    for path in CSV_SOURCES:
        for row in csv.reader(path.open(encoding="utf-8")):
            walk(row)
    for path in PARAMS:
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    out: set[str] = set()
    for v in {abs(n) for n in numbers}:
        out |= {f"{v:.{d}f}" for d in range(7)} | {f"{100 * v:.{d}f}%" for d in range(3)}
        out |= {f"{v:.{d}f}%" for d in range(3)}  # a value already in percent (a rate column of a CSV)
        out.add(f"{v:g}")
    return out


def prose(text: str) -> str:
    """The page without its generated blocks, code, link targets and version numbers."""
    for start, end, _, _ in BLOCKS.values():
        while start in text and end in text:
            text = text[:text.index(start)] + text[text.index(end) + len(end):]
    text = FENCE.sub("", text)
    text = INLINE_CODE.sub("", text)
    text = LINK_TARGET.sub("]", text)
    return VERSIONED.sub("", text)


def figures(text: str) -> list[str]:
    """The figures of a text as written: ``85.0%``, ``0.0982``, ``6-11%`` (a range is one figure too)."""
    found = []
    for m in re.finditer(r"(?<![\w.\-/=])(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\s?%", text):
        found.append(f"{m.group(1)}-{m.group(2)}%")
    text = re.sub(r"(?<![\w.\-/=])(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\s?%", " ", text)
    for m in FIGURE.finditer(text):
        found.append(f"{m.group(1)}%" if m.group(1) else m.group(2))
    return found


def unsupported(page: Path, text: str, values: set[str]) -> list[str]:
    allowed = NOT_RESULTS.get(page.name, {})
    bad = []
    for fig in figures(prose(text)):
        if fig in allowed:
            continue
        if "-" in fig:  # a range: both ends must be values
            lo, hi = fig.rstrip("%").split("-")
            if all(f"{x}%" in values or x in values for x in (lo, hi)):
                continue
        elif fig in values or fig.rstrip("%") in values and fig.endswith("%"):
            continue
        bad.append(fig)
    return bad


def test_generated_blocks_are_the_reports():
    assert sync_all(ROOT, ROOT / "reports", check_only=True) == {p: [] for p in ("README.md", "docs/results.md")}


def test_every_figure_in_the_docs_is_the_committed_runs():
    values = committed_values()
    found = {p.relative_to(ROOT).as_posix(): unsupported(p, p.read_text(encoding="utf-8"), values) for p in PAGES}
    assert not {k: v for k, v in found.items() if v}, found


def test_a_planted_wrong_figure_fails():
    values = committed_values()
    page = ROOT / "docs" / "results.md"
    text = page.read_text(encoding="utf-8")
    wrong = next(f"{x / 10:.1f}%" for x in range(1000, 0, -7) if f"{x / 10:.1f}%" not in values)
    assert unsupported(page, text, values) == []
    planted = text.replace("## Time", f"On the base, past tense succeeds {wrong} of the time.\n\n## Time", 1)
    assert unsupported(page, planted, values) == [wrong]
    assert unsupported(page, text + "\nGA's first loss is -1.142445.\n", values) == ["1.142445"]
    # inside a generated block, a changed figure is caught by the regeneration instead
    assert figures("ASR 85.0% [75.0, 93.3], KL 0.0982, 20-30%, Python 3.11") == ["20-30%", "85.0%", "75.0",
                                                                                 "93.3", "0.0982", "3.11"]
    assert figures(prose("Python 3.11 and `0.5`")) == []
