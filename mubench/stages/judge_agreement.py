"""The ``judge-agreement`` stage: how well this run's keyword-type judges agree with human refusal labels
(a DVC metric, reported next to the results)."""

from __future__ import annotations

from pathlib import Path

from mubench.core.config import Params
from mubench.core.io import write_json
from mubench.scoring.agreement import agreement_report


def run_judge_agreement(params: Params, labels_dir: Path, out: Path) -> dict:
    """Agreement of the run's judges with every labels CSV in ``labels_dir``, written to ``out``."""
    result = agreement_report(params, labels_dir)
    write_json(out, result)
    return result


def summary_lines(result: dict) -> list[str]:
    """One line per judge and labels file: kappa and accuracy."""
    return [f"{k} {s}: kappa {v[s]['kappa']:.3f}, accuracy {v[s]['accuracy']:.3f}"
            for k, v in result.items() for s in v if s != "used_for"]
