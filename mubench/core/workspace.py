"""Every path a stage reads or writes, in one object.

The pipeline's layout (``data/``, ``models/``, ``results/``, ``reports/``) is decided here and only here: stages
take a ``Workspace`` and ask it, so no stage, tool or test spells a folder name, and dvc.yaml's ``deps``/``outs``
are the one other place that names them (``tests/test_stage_deps.py`` checks the code side of that contract).
Paths are relative to ``root`` (the repository, i.e. the working directory of ``dvc repro``): a record that
stores a path (a LoRA adapter's base) stores the same string on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BASE = "base"  # the variant name of the model before unlearning


@dataclass(frozen=True)
class Workspace:
    root: Path = Path(".")

    # inputs: fetched, built, generated once per model
    @property
    def raw(self) -> Path:
        """``data/raw/NAME``: each dataset as fetched, with its provenance.json."""
        return self.root / "data" / "raw"

    @property
    def built(self) -> Path:
        """``data/built``: the evaluation, forget, retain and drift splits."""
        return self.root / "data" / "built"

    def corpus(self, model: str) -> Path:
        """The base model's own answers to the forget, retain and drift prompts."""
        return self.root / "data" / "corpus" / model

    def jailbreak(self, name: str) -> Path:
        """A template jailbreak's prompts (model-independent)."""
        return self.root / "data" / "jailbreaks" / name

    def jailbreak_fit(self, model: str, name: str) -> Path:
        """A fitted jailbreak's prompts (ICA, GCG: fitted on ``model``'s base, transferred to its variants)."""
        return self.root / "data" / "jailbreaks_fitted" / model / name

    def tamper_fit(self, model: str) -> Path:
        """What the tamper attacks learn from ``model``'s base (fit.json, the refusal direction)."""
        return self.root / "data" / "tamper" / model

    @property
    def judge_labels(self) -> Path:
        """Human refusal labels exported from the pinned pyrit wheel."""
        return self.root / "data" / "judge_labels"

    @property
    def audit_labels(self) -> Path:
        """The hand-labelled judge audit of this run's responses (tracked in git)."""
        return self.root / "data" / "judge_audit" / "labels.csv"

    # checkpoints
    @property
    def models(self) -> Path:
        return self.root / "models"

    def checkpoint(self, model: str, variant: str = BASE) -> Path:
        return self.models / model / variant

    # per-variant results
    @property
    def results(self) -> Path:
        return self.root / "results"

    def result(self, model: str, variant: str) -> Path:
        """metrics.json (a DVC metric), and for unlearned variants loss.csv / train.json."""
        return self.results / model / variant

    def samples(self, model: str, variant: str) -> Path:
        """Per-sample outputs of ``evaluate``: safety, over-safety, utility, drift."""
        return self.result(model, variant) / "samples"

    def tamper_result(self, model: str, variant: str) -> Path:
        """The tamper attacks on one checkpoint: metrics.json and samples/."""
        return self.result(model, variant) / "tamper"

    @property
    def judge_agreement(self) -> Path:
        return self.results / "judges" / "agreement.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def profiles(self) -> Path:
        return self.root / "profiles"
