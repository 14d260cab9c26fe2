"""Shared fixtures: a tiny local model built once per session, stores, and a counting fake backend."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from harness.backends.base import Backend
from harness.config import ModelConfig
from harness.store import Store
from harness.types import Completion, Request

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("HARNESS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama (head_dim 64) with a locally trained tokenizer; built once per session."""
    from harness.models.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'harness.db'}"


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    s = Store(sqlite_url)
    yield s
    s.close()


def postgres_url() -> str | None:
    """URL of a fresh PostgreSQL database for this test session, or None when no server answers.

    In CI (HARNESS_REQUIRE_POSTGRES=1) a missing server is a failure, never a skip.
    """
    base = os.environ.get("HARNESS_TEST_POSTGRES", "postgresql+psycopg://127.0.0.1:5432/test")
    try:
        import psycopg

        conninfo = base.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            conn.execute("select 1")
        return base
    except Exception as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("HARNESS_REQUIRE_POSTGRES") == "1":
            raise RuntimeError(f"PostgreSQL required in CI but not reachable at {base}: {exc}") from exc
        return None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throw-away PostgreSQL database (created and dropped around the test)."""
    import uuid

    import psycopg

    base = postgres_url()
    if base is None:
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432 (set HARNESS_TEST_POSTGRES); CI always runs it")
    name = f"harness_t_{uuid.uuid4().hex[:10]}"
    admin = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class FakeBackend(Backend):
    """Deterministic answers and a log of every request it was asked (to assert cache hits)."""

    name = "fake"

    def __init__(self, config: ModelConfig | None = None, answer: str = "unanswerable", fail_after: int | None = None):
        super().__init__(config or ModelConfig(path="fake"))
        self.answer = answer
        self.fail_after = fail_after
        self.asked: list[Request] = []

    def _record(self, requests: Sequence[Request]) -> None:
        if self.fail_after is not None and len(self.asked) + len(requests) > self.fail_after:
            raise RuntimeError("fake backend failure")
        self.asked.extend(requests)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self._record(requests)
        return [Completion(text=self.answer) for _ in requests]

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        self._record(requests)
        return [Completion(logprob=-float(len(r.continuation or "")), is_greedy=False) for r in requests]


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()
