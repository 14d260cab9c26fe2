"""The results store: SQLAlchemy Core over SQLite (default, one file) or PostgreSQL (teams, clusters).

Everything downstream (gate, monitors, board) reads from here, never from backends. Writes happen
in small transactions, one per batch of samples, so a crash loses at most the batch in flight.
SQLite runs in WAL mode with `BEGIN IMMEDIATE` writes: a reader (the board) never blocks a run,
and two runs writing to one file wait for each other instead of failing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Engine,
    Table,
    and_,
    case,
    create_engine,
    event,
    exists,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from harness.errors import ConfigError, UserError
from harness.schema import (  # re-exported: readers import the tables from the store
    SCHEMA_VERSION as SCHEMA_VERSION,
)
from harness.schema import (
    alarm_states as alarm_states,
)
from harness.schema import (
    alarms as alarms,
)
from harness.schema import (
    checkpoints as checkpoints,
)
from harness.schema import (
    completions as completions,
)
from harness.schema import (
    metadata as metadata,
)
from harness.schema import (
    metric_details as metric_details,
)
from harness.schema import (
    metrics as metrics,
)
from harness.schema import (
    monitor_findings as monitor_findings,
)
from harness.schema import (
    monitor_runs as monitor_runs,
)
from harness.schema import (
    prompt_logs as prompt_logs,
)
from harness.schema import (
    run_leases as run_leases,
)
from harness.schema import (
    run_tags as run_tags,
)
from harness.schema import (
    runs as runs,
)
from harness.schema import (
    samples as samples,
)
from harness.schema import (
    schema_info as schema_info,
)
from harness.schema import (
    sweep_trials as sweep_trials,
)
from harness.schema import (
    sweeps as sweeps,
)
from harness.schema import (
    train_runs as train_runs,
)
from harness.schema import (
    train_steps as train_steps,
)
from harness.types import MetricValue

_RESUMABLE = ("running", "failed")
_CHUNK = 500


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` and file paths; use psycopg 3 for PostgreSQL."""
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _to_json(value: Any) -> str:
    """Stored JSON keeps non-ASCII text as is, so the board's text search finds "é" as typed."""
    return json.dumps(value, ensure_ascii=False)


def safe_url(url: str) -> str:
    """A store URL fit for messages and logs: any password hidden."""
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


def _make_engine(url: str, read_only: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if read_only and database and database != ":memory:":
            engine = create_engine(
                f"sqlite:///file:{database}?mode=ro&uri=true", connect_args={"timeout": 60}, json_serializer=_to_json
            )
        else:
            engine = create_engine(url, connect_args={"timeout": 60}, json_serializer=_to_json)
        _configure_sqlite(engine, read_only)
        return engine
    if parsed.get_backend_name() == "postgresql":
        args: dict[str, Any] = {}
        if read_only:
            args["options"] = "-c default_transaction_read_only=on"
        return create_engine(url, connect_args=args, pool_pre_ping=True, json_serializer=_to_json)
    raise ConfigError(f"unsupported store URL '{url}': use a SQLite path or postgresql+psycopg://...")


def _configure_sqlite(engine: Engine, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 60000")
        if not read_only:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
        # dead-locking when a read transaction tries to upgrade.
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _sqlite_path(url: str) -> str | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


def _require_sqlite_file(url: str) -> None:
    """Readers never create a store: a mistyped --db path is an error, not an empty store with no runs."""
    path = _sqlite_path(url)
    if path is not None and not os.path.exists(path):
        raise ConfigError(f"cannot open store '{path}': it does not exist (check --db / HARNESS_DB; `harness run` creates a store)")


def _explain(url: str, read_only: bool, exc: Exception) -> str:
    """The driver's message, plus the cause when it is a permission or a read-only file system."""
    detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    path = _sqlite_path(url)
    if path is None:
        return detail
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.access(path, os.R_OK):
        return f"{detail} (permission denied: cannot read {path})"
    if not read_only and os.path.exists(path) and not os.access(path, os.W_OK):
        return f"{detail} (permission denied: {path} is read-only; writing needs write permission)"
    if not read_only and not os.access(folder, os.W_OK):
        return f"{detail} (permission denied: folder {folder} is read-only; SQLite creates its journal files there)"
    if read_only and not os.access(folder, os.W_OK) and not os.path.exists(path + "-shm"):
        return f"{detail} (read-only folder {folder}: a WAL store needs {os.path.basename(path)}-shm; open it once with write access)"
    if "readonly" in detail.replace("-", "").replace(" ", "").lower():
        return f"{detail} (the store or its folder is read-only)"
    return detail


class Store:
    """Typed access to the results database. One instance per process; cheap to create."""

    def __init__(self, url: str, read_only: bool = False, create: bool = True) -> None:
        """`read_only` never writes; `create=False` (every command that only reads or reports) refuses
        a store that does not exist yet instead of creating an empty one."""
        self.url = normalise_url(url)
        self.read_only = read_only
        must_exist = read_only or not create
        if must_exist:
            _require_sqlite_file(self.url)
        self.engine = _make_engine(self.url, read_only)
        try:
            if must_exist and not inspect(self.engine).has_table("runs"):
                raise ConfigError(f"store '{self.safe_url}' holds no harness results yet (`harness run` creates them)")
            if not read_only:
                self._create_schema()
            self._check_version()
            self.has_leases = inspect(self.engine).has_table("run_leases")
        except (OperationalError, ProgrammingError) as exc:
            self.engine.dispose()
            raise ConfigError(f"cannot open store '{self.safe_url}': {_explain(self.url, read_only, exc)}") from None

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return safe_url(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _create_schema(self) -> None:
        with self.transaction() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(74201)")
            metadata.create_all(conn, checkfirst=True)
            current = conn.execute(select(schema_info.c.value).where(schema_info.c.key == "version")).scalar()
            if current is None:
                conn.execute(schema_info.insert().values(key="version", value=str(SCHEMA_VERSION)))

    def _check_version(self) -> None:
        with self.engine.connect() as conn:
            current = conn.execute(select(schema_info.c.value).where(schema_info.c.key == "version")).scalar()
        if current is not None and int(current) > SCHEMA_VERSION:
            raise ConfigError(
                f"store '{self.safe_url}' has schema version {current}, newer than this harness "
                f"({SCHEMA_VERSION}); upgrade harness"
            )

    def close(self) -> None:
        self.engine.dispose()

    # ---- runs -------------------------------------------------------------------------------

    def create_run(self, record: dict[str, Any], tags: Sequence[str] = ()) -> str:
        run_id = uuid.uuid4().hex[:12]
        row = {**record, "id": run_id, "status": "running", "created_at": utcnow()}
        with self.transaction() as conn:
            conn.execute(runs.insert().values(**row))
            for tag in dict.fromkeys(tags):
                conn.execute(run_tags.insert().values(run_id=run_id, tag=tag))
        return run_id

    def find_resumable_run(self, config_hash: str) -> dict[str, Any] | None:
        """The newest unfinished run with this configuration: rerunning a command continues it."""
        return self.newest_unfinished(runs, config_hash)

    def newest_unfinished(self, table: Table, config_hash: str) -> dict[str, Any] | None:
        """The newest running or failed row of `table` (runs, train_runs) with this config hash."""
        query = (
            select(table)
            .where(table.c.config_hash == config_hash, table.c.status.in_(_RESUMABLE))
            .order_by(table.c.created_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def mark_running(self, run_id: str, **fields: Any) -> None:
        with self.transaction() as conn:
            conn.execute(
                update(runs).where(runs.c.id == run_id).values(status="running", error=None, **fields)
            )

    def finish_run(self, run_id: str, values: Iterable[MetricValue], **fields: Any) -> None:
        values = list(values)
        with self.transaction() as conn:
            conn.execute(metrics.delete().where(metrics.c.run_id == run_id))
            conn.execute(metric_details.delete().where(metric_details.c.run_id == run_id))
            rows = [
                {
                    "run_id": run_id,
                    "name": m.name,
                    "value": m.value,
                    "stderr": m.stderr,
                    "n": m.n,
                    "higher_is_better": m.higher_is_better,
                }
                for m in values
            ]
            if rows:
                conn.execute(metrics.insert(), rows)
            detail_rows = [{"run_id": run_id, "name": m.name, "details": dict(m.details)} for m in values if m.details]
            if detail_rows:
                conn.execute(metric_details.insert(), detail_rows)
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(status="complete", finished_at=utcnow(), error=None, **fields)
            )

    def fail_run(self, run_id: str, error: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                update(runs).where(runs.c.id == run_id).values(status="failed", finished_at=utcnow(), error=error)
            )

    @property
    def status_column(self) -> Any:
        """`runs.status` as readers should see it: a `running` run whose lease lapsed (its process
        died) is `interrupted`. Stores from before leases keep their stored status."""
        if not getattr(self, "has_leases", False):
            return runs.c.status
        live = exists().where(run_leases.c.run_id == runs.c.id, run_leases.c.expires_at > func.current_timestamp())
        return case((and_(runs.c.status == "running", ~live), "interrupted"), else_=runs.c.status)

    def _runs_select(self) -> Any:
        return select(*[c for c in runs.c if c.name != "status"], self.status_column.label("status"))

    def resolve_run_id(self, ref: str) -> str:
        """A full run id or an unambiguous prefix of one."""
        with self.engine.connect() as conn:
            found = conn.execute(select(runs.c.id).where(runs.c.id.startswith(ref, autoescape=True)).limit(2)).all()
        if not found:
            raise UserError(f"no run '{ref}' in store {self.safe_url}")
        if len(found) > 1:
            raise UserError(f"run id prefix '{ref}' is ambiguous; give more characters")
        return str(found[0][0])

    def get_run(self, ref: str) -> dict[str, Any]:
        run_id = self.resolve_run_id(ref)
        with self.engine.connect() as conn:
            row = dict(conn.execute(self._runs_select().where(runs.c.id == run_id)).mappings().one())
            row["tags"] = [t for (t,) in conn.execute(select(run_tags.c.tag).where(run_tags.c.run_id == run_id))]
        return row

    def list_runs(
        self,
        limit: int = 50,
        suite: str | None = None,
        tag: str | None = None,
        model: str | None = None,
        status: str | None = None,
        train_run: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest runs first, filtered; a training run's evaluations come newest step first."""
        order = (runs.c.step.desc(), runs.c.created_at.desc()) if train_run else (runs.c.created_at.desc(),)
        query = self._runs_select().order_by(*order).limit(limit)
        if status:
            query = query.where(self.status_column == status)
        if train_run:
            query = query.where(runs.c.train_run_id == train_run)
        if suite:
            query = query.where(runs.c.suite == suite)
        if model:
            query = query.where(runs.c.model == model)
        if tag:
            query = query.where(runs.c.id.in_(select(run_tags.c.run_id).where(run_tags.c.tag == tag)))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def run_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Aggregates of one run; each row also has `details` ({} when the metric stored none)."""
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(
                select(metrics).where(metrics.c.run_id == run_id).order_by(metrics.c.name)
            ).mappings()]
            extra = dict(
                conn.execute(select(metric_details.c.name, metric_details.c.details).where(metric_details.c.run_id == run_id)).all()
            )
        for row in rows:
            row["details"] = extra.get(row["name"]) or {}
        return rows

    # ---- samples ----------------------------------------------------------------------------

    def stored_sample_ids(self, run_id: str) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(samples.c.sample_id).where(samples.c.run_id == run_id))
            return {r[0] for r in rows}

    def run_samples(self, run_id: str, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        query = select(samples).where(samples.c.run_id == run_id).order_by(samples.c.position).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def run_scores(self, run_id: str) -> list[dict[str, Any]]:
        """Per-sample scores, groups and details only (aggregation needs no prompts or answers)."""
        cols = (samples.c.sample_id, samples.c.scores, samples.c.groups, samples.c.details)
        query = select(*cols).where(samples.c.run_id == run_id).order_by(samples.c.position)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def count_samples(self, run_id: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(samples).where(samples.c.run_id == run_id)).scalar_one()
            )

    def write_batch(self, run_id: str, sample_rows: Sequence[dict[str, Any]], cache_rows: Sequence[dict[str, Any]]) -> None:
        """Store finished samples and the new cache entries that produced them, atomically."""
        with self.transaction() as conn:
            self._insert_ignore(conn, completions, [{**r, "created_at": utcnow()} for r in cache_rows])
            self._insert_ignore(conn, samples, [{**r, "run_id": run_id} for r in sample_rows])

    def write_cache(self, cache_rows: Sequence[dict[str, Any]]) -> None:
        """Store answers as soon as they arrive (before their samples are complete)."""
        with self.transaction() as conn:
            self._insert_ignore(conn, completions, [{**r, "created_at": utcnow()} for r in cache_rows])

    def cache_lookup(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        with self.engine.connect() as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                rows = conn.execute(select(completions.c.key, completions.c.response).where(completions.c.key.in_(chunk)))
                found.update({k: v for k, v in rows})
        return found

    @staticmethod
    def _ignoring_conflicts(conn: Connection, table: Table) -> Any:
        """An INSERT that skips rows whose key exists, in this connection's dialect."""
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()

    @classmethod
    def _insert_ignore(cls, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            conn.execute(cls._ignoring_conflicts(conn, table), list(rows))

    @classmethod
    def insert_if_new(cls, conn: Connection, table: Table, row: dict[str, Any]) -> bool:
        """Insert one row unless its key exists; True when this call inserted it (atomic claim)."""
        key = next(iter(table.primary_key.columns))
        return conn.execute(cls._ignoring_conflicts(conn, table).returning(key), row).first() is not None
