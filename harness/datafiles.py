"""Reading user data files with errors that name the file, the line and the field.

Every loader goes through these helpers, so a bad row never surfaces as a traceback or is silently
dropped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.errors import DataError


def read_text(path: str | Path) -> str:
    """Whole file as UTF-8 text; a missing, binary or empty file is a DataError."""
    file = Path(path)
    if not file.is_file():
        raise DataError(str(file), None, None, "file not found")
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(str(file), line, None, f"not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise DataError(str(file), None, None, "file is empty")
    return text


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line; each line must be a JSON object."""
    text = read_text(path)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(str(path), number, None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise DataError(str(path), number, None, f"expected a JSON object, got {type(value).__name__}")
        yield number, value


def read_json(path: str | Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(str(path), exc.lineno, None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None


def read_csv(path: str | Path, header: bool = True) -> Iterator[tuple[int, list[str] | dict[str, str]]]:
    """Yield (line number, row) from a CSV; rows are dicts when the file has a header."""
    text = read_text(path)
    # Not str.splitlines: it also breaks at U+0085 and U+2028, which occur inside real cells (MMLU).
    reader = csv.reader(io.StringIO(text, newline=""))
    columns: list[str] | None = None
    for row in reader:
        number = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        if header and columns is None:
            columns = [c.strip() for c in row]
            continue
        if columns is not None:
            if len(row) != len(columns):
                raise DataError(str(path), number, None, f"expected {len(columns)} columns, found {len(row)}")
            yield number, dict(zip(columns, row, strict=True))
        else:
            yield number, row


def require(
    row: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str | Path, line: int
) -> Any:
    """Fetch a required field of the right type or raise a DataError naming it."""
    if key not in row or row[key] is None:
        raise DataError(str(path), line, key, "missing")
    value = row[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        expected = " or ".join(t.__name__ for t in _as_tuple(kind))
        raise DataError(str(path), line, key, f"expected {expected}, got {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
