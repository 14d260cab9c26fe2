"""What a monitor check produces (findings, one result) and how it lands in the store.

Every check, whatever its kind, becomes one `monitor_runs` row, one `monitor_findings` row per
test and one `alarms` row per alarming finding; the board and `harness monitor alarms` read those.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from harness.store import Store, alarms, monitor_findings, monitor_runs, utcnow
from monitors.alarms import record
from monitors.config import AlarmPolicyConfig


@dataclass(frozen=True)
class Finding:
    """One test: its statistic, p-value (Holm-adjusted where several tests share a check), threshold and verdict."""

    name: str
    statistic: str
    value: float | None
    p_value: float | None
    threshold: float | None
    alarm: bool
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statistic": self.statistic,
            "value": _finite(self.value),
            "p_value": _finite(self.p_value),
            "threshold": _finite(self.threshold),
            "alarm": self.alarm,
            "message": self.message,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class MonitorResult:
    """One monitor check (kind: drift-score | drift-output | drift-input | rag)."""

    kind: str
    reference: str
    current: str
    findings: tuple[Finding, ...]
    summary: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    subject: str = ""  # what is watched (alarm identity); empty = "reference -> current"

    @property
    def alarm(self) -> bool:
        return any(f.alarm for f in self.findings)

    @property
    def watched(self) -> str:
        return self.subject or f"{self.reference} -> {self.current}"

    def to_json(self, monitor_run_id: str | None = None) -> dict[str, Any]:
        return {
            "monitor_run_id": monitor_run_id,
            "kind": self.kind,
            "reference": self.reference,
            "current": self.current,
            "subject": self.watched,
            "alarm": self.alarm,
            "summary": dict(self.summary),
            "findings": [f.to_json() for f in self.findings],
        }


def _finite(value: float | None) -> float | None:
    """JSON has no NaN/inf: those become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def save_result(store: Store, result: MonitorResult, policy: AlarmPolicyConfig | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Store a check and its findings, update each alarm identity's state, and write the notifications
    that are due (monitors/alarms.py), in one transaction; returns the id and the notification rows."""
    run_id = uuid.uuid4().hex[:12]
    now = utcnow()
    notifications = []
    with store.transaction() as conn:
        conn.execute(
            monitor_runs.insert().values(
                id=run_id, kind=result.kind, reference=result.reference, current=result.current,
                config=_jsonable(result.config), summary=_jsonable({**result.summary, "subject": result.watched}),
                alarm=result.alarm, created_at=now,
            )
        )
        rows = [
            {
                "monitor_run_id": run_id, "idx": i, "name": f.name, "statistic": f.statistic,
                "value": _finite(f.value), "p_value": _finite(f.p_value), "threshold": _finite(f.threshold),
                "alarm": f.alarm, "details": _jsonable(f.details),
            }
            for i, f in enumerate(result.findings)
        ]
        if rows:
            conn.execute(monitor_findings.insert(), rows)
        for f in result.findings:
            row = record(conn, monitor_run_id=run_id, kind=result.kind, subject=result.watched,
                         reference=result.reference, current=result.current, finding=_jsonable(f.to_json()),
                         now=now, policy=policy or AlarmPolicyConfig())
            if row is not None:
                notifications.append(row)
    return run_id, notifications


def mark_delivered(store: Store, alarm_id: str) -> None:
    with store.transaction() as conn:
        conn.execute(update(alarms).where(alarms.c.id == alarm_id).values(delivered=True))


def list_alarms(store: Store, limit: int = 50, undelivered: bool = False) -> list[dict[str, Any]]:
    """Newest notifications first, with the kind of check that raised them and their state
    (firing or resolved; rows stored before states existed were all firing)."""
    query = (
        select(alarms, monitor_runs.c.kind)
        .join(monitor_runs, monitor_runs.c.id == alarms.c.monitor_run_id)
        .order_by(alarms.c.created_at.desc())
        .limit(limit)
    )
    if undelivered:
        query = query.where(alarms.c.delivered.is_(False))
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        row["state"] = str((row["payload"] or {}).get("state", "firing"))
    return rows


def monitor_run_findings(store: Store, monitor_run_id: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(monitor_findings).where(monitor_findings.c.monitor_run_id == monitor_run_id).order_by(monitor_findings.c.idx)
        )
        return [dict(r) for r in rows.mappings()]


def _jsonable(value: Any) -> Any:
    """Plain JSON for the store: numpy scalars become floats/ints, NaN becomes None, tuples become lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if isinstance(value, float):
        return _finite(value)
    return value
