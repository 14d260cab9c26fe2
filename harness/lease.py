"""One live worker per run: a lease row in the store, renewed by a heartbeat thread.

Two processes started on the same command would otherwise both work the same run and ask the
backend every prompt twice. The lease is keyed by the run's configuration hash (so two starts at
the same moment collide too, before either creates a run row) and records its owner (host, pid)
and an expiry that a background thread pushes forward. A second process finding a live lease
refuses with a clear message; a lease whose owner is gone (its heartbeat lapsed, or on the same
host its pid no longer exists) is taken over, and the run resumes. Readers show a `running` run
without a live lease as `interrupted` (Store.status_column).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid
from typing import Any

from sqlalchemy import delete, select, update

from harness.errors import BackendError, UserError
from harness.store import Store, run_leases, utcnow

DEFAULT_TTL_S = 60.0
TTL_ENV = "HARNESS_LEASE_SECONDS"


class RunBusy(UserError):
    """Another live process holds the lease on this run."""


def lease_ttl() -> float:
    """Seconds without a heartbeat after which a lease counts as abandoned ($HARNESS_LEASE_SECONDS)."""
    raw = os.environ.get(TTL_ENV)
    try:
        return max(1.0, float(raw)) if raw else DEFAULT_TTL_S
    except ValueError:
        return DEFAULT_TTL_S


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_gone(owner: str) -> bool:
    """On this host a dead pid proves the owner is gone at once (a rerun right after `kill -9`)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class Lease:
    """The right to work the run with configuration hash `key`; use as a context manager."""

    def __init__(self, store: Store, key: str, ttl_s: float | None = None) -> None:
        self.store = store
        self.key = key
        self.ttl = ttl_s or lease_ttl()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lost: str | None = None
        self.took_over: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _times(self) -> dict[str, Any]:
        now = utcnow()
        return {"heartbeat_at": now, "expires_at": now + dt.timedelta(seconds=self.ttl)}

    def acquire(self) -> None:
        """Take the lease or raise RunBusy naming the live owner. Atomic on SQLite and PostgreSQL:
        an insert that ignores conflicts, then a compare-and-swap on the stale owner."""
        with self.store.transaction() as conn:
            inserted = self.store.insert_if_new(conn, run_leases, {"key": self.key, "owner": self.owner, **self._times()})
        if inserted:
            self._start()
            return
        with self.store.engine.connect() as conn:
            row = conn.execute(select(run_leases).where(run_leases.c.key == self.key)).mappings().first()
        if row is None:  # released between our insert and read: try once more
            return self.acquire()
        expires = _aware(row["expires_at"])
        if expires > utcnow() and not _owner_gone(row["owner"]):
            age = (utcnow() - _aware(row["heartbeat_at"])).total_seconds()
            run = f"run {row['run_id']}" if row["run_id"] else "this run"
            raise RunBusy(
                f"{run} is being worked on by another process ({row['owner']}, heartbeat {age:.0f} s ago); "
                "a second worker would ask the same prompts again, so this one stops. Wait for it to finish "
                f"(rerunning then answers everything from the store), or stop it: its lease lapses {self.ttl:.0f} s "
                "after its last heartbeat and the next run resumes the work"
            )
        with self.store.transaction() as conn:
            swapped = conn.execute(
                update(run_leases)
                .where(run_leases.c.key == self.key, run_leases.c.owner == row["owner"])
                .values(owner=self.owner, **self._times())
            ).rowcount
        if swapped != 1:
            return self.acquire()  # someone else took it over first: they now hold a live lease
        self.took_over = row["owner"]
        self._start()

    def attach(self, run_id: str) -> None:
        """Name the run this lease covers, so readers can tell a live run from an interrupted one."""
        with self.store.transaction() as conn:
            conn.execute(update(run_leases).where(run_leases.c.key == self.key, run_leases.c.owner == self.owner)
                         .values(run_id=run_id, **self._times()))

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.key}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                with self.store.transaction() as conn:
                    renewed = conn.execute(
                        update(run_leases)
                        .where(run_leases.c.key == self.key, run_leases.c.owner == self.owner)
                        .values(**self._times())
                    ).rowcount
            except Exception:
                continue
            if renewed != 1:
                self.lost = "another process took over this run's lease (this process stalled past its expiry)"
                return

    def check(self) -> None:
        """Raise before writing when the lease was lost: never two writers on one run."""
        if self.lost:
            raise BackendError(f"{self.lost}; stopping without writing more")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self.store.transaction() as conn:
            conn.execute(delete(run_leases).where(run_leases.c.key == self.key, run_leases.c.owner == self.owner))

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
