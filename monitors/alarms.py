"""Alarm identity, state and notifications: page once per state change, not once per scheduled run.

An alarm's identity is (check kind, check name, subject), where the subject is what the check
watches: a series of runs (its selection, e.g. `suite=rag-extraction tag=nightly`), a pair of run
references, or a prompt stream. Each identity has one `alarm_states` row (firing or ok). A check that
finds the same alarm again only updates that row; a notification (an `alarms` row, POSTed to the
webhook when one is set) is written when the state changes (ok -> firing, and firing -> ok when
`notify_resolved`), or while it keeps firing once `renotify_after` has passed since the last one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from harness.store import Store, alarm_states, alarms
from harness.types import canonical_json, sha256_text
from monitors.config import AlarmPolicyConfig, parse_duration
from monitors.timeutil import as_utc


def identity(kind: str, name: str, subject: str) -> str:
    """The key that makes two alarms "the same alarm"."""
    return sha256_text(canonical_json([kind, name, subject]))


def slack_text(state: str, kind: str, name: str, subject: str, message: str) -> str:
    """A one-glance summary in Slack mrkdwn (also readable as plain text in Teams or a mail)."""
    head = ":rotating_light: *harness alarm*" if state == "firing" else ":white_check_mark: *harness resolved*"
    return f"{head} `{kind}` *{name}* on {subject}\n{message}"


def _due(previous: Mapping[str, Any] | None, firing: bool, now: dt.datetime, policy: AlarmPolicyConfig) -> str | None:
    """Which notification this observation calls for: 'firing', 'resolved' or None."""
    was_firing = previous is not None and previous["state"] == "firing"
    if firing and not was_firing:
        return "firing"
    if not firing:
        return "resolved" if was_firing and policy.notify_resolved else None
    assert previous is not None
    last = previous["last_notified"]
    if policy.renotify_after and (last is None or now - as_utc(last) >= parse_duration(policy.renotify_after)):
        return "firing"
    return None


def record(
    conn: Connection,
    *,
    monitor_run_id: str,
    kind: str,
    subject: str,
    reference: str,
    current: str,
    finding: Mapping[str, Any],
    now: dt.datetime,
    policy: AlarmPolicyConfig,
) -> dict[str, Any] | None:
    """Update the identity's state with one finding; returns the notification row written, if any."""
    name, firing, message = str(finding["name"]), bool(finding["alarm"]), str(finding["message"])
    key = identity(kind, name, subject)
    found = conn.execute(select(alarm_states).where(alarm_states.c.key == key)).mappings().first()
    previous = dict(found) if found is not None else None
    if previous is None and not firing:
        return None  # a clean check of something that never alarmed needs no state
    due = _due(previous, firing, now, policy)
    state = "firing" if firing else "ok"
    changed = previous is None or previous["state"] != state
    values = {
        "state": state, "last_seen": now, "message": message, "monitor_run_id": monitor_run_id,
        "since": now if changed or previous is None else previous["since"],
        "times_seen": 1 if changed or previous is None else int(previous["times_seen"]) + 1,
        "last_notified": now if due else (previous["last_notified"] if previous else None),
    }
    if previous is None:
        conn.execute(alarm_states.insert().values(key=key, kind=kind, name=name, subject=subject, **values))
    else:
        conn.execute(alarm_states.update().where(alarm_states.c.key == key).values(**values))
    if due is None:
        return None
    alarm_id = uuid.uuid4().hex[:12]
    payload = {
        "text": slack_text(due, kind, name, subject, message),
        "state": due, "alarm_id": alarm_id, "key": key, "monitor_run_id": monitor_run_id, "kind": kind,
        "name": name, "subject": subject, "message": message, "reference": reference, "current": current,
        "finding": dict(finding), "created_at": now.isoformat(),
    }
    row = {"id": alarm_id, "monitor_run_id": monitor_run_id, "name": name, "message": message, "payload": payload,
           "delivered": False, "created_at": now}
    conn.execute(alarms.insert().values(**row))
    return row


def list_states(store: Store, firing_only: bool = False) -> list[dict[str, Any]]:
    """Every alarm identity with its state, firing ones first, then the most recently seen."""
    query = select(alarm_states).order_by(alarm_states.c.state, alarm_states.c.last_seen.desc())
    if firing_only:
        query = query.where(alarm_states.c.state == "firing")
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        for col in ("since", "last_seen", "last_notified"):
            row[col] = as_utc(row[col]) if row[col] is not None else None
    return rows
