"""File readers shared by the dataset parsers; every problem names the file, the row and what is wrong."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mubench.core.io import LineError, NotUtf8Error, jsonl_rows, read_utf8
from mubench.datasets.catalog import MalformedDataError


def read_csv(path: Path, columns: set[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; the header must hold ``columns`` (UTF-8, a BOM allowed)."""
    # newlines are kept as they are (csv's own rule for quoted fields), as open(newline="") would
    reader = csv.DictReader(io.StringIO(_utf8(path, raw_newlines=True), newline=""))
    header = reader.fieldnames or []
    twice = sorted({c for c in header if header.count(c) > 1} & columns)
    if twice:  # DictReader would silently keep the last of two columns of one name
        raise MalformedDataError(path, "header", f"columns {twice} appear twice")
    missing = columns - set(reader.fieldnames or [])
    if missing:
        raise MalformedDataError(path, "header", f"missing columns {sorted(missing)}")
    for row in reader:
        yield reader.line_num, row


def _utf8(path: Path, raw_newlines: bool = False) -> str:
    """The file's text (UTF-8, a BOM dropped); newlines universal unless ``raw_newlines``."""
    if not path.is_file():
        raise MalformedDataError(path, "-", "file is missing")
    try:
        return read_utf8(path, raw_newlines)
    except NotUtf8Error as exc:
        raise MalformedDataError(path, "-", f"not UTF-8 text (byte {exc.byte})") from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        yield from jsonl_rows(_utf8(path), path)
    except LineError as exc:
        raise MalformedDataError(path, exc.line, exc.problem) from None


def read_json_list(path: Path) -> list[Any]:
    try:
        data = json.loads(_utf8(path))
    except json.JSONDecodeError as exc:
        raise MalformedDataError(path, exc.lineno, f"invalid JSON: {exc.msg}") from exc
    if not isinstance(data, list):
        raise MalformedDataError(path, "-", "expected a top-level JSON list")
    return data


def require(path: Path, row: int | str, value: Any, what: str) -> Any:
    """``value`` if it is a non-empty string/value, else a MalformedDataError naming ``what``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MalformedDataError(path, row, f"empty {what}")
    return value


def github_raw(repo: str, commit: str, path: str) -> str:
    """The raw-file URL of ``path`` in GitHub ``repo`` at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def read_parquet(path: Path) -> list[dict[str, Any]]:
    """Rows of a parquet file (the Hub's format for converted datasets) as dicts."""
    if not path.is_file():
        raise MalformedDataError(path, "-", "file is missing")
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise MalformedDataError(path, "-", f"not a readable parquet file ({exc.__class__.__name__})") from exc


def check_columns(path: Path, rows: list[dict[str, Any]], columns: set[str]) -> None:
    if rows and (missing := columns - set(rows[0])):
        raise MalformedDataError(path, "header", f"missing columns {sorted(missing)}")
