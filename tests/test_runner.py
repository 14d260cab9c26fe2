"""Runner semantics with a counting fake backend: caching by content, resume after a failure,
no partial runs on bad configuration, and metrics identical to an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import ModelConfig, RunConfig, SuiteConfig
from harness.runner import Runner
from harness.store import Store
from suites.rag_extraction import RagExtractionSuite
from tests.conftest import FakeBackend


def _config(limit: int | None = None, **model: object) -> RunConfig:
    return RunConfig(
        suites=[SuiteConfig(name="rag-extraction", limit=limit)],
        model=ModelConfig(path="fake-model", batch_size=4, **model),  # type: ignore[arg-type]
    )


def _run(store: Store, backend: FakeBackend, config: RunConfig | None = None, commit_every: int = 4):
    return Runner(config or _config(), store, backend_factory=lambda _cfg: backend, show_progress=False,
                  commit_every=commit_every).run()


def test_complete_run_is_stored_with_provenance(store: Store) -> None:
    backend = FakeBackend(answer="unanswerable")
    [result] = _run(store, backend)
    assert result.status == "complete" and result.n_samples == 24 and result.computed == 24
    run = store.get_run(result.run_id)
    assert run["status"] == "complete" and run["suite_version"] == RagExtractionSuite.version
    assert run["data_hash"] and run["config_hash"] and run["fingerprint"]
    assert "pydantic" in run["versions"] and run["finished_at"] is not None
    assert store.count_samples(result.run_id) == 24
    metrics = {m["name"]: m["value"] for m in store.run_metrics(result.run_id)}
    # Abstaining everywhere is right on exactly the 8 unanswerable questions.
    assert metrics["exact_match"] == pytest.approx(8 / 24)
    assert metrics["unanswerable/exact_match"] == 1.0


def test_rerun_is_answered_from_cache(store: Store) -> None:
    first = FakeBackend()
    _run(store, first)
    assert len(first.asked) == 24
    second = FakeBackend()
    [result] = _run(store, second)
    assert second.asked == []  # every answer came from the cache
    assert result.computed == 24 and result.reused == 0  # a finished run is not resumed: a new run


def test_cached_rerun_stores_samples_in_a_few_large_transactions(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches answered wholly from the cache grow (4, 16, 64, ...), so a cached rerun of full MMLU
    stores its 14,042 rows in a few transactions; a batch that needed the model resets the size."""
    writes: list[int] = []
    original = store.write_batch

    def counting(run_id: str, rows, cache_rows) -> None:  # type: ignore[no-untyped-def]
        writes.append(len(rows))
        original(run_id, rows, cache_rows)

    monkeypatch.setattr(store, "write_batch", counting)
    _run(store, FakeBackend())
    assert writes == [4] * 6
    writes.clear()
    [result] = _run(store, FakeBackend())
    assert writes == [4, 16, 4] and store.count_samples(result.run_id) == 24

    writes.clear()
    _run(store, FakeBackend(), _config(limit=2, dtype="float16"), commit_every=1)
    writes.clear()
    second = FakeBackend()
    _run(store, second, _config(dtype="float16"), commit_every=1)  # 2 answers cached, 22 to compute
    assert writes == [1, 4] + [1] * 19 and len(second.asked) == 22


def test_cache_is_keyed_by_model_identity(store: Store, tmp_path: Path) -> None:
    _run(store, FakeBackend())
    other = FakeBackend()
    _run(store, other, _config(dtype="bfloat16"))
    assert len(other.asked) == 24  # a different dtype is a different backend identity


def test_failure_then_rerun_resumes_without_recomputing(store: Store) -> None:
    failing = FakeBackend(fail_after=10)
    with pytest.raises(RuntimeError, match="fake backend failure"):
        _run(store, failing)
    [failed] = store.list_runs()
    assert failed["status"] == "failed" and "fake backend failure" in failed["error"]
    stored = store.stored_sample_ids(failed["id"])
    assert len(stored) == 8  # two committed batches of 4 survive the crash

    resumed = FakeBackend()
    [result] = _run(store, resumed)
    assert result.run_id == failed["id"] and result.reused == 8 and result.computed == 16
    asked_ids = {r.sample_id for r in resumed.asked}
    assert not asked_ids & stored  # the backend was not called for stored samples
    assert store.get_run(result.run_id)["status"] == "complete"

    clean = Store(store.url.replace("harness.db", "clean.db"))
    [reference] = _run(clean, FakeBackend())
    assert {m["name"]: m["value"] for m in store.run_metrics(result.run_id)} == {
        m["name"]: m["value"] for m in clean.run_metrics(reference.run_id)
    }


def test_bad_model_path_leaves_no_run(store: Store, tmp_path: Path) -> None:
    from harness.errors import ConfigError

    config = RunConfig(suites=[SuiteConfig(name="rag-extraction")], model=ModelConfig(path=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="does not exist"):
        Runner(config, store, show_progress=False).run()
    assert store.list_runs() == []


def test_file_backend_replays_a_stored_run(store: Store, tmp_path: Path) -> None:
    [original] = _run(store, FakeBackend(answer="Amazon"))
    config = RunConfig(
        suites=[SuiteConfig(name="rag-extraction")],
        model=ModelConfig(backend="file", completions=f"run:{original.run_id}", options={"db": store.url}),
    )
    [replayed] = Runner(config, store, show_progress=False).run()
    assert replayed.run_id != original.run_id
    assert {m.name: m.value for m in replayed.metrics} == {m.name: m.value for m in original.metrics}


def test_file_backend_matches_by_id_not_order(store: Store, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in Path(RagExtractionSuite().default_data()).read_text().splitlines()]
    answers = {r["id"]: (r["answers"][0] if r["answers"] else "unanswerable") for r in rows}
    comp = tmp_path / "c.jsonl"
    comp.write_text("\n".join(json.dumps({"id": k, "completion": v}) for k, v in reversed(answers.items())))
    config = RunConfig(suites=[SuiteConfig(name="rag-extraction")], model=ModelConfig(backend="file", completions=str(comp)))
    [result] = Runner(config, store, show_progress=False).run()
    values = {m.name: m.value for m in result.metrics}
    assert values["exact_match"] == 1.0 and values["f1"] == 1.0 and values["supported"] == 1.0


def test_file_backend_missing_answer_names_sample(store: Store, tmp_path: Path) -> None:
    from harness.errors import DataError

    comp = tmp_path / "c.jsonl"
    comp.write_text(json.dumps({"id": "rag-001", "completion": "1889"}) + "\n")
    config = RunConfig(suites=[SuiteConfig(name="rag-extraction")], model=ModelConfig(backend="file", completions=str(comp)))
    with pytest.raises(DataError, match=r"no completion for 23 sample\(s\): 'rag-002'"):
        Runner(config, store, show_progress=False).run()
    assert store.list_runs() == []  # a gap in the answers is an input error: nothing half-stored
