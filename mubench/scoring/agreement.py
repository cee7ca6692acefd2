"""Judge validation against human labels: accuracy, precision, recall and Cohen's kappa (refusal = positive).

Labels file: a CSV with columns ``prompt``, ``completion``, ``label`` (1 = refusal, 0 = compliance).
``export_pyrit_labels`` writes the human-labelled refusal sets that ship in the pinned ``pyrit==1.1.0`` wheel
(``refusal.csv``, ``refusal_extra.csv``: objective, assistant_response, human_score with 1 = refusal) in
that format.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mubench.core.errors import InvalidValue
from mubench.core.io import read_utf8
from mubench.judges import Judge

PYRIT_REQUIREMENT = "pyrit==1.1.0"
PYRIT_WHEEL_SHA256 = "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a"
PYRIT_LABEL_DIR = "pyrit/datasets/scorer_evals/refusal_scorer"
PYRIT_LABEL_FILES = {
    "refusal.csv": "1ebc42ef7dadd97962cc00d04edd6a52a321f7936c063ff3453d2bbcef30a5d7",
    "refusal_extra.csv": "6ce7f61a8205eb8c29b1a247b52b3730501349f9adf0674a696efb004658a18a",
}


def read_refusal_labels(path: Path) -> list[dict]:
    """Rows of a labels CSV (UTF-8, a BOM allowed); one-line errors for text that is not UTF-8, a missing
    column or a label that is not 0/1."""
    text = read_utf8(path)  # NotUtf8Error is a ValueError with the one-line message
    reader = csv.DictReader(io.StringIO(text, newline=""))
    twice = sorted({c for c in reader.fieldnames or [] if (reader.fieldnames or []).count(c) > 1})
    if twice:  # DictReader would silently keep the last of two columns of one name
        raise InvalidValue(f"{path}: column(s) {', '.join(twice)} appear twice in the header; keep one")
    missing = {"prompt", "completion", "label"} - set(reader.fieldnames or [])
    if missing:
        raise InvalidValue(f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                         "expected a header row prompt, completion, label")
    rows = []
    for row in reader:
        label = str(row["label"]).strip()
        if label not in {"0", "1"}:
            raise InvalidValue(f"{path}: line {reader.line_num}: label {label!r} is not 0 or 1 (1 = refusal)")
        rows.append({"prompt": row["prompt"], "completion": row["completion"], "label": int(label)})
    if not rows:
        raise InvalidValue(f"{path}: no labelled rows")
    return rows


def agreement(truth: list[int], predicted: list[int]) -> dict:
    """Accuracy, precision, recall (positive class 1 = refusal), Cohen's kappa and n."""
    n = len(truth)
    tp = sum(t == 1 and p == 1 for t, p in zip(truth, predicted, strict=True))
    tn = sum(t == 0 and p == 0 for t, p in zip(truth, predicted, strict=True))
    fp = sum(t == 0 and p == 1 for t, p in zip(truth, predicted, strict=True))
    fn = n - tp - tn - fp
    accuracy = (tp + tn) / n
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    expected = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n)
    kappa = (accuracy - expected) / (1 - expected) if expected < 1 else 1.0
    return {"accuracy": round(accuracy, 6), "precision": round(precision, 6), "recall": round(recall, 6),
            "kappa": round(kappa, 6), "n": n, "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn}}


def validate(judge: Judge, rows: list[dict]) -> dict:
    """Agreement with the human labels over the rows whose verdict the judge's parser could read; the rest are
    counted as ``unparsed`` (an unreadable answer is not a refusal)."""
    verdicts = judge.judge_many([r["prompt"] for r in rows], [r["completion"] for r in rows])
    read = [(r["label"], int(v.refused)) for r, v in zip(rows, verdicts, strict=True) if v.refused is not None]
    result = agreement([label for label, _ in read], [verdict for _, verdict in read])
    unparsed = len(rows) - len(read)
    return {**result, "unparsed": unparsed} if unparsed else result


def agreement_report(params, labels_dir: Path) -> dict:
    """The agreement of the run's safety and over-safety judges with every labels CSV in ``labels_dir``, keyed by
    ``judge/version`` (with the roles it is used for) and then by labels file stem."""
    from mubench.judges import JUDGES

    files = sorted(labels_dir.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"{labels_dir}: no labels CSVs; run `mubench judge labels`")
    result: dict[str, dict] = {}
    for role, name in (("safety", params.judge.safety), ("oversafety", params.judge.oversafety)):
        judge = JUDGES.get(name, params.judge.options.get(name))
        key = f"{name}/{judge.version}"
        result[key] = {"used_for": sorted({role, *result.get(key, {}).get("used_for", [])}),
                       **{f.stem: validate(judge, read_refusal_labels(f)) for f in files}}
    return result


def export_pyrit_labels(out_dir: Path) -> dict[str, dict]:
    """Write pyrit's human-labelled refusal sets as labels CSVs into ``out_dir``; returns their provenance.

    Both sets are read and verified before the first file is written; each file is written atomically."""
    from mubench.core.io import atomic_write_text
    from mubench.core.pins import download_wheel, read_member

    wheel = download_wheel(PYRIT_REQUIREMENT, PYRIT_WHEEL_SHA256)
    provenance, texts = {}, {}
    for name, expected in PYRIT_LABEL_FILES.items():
        member = f"{PYRIT_LABEL_DIR}/{name}"
        raw = read_member(wheel, member, expected)
        lines = [line for line in raw.decode("utf-8").splitlines(keepends=True) if not line.startswith("#")]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["prompt", "completion", "label"])
        for line, row in enumerate(csv.DictReader(io.StringIO("".join(lines))), start=2):
            score = str(row.get("human_score", "")).strip()
            if score not in {"0", "1"}:
                raise InvalidValue(f"{member}: row {line}: human_score {score!r} is not 0 or 1")
            writer.writerow([row["objective"], row["assistant_response"], score])
        texts[name] = buffer.getvalue()
        provenance[name] = {"source": f"pypi:{PYRIT_REQUIREMENT}", "path_in_wheel": member,
                            "sha256": expected}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        atomic_write_text(out_dir / name, text)
    return provenance
