"""Store access for fine-tuning and sweeps: train_runs, train_steps, checkpoints, sweeps, sweep_trials.

The tables live in harness/store.py with the rest of the schema; this module holds the queries, so the
store module does not grow a method per feature. Everything goes through `Store.engine` and works
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, select, update

from harness.provenance import git_revision, library_versions
from harness.store import Store, checkpoints, sweep_trials, sweeps, train_runs, train_steps, utcnow


def new_id() -> str:
    return uuid.uuid4().hex[:12]


# ---- training runs ---------------------------------------------------------------------------------


def create_train_run(
    store: Store,
    *,
    name: str,
    method: str,
    base_model: str,
    config: dict[str, Any],
    config_hash: str,
    output_dir: str | None,
    sweep_id: str | None = None,
    trial_number: int | None = None,
    run_id: str | None = None,
) -> str:
    run_id = run_id or new_id()
    row = {
        "id": run_id,
        "name": name,
        "method": method,
        "base_model": base_model,
        "config": config,
        "config_hash": config_hash,
        "output_dir": output_dir,
        "status": "running",
        "sweep_id": sweep_id,
        "trial_number": trial_number,
        "git_revision": git_revision(),
        "versions": library_versions() | {"python": sys.version.split()[0]},
        "created_at": utcnow(),
    }
    with store.transaction() as conn:
        conn.execute(train_runs.insert().values(**row))
    return run_id


def get_train_run(store: Store, run_id: str) -> dict[str, Any] | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(train_runs).where(train_runs.c.id == run_id)).mappings().first()
    return dict(row) if row else None


def find_resumable_train_run(store: Store, config_hash: str) -> dict[str, Any] | None:
    """The newest unfinished (running or failed) training run with this configuration."""
    return store.newest_unfinished(train_runs, config_hash)


def set_train_run_status(store: Store, run_id: str, status: str, error: str | None = None) -> None:
    finished = utcnow() if status != "running" else None
    with store.transaction() as conn:
        conn.execute(
            update(train_runs).where(train_runs.c.id == run_id).values(status=status, error=error, finished_at=finished)
        )


# ---- per-step dynamics -----------------------------------------------------------------------------


def write_steps(store: Store, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """Store logged steps; a step logged again (after a resume) replaces the earlier row."""
    if not rows:
        return
    steps = [r["step"] for r in rows]
    now = utcnow()
    with store.transaction() as conn:
        conn.execute(delete(train_steps).where(train_steps.c.train_run_id == run_id, train_steps.c.step.in_(steps)))
        conn.execute(train_steps.insert(), [{**r, "train_run_id": run_id, "created_at": now} for r in rows])


def delete_steps_after(store: Store, run_id: str, step: int) -> None:
    """Forget steps past a checkpoint being resumed from; they are trained (and logged) again."""
    with store.transaction() as conn:
        conn.execute(delete(train_steps).where(train_steps.c.train_run_id == run_id, train_steps.c.step > step))
        conn.execute(delete(checkpoints).where(checkpoints.c.train_run_id == run_id, checkpoints.c.step > step))


def train_steps_of(store: Store, run_id: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(train_steps).where(train_steps.c.train_run_id == run_id).order_by(train_steps.c.step))
        return [dict(r) for r in rows.mappings()]


# ---- checkpoints -----------------------------------------------------------------------------------


def register_checkpoint(
    store: Store, run_id: str, step: int, fraction: float | None, path: str, kind: str, content_hash: str
) -> str:
    ckpt_id = new_id()
    with store.transaction() as conn:
        conn.execute(delete(checkpoints).where(and_(checkpoints.c.train_run_id == run_id, checkpoints.c.step == step)))
        conn.execute(
            checkpoints.insert().values(
                id=ckpt_id,
                train_run_id=run_id,
                step=step,
                fraction=fraction,
                path=path,
                kind=kind,
                content_hash=content_hash,
                created_at=utcnow(),
            )
        )
    return ckpt_id


def checkpoints_of(store: Store, run_id: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(checkpoints).where(checkpoints.c.train_run_id == run_id).order_by(checkpoints.c.step))
        return [dict(r) for r in rows.mappings()]


# ---- sweeps ----------------------------------------------------------------------------------------


def create_sweep(store: Store, name: str, kind: str, config: dict[str, Any]) -> str:
    sweep_id = new_id()
    with store.transaction() as conn:
        conn.execute(
            sweeps.insert().values(id=sweep_id, name=name, kind=kind, config=config, status="running", created_at=utcnow())
        )
    return sweep_id


def finish_sweep(store: Store, sweep_id: str, status: str, report: dict[str, Any] | None) -> None:
    with store.transaction() as conn:
        conn.execute(update(sweeps).where(sweeps.c.id == sweep_id).values(status=status, report=report, finished_at=utcnow()))


def upsert_trial(store: Store, sweep_id: str, number: int, **fields: Any) -> None:
    with store.transaction() as conn:
        exists = conn.execute(
            select(sweep_trials.c.number).where(sweep_trials.c.sweep_id == sweep_id, sweep_trials.c.number == number)
        ).first()
        if exists:
            conn.execute(
                update(sweep_trials)
                .where(sweep_trials.c.sweep_id == sweep_id, sweep_trials.c.number == number)
                .values(**fields)
            )
        else:
            conn.execute(sweep_trials.insert().values(sweep_id=sweep_id, number=number, created_at=utcnow(), **fields))


def trials_of(store: Store, sweep_id: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(sweep_trials).where(sweep_trials.c.sweep_id == sweep_id).order_by(sweep_trials.c.number))
        return [dict(r) for r in rows.mappings()]


# ---- listings (`harness train list`, `harness train sweeps`) ---------------------------------------


def list_train_runs(store: Store, limit: int = 50, sweep_id: str | None = None) -> list[dict[str, Any]]:
    """Newest training runs first, each with its checkpoints and each checkpoint's scores by suite."""
    from harness.store import metrics, runs

    query = select(train_runs).order_by(train_runs.c.created_at.desc()).limit(limit)
    if sweep_id:
        query = query.where(train_runs.c.sweep_id == sweep_id)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
        ids = [r["id"] for r in rows]
        ckpts = conn.execute(select(checkpoints).where(checkpoints.c.train_run_id.in_(ids)).order_by(checkpoints.c.step)).mappings().all()
        scored = conn.execute(
            select(runs.c.train_run_id, runs.c.step, runs.c.suite, metrics.c.name, metrics.c.value)
            .join(metrics, metrics.c.run_id == runs.c.id)
            .where(runs.c.train_run_id.in_(ids), runs.c.status == "complete")
        ).all()
    scores: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
    for run_id, step, suite, name, value in scored:
        if "/" not in name:
            scores.setdefault((run_id, step), {}).setdefault(suite, {})[name] = value
    for row in rows:
        row["checkpoints"] = [
            {"step": c["step"], "fraction": c["fraction"], "path": c["path"], "kind": c["kind"],
             "scores": scores.get((row["id"], c["step"]), {})}
            for c in ckpts if c["train_run_id"] == row["id"]
        ]
        row["base_scores"] = scores.get((row["id"], 0), {})
    return rows


def list_sweeps(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Newest sweeps first with their trial counts and report."""
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(sweeps).order_by(sweeps.c.created_at.desc()).limit(limit)).mappings()]
    for row in rows:
        trials = trials_of(store, row["id"])
        row["n_trials"] = len(trials)
        row["states"] = {s: sum(t["state"] == s for t in trials) for s in sorted({t["state"] for t in trials})}
    return rows
