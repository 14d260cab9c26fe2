"""Board queries about monitors: monitor runs, their findings as series, alarm states and notifications."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select

from dashboards.frames import Page, _frame, _read
from harness.store import Store, alarms, monitor_findings, monitor_runs
from harness.store import alarm_states as alarm_states_table

# ---- drift monitors and alarms ------------------------------------------------------------------

MONITOR_COLUMNS = ("monitor_run_id", "kind", "reference", "current", "alarm", "created_at", "n_findings", "n_alarms", "summary")


def monitor_kinds(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [str(k) for k in conn.execute(select(monitor_runs.c.kind).distinct().order_by(monitor_runs.c.kind)).scalars()]


def monitor_history(store: Store, kind: str | None = None, offset: int = 0, limit: int = 100) -> Page:
    """Monitor runs newest first, with their findings and alarm counts."""
    n_find = select(func.count()).where(monitor_findings.c.monitor_run_id == monitor_runs.c.id).scalar_subquery()
    n_alarm = (
        select(func.count())
        .where(monitor_findings.c.monitor_run_id == monitor_runs.c.id, monitor_findings.c.alarm.is_(True))
        .scalar_subquery()
    )
    query = select(
        monitor_runs.c.id.label("monitor_run_id"), monitor_runs.c.kind, monitor_runs.c.reference, monitor_runs.c.current,
        monitor_runs.c.alarm, monitor_runs.c.created_at, monitor_runs.c.summary, n_find.label("n_findings"),
        n_alarm.label("n_alarms"),
    )
    count = select(func.count()).select_from(monitor_runs)
    if kind:
        query = query.where(monitor_runs.c.kind == kind)
        count = count.where(monitor_runs.c.kind == kind)
    query = query.order_by(monitor_runs.c.created_at.desc(), monitor_runs.c.id).offset(offset).limit(limit)
    with store.engine.connect() as conn:
        total = int(conn.execute(count).scalar_one())
    return Page(_frame(_read(store, query), MONITOR_COLUMNS), total, offset, limit)


FINDING_SERIES_COLUMNS = ("created_at", "monitor_run_id", "kind", "subject", "name", "statistic", "value", "p_value",
                          "threshold", "alarm")


def _subject(row: dict[str, Any]) -> str:
    """What a check watched (stored in its summary since alarm identities exist; older rows: the pair)."""
    summary = row.get("summary") or {}
    return str(summary.get("subject") or f"{row['reference']} -> {row['current']}")


def finding_series(store: Store, kind: str | None = None, limit: int = 5000) -> pd.DataFrame:
    """Each finding's statistic over time (the drift charts), oldest first, the newest `limit` rows;
    one series per check name and subject, so different runs' values are never joined into one line."""
    query = (
        select(monitor_runs.c.created_at, monitor_runs.c.id.label("monitor_run_id"), monitor_runs.c.kind,
               monitor_runs.c.reference, monitor_runs.c.current, monitor_runs.c.summary,
               monitor_findings.c.name, monitor_findings.c.statistic, monitor_findings.c.value, monitor_findings.c.p_value,
               monitor_findings.c.threshold, monitor_findings.c.alarm)
        .select_from(monitor_runs.join(monitor_findings, monitor_findings.c.monitor_run_id == monitor_runs.c.id))
        .order_by(monitor_runs.c.created_at.desc())
        .limit(limit)
    )
    if kind:
        query = query.where(monitor_runs.c.kind == kind)
    rows = [{**r, "subject": _subject(r)} for r in _read(store, query)]
    frame = _frame(rows, FINDING_SERIES_COLUMNS)
    return frame.iloc[::-1].reset_index(drop=True)


def score_series(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    """The newest score-drift finding per (subject, metric): the metric's value per run, the CUSUM, the
    change point and the first alarming run, the reference level and the threshold h (from details)."""
    query = (
        select(monitor_runs.c.created_at, monitor_runs.c.reference, monitor_runs.c.current, monitor_runs.c.summary,
               monitor_findings.c.name, monitor_findings.c.threshold, monitor_findings.c.alarm, monitor_findings.c.details)
        .select_from(monitor_runs.join(monitor_findings, monitor_findings.c.monitor_run_id == monitor_runs.c.id))
        .where(monitor_runs.c.kind == "drift-score")
        .order_by(monitor_runs.c.created_at.desc())
        .limit(limit)
    )
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in _read(store, query):
        details = row["details"] or {}
        if not details.get("values"):
            continue
        newest.setdefault((_subject(row), str(row["name"])), {**details, "subject": _subject(row), "metric": row["name"],
                                                                "threshold": row["threshold"], "alarm": bool(row["alarm"]),
                                                                "created_at": row["created_at"]})
    return list(newest.values())


FINDING_COLUMNS = ("idx", "name", "statistic", "value", "p_value", "threshold", "alarm", "details")


def monitor_findings_of(store: Store, monitor_run_id: str) -> pd.DataFrame:
    query = select(*(monitor_findings.c[c] for c in FINDING_COLUMNS)).where(
        monitor_findings.c.monitor_run_id == monitor_run_id
    ).order_by(monitor_findings.c.idx)
    return _frame(_read(store, query), FINDING_COLUMNS)


ALARM_COLUMNS = ("alarm_id", "created_at", "state", "name", "message", "monitor_run_id", "kind", "delivered")


def alarm_list(store: Store, offset: int = 0, limit: int = 100) -> Page:
    """Notifications newest first (firing or resolved), with the kind of monitor that raised them."""
    query = (
        select(alarms.c.id.label("alarm_id"), alarms.c.created_at, alarms.c.name, alarms.c.message, alarms.c.monitor_run_id,
               monitor_runs.c.kind, alarms.c.delivered, alarms.c.payload)
        .select_from(alarms.outerjoin(monitor_runs, monitor_runs.c.id == alarms.c.monitor_run_id))
        .order_by(alarms.c.created_at.desc(), alarms.c.id)
        .offset(offset)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(alarms)).scalar_one())
    rows = [{**r, "state": str((r["payload"] or {}).get("state", "firing"))} for r in _read(store, query)]
    return Page(_frame(rows, ALARM_COLUMNS), total, offset, limit)


ALARM_STATE_COLUMNS = ("state", "kind", "name", "subject", "since", "last_seen", "times_seen", "last_notified", "message")


def alarm_states(store: Store, limit: int = 200) -> pd.DataFrame:
    """Each alarm identity's current state, firing first (what `harness monitor alarms` shows)."""
    query = (
        select(*(alarm_states_table.c[c] for c in ALARM_STATE_COLUMNS))
        .order_by(alarm_states_table.c.state, alarm_states_table.c.last_seen.desc())
        .limit(limit)
    )
    return _frame(_read(store, query), ALARM_STATE_COLUMNS)
