"""The store on SQLite and on a real PostgreSQL server (which CI always has)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from harness.config import ModelConfig, RunConfig, SuiteConfig
from harness.errors import ConfigError, UserError
from harness.runner import Runner
from harness.store import SCHEMA_VERSION, Store, normalise_url, schema_info
from tests.conftest import FakeBackend


def _run(store: Store, backend: FakeBackend, tags: list[str] | None = None):
    cfg = RunConfig(suites=[SuiteConfig(name="rag-extraction")], model=ModelConfig(path="fake", batch_size=4), tags=tags or [])
    return Runner(cfg, store, backend_factory=lambda _c: backend, show_progress=False, commit_every=4).run()


def test_normalise_url() -> None:
    assert normalise_url("results.db") == "sqlite:///results.db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_sqlite_is_wal(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_tags_list_and_prefix_lookup(store: Store) -> None:
    [result] = _run(store, FakeBackend(), tags=["main", "nightly"])
    assert store.get_run(result.run_id[:6])["tags"] == ["main", "nightly"]
    assert [r["id"] for r in store.list_runs(tag="main")] == [result.run_id]
    assert store.list_runs(tag="other") == []
    with pytest.raises(UserError, match="no run"):
        store.get_run("zzzz")


def test_read_only_store_refuses_writes(store: Store, sqlite_url: str) -> None:
    _run(store, FakeBackend())
    ro = Store(sqlite_url, read_only=True)
    assert len(ro.list_runs()) == 1
    with pytest.raises(Exception, match=r"readonly|read-only"):
        ro.write_cache([{"key": "k", "fingerprint": "f", "kind": "generate", "request": {}, "response": {}}])


def test_newer_schema_is_refused(store: Store, sqlite_url: str) -> None:
    with store.transaction() as conn:
        conn.execute(update(schema_info).where(schema_info.c.key == "version").values(value=str(SCHEMA_VERSION + 1)))
    with pytest.raises(ConfigError, match="newer than this harness"):
        Store(sqlite_url)


def test_unsupported_url() -> None:
    with pytest.raises(ConfigError, match="unsupported store URL"):
        Store("mysql://u@h/db")


@pytest.mark.postgres
def test_postgres_run_resume_and_cache(pg_url: str) -> None:
    store = Store(pg_url)
    with pytest.raises(RuntimeError):
        _run(store, FakeBackend(fail_after=6))
    [failed] = store.list_runs()
    assert failed["status"] == "failed" and store.count_samples(failed["id"]) == 4
    resumed = FakeBackend()
    [result] = _run(store, resumed, tags=["pg"])
    assert result.run_id == failed["id"] and result.reused == 4
    assert not {r.sample_id for r in resumed.asked} & store.stored_sample_ids(failed["id"]) - {
        r.sample_id for r in resumed.asked
    }
    again = FakeBackend()
    _run(store, again)
    assert again.asked == []  # answered from PostgreSQL's cache
    assert {m["name"] for m in store.run_metrics(result.run_id)} >= {"exact_match", "f1"}
    ro = Store(pg_url, read_only=True)
    assert len(ro.list_runs()) == 2
    with pytest.raises(Exception, match="read-only"):
        ro.write_cache([{"key": "k", "fingerprint": "f", "kind": "generate", "request": {}, "response": {}}])
    ro.close()
    store.close()


@pytest.mark.postgres
def test_postgres_via_cli(pg_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    comp = tmp_path / "c.jsonl"
    comp.write_text('{"id": "a", "completion": "Paris"}\n')
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "question": "Capital?", "context": "Paris is the capital.", "answers": ["Paris"]}\n')
    result = CliRunner().invoke(app, ["run", "rag-extraction", "--data", str(data), "--backend", "file",
                                      "--completions", str(comp), "--db", pg_url.replace("+psycopg", ""), "--json"])
    assert result.exit_code == 0, result.output
    assert '"exact_match": 1.0' in result.output
