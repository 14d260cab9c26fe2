"""Production prompt logs: read a JSONL, compute per-prompt features once, store them by stream and time,
and read time windows back for input-drift checks.

A log line is `{"ts": ..., "prompt": "...", "response": "..."?}`; field names are configurable.
`ts` is an ISO-8601 string (a missing offset is read as UTC) or Unix seconds. Every bad line stops
the ingest before anything is stored, with the file, the line and the field; nothing is dropped.
Re-ingesting the same lines is a no-op (rows are keyed by a hash of their content).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from harness.datafiles import read_jsonl
from harness.errors import ConfigError, DataError, UserError
from harness.store import Store, prompt_logs, utcnow
from harness.types import canonical_json, sha256_text
from monitors.config import parse_duration
from monitors.drift import LogWindow
from monitors.timeutil import as_utc as _utc

_WORD = re.compile(r"\w+", re.UNICODE)
_CHUNK = 500


@dataclass(frozen=True)
class LogRecord:
    ts: dt.datetime
    prompt: str
    response: str | None
    source: str


@dataclass(frozen=True)
class IngestReport:
    stream: str
    read: int
    inserted: int
    duplicates: int
    first_ts: dt.datetime
    last_ts: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "read": self.read, "inserted": self.inserted, "duplicates": self.duplicates,
                "first_ts": self.first_ts.isoformat(), "last_ts": self.last_ts.isoformat()}


def parse_timestamp(value: Any) -> dt.datetime:
    """ISO-8601 text or Unix seconds -> an aware UTC datetime; ValueError says what is wrong."""
    if isinstance(value, bool):
        raise ValueError("expected an ISO-8601 string or Unix seconds, got a boolean")
    if isinstance(value, int | float):
        try:
            return dt.datetime.fromtimestamp(float(value), dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"Unix time {value} is out of range") from None
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"'{value}' is not an ISO-8601 timestamp (e.g. 2026-11-23T09:30:00Z)") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC)
    raise ValueError(f"expected an ISO-8601 string or Unix seconds, got {type(value).__name__}")


def read_logs(path: str, ts_field: str = "ts", prompt_field: str = "prompt", response_field: str = "response") -> list[LogRecord]:
    """Every line of a prompt log, validated; the first bad line raises a DataError (file, line, field)."""
    records = []
    for line, row in read_jsonl(path):
        if ts_field not in row or row[ts_field] is None:
            raise DataError(path, line, ts_field, "missing")
        try:
            ts = parse_timestamp(row[ts_field])
        except ValueError as exc:
            raise DataError(path, line, ts_field, str(exc)) from None
        prompt = row.get(prompt_field)
        if prompt is None:
            raise DataError(path, line, prompt_field, "missing")
        if not isinstance(prompt, str):
            raise DataError(path, line, prompt_field, f"expected a string, got {type(prompt).__name__}")
        if not prompt.strip():
            raise DataError(path, line, prompt_field, "empty")
        response = row.get(response_field)
        if response is not None and not isinstance(response, str):
            raise DataError(path, line, response_field, f"expected a string or null, got {type(response).__name__}")
        records.append(LogRecord(ts, prompt, response, f"{path}:{line}"))
    return records


def detect_language(text: str) -> str:
    """ISO 639-1 code from py3langid (its model ships inside the package; nothing is downloaded)."""
    try:
        import py3langid
    except ImportError:
        raise ConfigError("prompt-log ingest needs py3langid: pip install 'harness-eval[monitors]'") from None
    lang, _ = py3langid.classify(text)
    return str(lang)


def features(prompt: str) -> dict[str, Any]:
    """Per-prompt features stored at ingest: the binned PSI features that do not depend on a reference."""
    return {"n_chars": len(prompt), "n_words": len(_WORD.findall(prompt)), "language": detect_language(prompt)}


def ingest(store: Store, path: str, stream: str, ts_field: str = "ts", prompt_field: str = "prompt",
           response_field: str = "response", show_progress: bool = False) -> IngestReport:
    """Validate the whole file first, then store new lines in chunks (one transaction each)."""
    from rich.console import Console
    from rich.progress import Progress

    if not stream.strip():
        raise UserError("--stream must not be empty")
    records = read_logs(path, ts_field, prompt_field, response_field)
    rows: dict[str, dict[str, Any]] = {}
    for r in records:
        key = sha256_text(canonical_json([stream, r.ts.isoformat(), r.prompt, r.response]))
        rows.setdefault(key, {"key": key, "stream": stream, "ts": r.ts, "prompt": r.prompt, "response": r.response,
                              "source": r.source})
    keys = list(rows)
    inserted = 0
    now = utcnow()
    with Progress(console=Console(stderr=True), disable=not show_progress) as progress:
        task = progress.add_task(f"ingest {stream}", total=len(keys))
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            with store.transaction() as conn:
                existing = {k for (k,) in conn.execute(select(prompt_logs.c.key).where(prompt_logs.c.key.in_(chunk)))}
                new = [{**rows[k], "features": features(rows[k]["prompt"]), "ingested_at": now}
                       for k in chunk if k not in existing]
                if new:
                    conn.execute(prompt_logs.insert(), new)
                inserted += len(new)
            progress.advance(task, len(chunk))
    times = [r.ts for r in records]
    return IngestReport(stream, len(records), inserted, len(records) - inserted, min(times), max(times))


# ---- windows -------------------------------------------------------------------------------------

def parse_range(text: str, option: str) -> tuple[dt.datetime, dt.datetime]:
    """`START..END` (ISO-8601 dates or times, UTC unless an offset is given), half-open [START, END)."""
    start_text, sep, end_text = text.partition("..")
    if not sep:
        raise ConfigError(f"{option} '{text}': expected START..END, e.g. 2026-11-01..2026-11-08")
    try:
        start, end = parse_timestamp(start_text), parse_timestamp(end_text)
    except ValueError as exc:
        raise ConfigError(f"{option} '{text}': {exc}") from None
    if end <= start:
        raise ConfigError(f"{option} '{text}': the end must come after the start")
    return start, end


def stream_bounds(store: Store, stream: str) -> tuple[dt.datetime, dt.datetime, int]:
    with store.engine.connect() as conn:
        first, last, n = conn.execute(
            select(func.min(prompt_logs.c.ts), func.max(prompt_logs.c.ts), func.count()).where(prompt_logs.c.stream == stream)
        ).one()
    if not n:
        raise UserError(f"no prompt logs for stream '{stream}' in {store.safe_url}; run harness monitor ingest first")
    return _utc(first), _utc(last), int(n)


Window = tuple[dt.datetime, dt.datetime]


def default_windows(store: Store, stream: str, window: dt.timedelta) -> tuple[Window, Window]:
    """Current = the newest `window` of the stream (ending just after its last prompt); reference = the one before."""
    _, last, _ = stream_bounds(store, stream)
    end = last + dt.timedelta(microseconds=1)
    return (end - 2 * window, end - window), (end - window, end)


def load_window(store: Store, stream: str, start: dt.datetime, end: dt.datetime) -> LogWindow:
    """Prompts of one stream with start <= ts < end, oldest first."""
    query = (
        select(prompt_logs.c.prompt, prompt_logs.c.response, prompt_logs.c.features)
        .where(prompt_logs.c.stream == stream, prompt_logs.c.ts >= _utc(start), prompt_logs.c.ts < _utc(end))
        .order_by(prompt_logs.c.ts, prompt_logs.c.key)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    label = f"{stream} {_utc(start):%Y-%m-%d %H:%M:%S} .. {_utc(end):%Y-%m-%d %H:%M:%S} UTC"
    return LogWindow(label, tuple(r[0] for r in rows), tuple(dict(r[2]) for r in rows), tuple(r[1] for r in rows))


def list_streams(store: Store) -> list[dict[str, Any]]:
    query = select(prompt_logs.c.stream, func.count(), func.min(prompt_logs.c.ts), func.max(prompt_logs.c.ts)).group_by(
        prompt_logs.c.stream
    )
    with store.engine.connect() as conn:
        return [{"stream": s, "n": int(n), "first_ts": _utc(a), "last_ts": _utc(b)} for s, n, a, b in conn.execute(query)]


def windows_or_default(
    store: Store, stream: str, reference: str | None, current: str | None, window: str
) -> tuple[Window, Window]:
    """Explicit ranges win; a missing one defaults to the newest window and the one before it."""
    size = parse_duration(window, "window")
    default_ref, default_cur = default_windows(store, stream, size)
    cur = parse_range(current, "--current") if current else default_cur
    ref = parse_range(reference, "--reference") if reference else (
        (cur[0] - size, cur[0]) if current else default_ref
    )
    return ref, cur

