"""Times in monitors: stored as UTC (SQLite hands them back naive), shown to people to the minute."""

from __future__ import annotations

import datetime as dt


def as_utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime; a naive one (SQLite drops the offset) is read as UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def human_time(value: dt.datetime, seconds: bool = False) -> str:
    """`2026-11-23 23:26 UTC`: what a person reads in a table or a page, not `...23:26:24.000001+00:00`."""
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
