"""Runs never lie about their state (issue 17): transport settings resume the same run, one live
worker per run, interrupted runs marked and resumed, configuration errors leave no run row, readers
never create a store. Real SQLite and PostgreSQL; the OpenAI backend against a local fake server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from harness.backends import answer_neutral_options, create_backend
from harness.backends.base import Backend, backend_fingerprint
from harness.backends.openai import OpenAIBackend
from harness.cli import app
from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.errors import ConfigError
from harness.lease import Lease, RunBusy
from harness.runner import Runner
from harness.store import Store, run_leases
from harness.types import Completion, Request
from tests.conftest import FakeBackend, temporary_postgres_db
from tests.fake_openai import FakeOpenAIServer, Scripted

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'h.db'}"
    else:
        with temporary_postgres_db() as url:
            yield url


def asked(server: FakeOpenAIServer) -> Counter[str]:
    """How often each distinct prompt reached the server."""
    return Counter(json.dumps(s["payload"].get("messages") or s["payload"].get("prompt"), sort_keys=True) for s in server.seen)


def slow(server: FakeOpenAIServer, seconds: float) -> None:
    original = server._ok

    def delayed(path: str, payload: dict[str, Any]) -> dict[str, Any]:
        time.sleep(seconds)
        return original(path, payload)

    server._ok = delayed  # type: ignore[method-assign]


def openai_args(url: str, db: str, *extra: str) -> list[str]:
    return ["run", "rag-extraction", "--backend", "openai", "--model", "served-tiny", "--base-url", url,
            "--db", db, "--batch-size", "2", "--no-progress", "--json", *extra]


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def harness_process(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = os.environ | {"PYTHONPATH": str(REPO)} | (env or {})
    return subprocess.Popen([sys.executable, "-m", "harness", *args], env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def runs_in(url: str) -> list[dict[str, Any]]:
    store = Store(url, read_only=True)
    try:
        return store.list_runs()
    finally:
        store.close()


# ---- 1. settings that cannot change an answer -------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "option", "value"),
    [("openai", "max_concurrency", 64), ("openai", "timeout_s", 5.0), ("openai", "max_retries", 20),
     ("openai", "backoff_base_s", 2.0), ("openai", "backoff_max_s", 90.0), ("openai", "api_key_env", "OTHER_KEY"),
     ("vllm", "gpu_memory_utilization", 0.5), ("vllm", "cpu_kvcache_space_gb", 4), ("vllm", "max_num_seqs", 4)],
)
def test_transport_options_leave_the_fingerprint_alone(backend: str, option: str, value: Any) -> None:
    base = {"base_url": "http://127.0.0.1:1/v1"} if backend == "openai" else {}
    before = ModelConfig(path="m", backend=backend, options=base)
    after = ModelConfig(path="m", backend=backend, options=base | {option: value})
    identity = {"model_hash": "x"}
    assert backend_fingerprint(before, identity, "float32", answer_neutral_options(before)) == backend_fingerprint(
        after, identity, "float32", answer_neutral_options(after)
    )


@pytest.mark.parametrize(
    ("backend", "option", "value"),
    [("openai", "extra_body", {"top_k": 5}), ("openai", "served_model_name", "other"),
     ("vllm", "tensor_parallel_size", 2), ("vllm", "engine_args", {"quantization": "fp8"}), ("vllm", "seed", 3)],
)
def test_options_that_can_change_answers_change_the_fingerprint(backend: str, option: str, value: Any) -> None:
    before = ModelConfig(path="m", backend=backend, options={})
    after = ModelConfig(path="m", backend=backend, options={option: value})
    identity = {"model_hash": "x"}
    assert backend_fingerprint(before, identity, "float32", answer_neutral_options(before)) != backend_fingerprint(
        after, identity, "float32", answer_neutral_options(after)
    )


def test_openai_rerun_with_more_retries_and_concurrency_resumes_and_asks_nothing_twice(
    fake_openai: FakeOpenAIServer, db_url: str
) -> None:
    # The first run gives up after its retries half way (what the error message says to rerun).
    # 1 request before the run row, then 5 backend calls of 2: all answered and cached; the 6th call fails.
    fake_openai.script = [Scripted()] * 11 + [Scripted(503, body={"error": "overloaded"})] * 3
    first = cli(*openai_args(fake_openai.url, db_url, "--backend-option", "max_retries=0",
                             "--backend-option", "max_concurrency=1", "--backend-option", "backoff_base_s=0.01"))
    assert first.exit_code == 1, first.output
    (failed,) = runs_in(db_url)
    answered = {json.dumps(s["payload"]["messages"], sort_keys=True) for s in fake_openai.seen[:11]}
    assert failed["status"] == "failed" and len(answered) == 11
    fake_openai.seen.clear()
    fake_openai.script.clear()  # the server is healthy again
    again = cli(*openai_args(fake_openai.url, db_url, "--backend-option", "max_retries=6",
                             "--backend-option", "max_concurrency=16", "--backend-option", "timeout_s=30"))
    assert again.exit_code == 0, again.output
    (result,) = json.loads(again.stdout)["runs"]
    assert result["run_id"] == failed["id"] and result["status"] == "complete"
    assert not set(asked(fake_openai)) & answered, "a prompt answered by the first run was asked again"
    assert max(asked(fake_openai).values()) == 1
    assert len(runs_in(db_url)) == 1


class Interrupting(Backend):
    """Delegates to a real backend, logs every request, and fails on call `fail_on` (a crash mid-run)."""

    def __init__(self, inner: Backend, log: list[str], fail_on: int | None = None) -> None:
        super().__init__(inner.config)
        self.name = inner.name
        self.inner, self.log, self.fail_on, self.calls = inner, log, fail_on, 0

    def _count(self, requests: Sequence[Request]) -> None:
        self.calls += 1
        if self.fail_on is not None and self.calls >= self.fail_on:
            raise RuntimeError("crashed mid-run")
        self.log.extend(r.sample_id for r in requests)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self._count(requests)
        return self.inner.generate(requests)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        self._count(requests)
        return self.inner.loglikelihood(requests)

    def close(self) -> None:
        self.inner.close()


def resume_with_changed_settings(
    url: str, first: ModelConfig, second: ModelConfig, fail_on: int = 10
) -> tuple[list[str], list[str]]:
    """Run `first` until it crashes after its first stored batch, rerun with `second`: the run ids must
    match, and the rerun must ask only for samples not stored. Returns what each run asked."""
    asked_first: list[str] = []
    asked_second: list[str] = []
    store = Store(url)
    try:
        def config(model: ModelConfig) -> RunConfig:
            return RunConfig(suites=[SuiteConfig(name="rag-extraction")], model=model,
                             generation=GenerationConfig(max_new_tokens=8))

        # commit batches are 16 samples and calls carry 2 requests: after one call asked before the run
        # row (capability check), call 10 is the first of the second batch (a replay backend: call 9)
        crashing = Runner(config(first), store, lambda cfg: Interrupting(create_backend(cfg), asked_first, fail_on),
                          show_progress=False)
        with pytest.raises(RuntimeError, match="crashed mid-run"):
            crashing.run()
        (failed,) = store.list_runs()
        stored = store.stored_sample_ids(failed["id"])
        assert len(stored) == 16
        (result,) = Runner(config(second), store, lambda cfg: Interrupting(create_backend(cfg), asked_second),
                           show_progress=False).run()
        assert result.run_id == failed["id"] and result.status == "complete" and result.reused == 16
        assert not set(asked_second) & stored, "samples already stored were asked again"
        assert not set(asked_second) & set(asked_first), "answers cached before the crash were asked again"
        assert len(store.list_runs()) == 1
    finally:
        store.close()
    return asked_first, asked_second


def test_hf_rerun_with_another_batch_size_resumes(tiny_model: Path, sqlite_url: str) -> None:
    common = {"path": str(tiny_model), "backend": "hf", "device": "cpu", "dtype": "float32"}
    _, second = resume_with_changed_settings(
        sqlite_url, ModelConfig(**common, batch_size=2), ModelConfig(**common, batch_size=5)
    )
    assert len(second) == 8


def test_file_backend_rerun_with_another_batch_size_resumes(tmp_path: Path, sqlite_url: str) -> None:
    from suites import create_suite

    suite = create_suite("rag-extraction", {}, GenerationConfig(max_new_tokens=8))
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"id": s.id, "completion": "unanswerable"}) + "\n"
                               for s in suite.load(suite.default_data())))
    common = {"backend": "file", "completions": str(answers)}
    resume_with_changed_settings(sqlite_url, ModelConfig(**common, batch_size=2), ModelConfig(**common, batch_size=7),
                                 fail_on=9)


def test_openai_rerun_with_changed_transport_options_resumes(fake_openai: FakeOpenAIServer, db_url: str) -> None:
    base = {"base_url": fake_openai.url}
    first = ModelConfig(path="served", backend="openai", batch_size=2,
                        options=base | {"max_concurrency": 1, "timeout_s": 10, "max_retries": 0, "backoff_base_s": 0.1,
                                        "backoff_max_s": 1})
    second = ModelConfig(path="served", backend="openai", batch_size=3,
                         options=base | {"max_concurrency": 9, "timeout_s": 99, "max_retries": 9, "backoff_base_s": 0.2,
                                         "backoff_max_s": 9})
    resume_with_changed_settings(db_url, first, second)
    assert max(asked(fake_openai).values()) == 1


# ---- 2. one live worker per run ---------------------------------------------------------------


def test_a_live_lease_refuses_a_second_worker_and_a_released_one_is_free(db_url: str) -> None:
    store = Store(db_url)
    try:
        with Lease(store, "cfg-1") as first:
            first.attach("run-1")
            with pytest.raises(RunBusy, match="being worked on by another process"):
                Lease(store, "cfg-1").acquire()
            with Lease(store, "cfg-2"):  # another configuration is not blocked
                pass
        with Lease(store, "cfg-1"):
            pass
    finally:
        store.close()


def test_a_lapsed_or_dead_owner_is_taken_over(db_url: str) -> None:
    store = Store(db_url)
    try:
        stale = Lease(store, "cfg")
        stale.acquire()
        stale._stop.set()  # the owner stops beating, as a hung or killed process would
        with store.transaction() as conn:
            conn.execute(update(run_leases).values(expires_at=run_leases.c.heartbeat_at))
        taker = Lease(store, "cfg")
        taker.acquire()
        assert taker.took_over == stale.owner
        taker.release()
        # On this host a dead pid needs no waiting: the lease of a process killed a moment ago is free.
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        ghost = Lease(store, "cfg2")
        ghost.owner = ghost.owner.split(":")[0] + f":{int(dead.stdout)}:deadbeef"
        ghost.acquire()
        ghost._stop.set()
        heir = Lease(store, "cfg2")
        heir.acquire()
        assert heir.took_over == ghost.owner
        heir.release()
    finally:
        store.close()


def test_the_same_command_twice_at_once_asks_each_prompt_once(fake_openai: FakeOpenAIServer, db_url: str) -> None:
    slow(fake_openai, 0.05)
    args = openai_args(fake_openai.url, db_url, "--backend-option", "max_concurrency=1")
    procs = [harness_process(args) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    assert "being worked on by another process" in " ".join(refused.split())
    assert max(asked(fake_openai).values()) == 1 and len(asked(fake_openai)) == 24
    (run,) = runs_in(db_url)
    assert run["status"] == "complete"


# ---- 3. a run whose worker died shows as interrupted and resumes -------------------------------


def test_killed_run_shows_interrupted_then_resumes(fake_openai: FakeOpenAIServer, db_url: str) -> None:
    slow(fake_openai, 0.1)
    args = openai_args(fake_openai.url, db_url, "--backend-option", "max_concurrency=1")
    proc = harness_process(args, {"HARNESS_LEASE_SECONDS": "1"})
    deadline = time.monotonic() + 240
    stored: set[str] = set()
    while time.monotonic() < deadline and proc.poll() is None and len(stored) < 16:
        time.sleep(0.1)
        try:
            store = Store(db_url, read_only=True)
        except ConfigError:
            continue  # not created yet
        try:
            found = store.list_runs()
            stored = store.stored_sample_ids(found[0]["id"]) if found else set()
        finally:
            store.close()
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    answered_before = set(asked(fake_openai))

    status = None
    while time.monotonic() < deadline and status != "interrupted":  # waits for the 1 s lease to lapse
        listed = cli("runs", "list", "--db", db_url, "--json")
        assert listed.exit_code == 0, listed.output
        status = json.loads(listed.stdout)["runs"][0]["status"]
        time.sleep(0.2)
    assert status == "interrupted"
    from dashboards import queries

    store = Store(db_url, read_only=True)
    try:
        assert queries.recent_runs(store)["status"].tolist() == ["interrupted"]
        page = queries.leaderboard(store, queries.RunFilter(status="interrupted"))
        assert page.total == 1 and page.frame["status"].tolist() == ["interrupted"]
        assert "interrupted" in queries.filter_options(store)["status"]
    finally:
        store.close()

    fake_openai.seen.clear()
    again = cli(*args)
    assert again.exit_code == 0, again.output
    (result,) = json.loads(again.stdout)["runs"]
    (run,) = runs_in(db_url)
    assert result["run_id"] == run["id"] and run["status"] == "complete"
    asked_again = set(asked(fake_openai))
    assert max(asked(fake_openai).values()) == 1 and len(answered_before | asked_again) == 24
    # only the backend call in flight at the kill (2 requests) is asked again; stored samples never
    assert len(asked_again & answered_before) <= 2, "more than the call in flight was asked again"


# ---- 4. configuration errors leave no run row --------------------------------------------------


def test_a_server_without_prompt_logprobs_fails_before_a_run_row(
    fake_openai: FakeOpenAIServer, db_url: str, tmp_path: Path
) -> None:
    fake_openai.logprobs = False
    result = cli("run", "mmlu", "--backend", "openai", "--model", "served-tiny", "--base-url", fake_openai.url,
                 "--limit", "2", "--db", db_url, "--backend-option", "tokenizer=none")
    assert result.exit_code == 2, result.output
    assert "does not return prompt log-probabilities" in " ".join(result.output.split())
    assert runs_in(db_url) == []


def test_a_server_without_a_chat_template_fails_before_a_run_row(fake_openai: FakeOpenAIServer, db_url: str) -> None:
    message = "As of transformers v4.44, default chat template is no longer allowed, so you must provide a chat template"
    fake_openai.script = [Scripted(400, body={"error": {"message": message}})]
    result = cli(*openai_args(fake_openai.url, db_url))
    assert result.exit_code == 2, result.output
    assert "chat template" in " ".join(result.output.split())
    assert runs_in(db_url) == []


def test_an_unreachable_judge_fails_before_a_run_row(tiny_model: Path, db_url: str) -> None:
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    result = cli("run", "mtbench", "--model", str(tiny_model), "--limit", "1", "--db", db_url, "--judge-backend", "openai",
                 "--judge-model", "judge", "--judge-option", f"base_url={dead}", "--max-new-tokens", "4")
    assert result.exit_code != 0
    assert "not reachable" in " ".join(result.output.split()) and dead in result.output
    assert runs_in(db_url) == []


# ---- 5. readers never create a store; errors say why -----------------------------------------


@pytest.mark.parametrize(
    "command",
    [["runs", "list"], ["gate", "--baseline", "a", "--candidate", "b"], ["compare", "a", "b"],
     ["monitor", "drift", "scores", "--suite", "rag-extraction"], ["monitor", "rag", "--baseline", "a", "--candidate", "b"],
     ["monitor", "alarms"], ["rescore", "abc"]],
)
def test_readers_never_create_a_store(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    result = cli(*command, "--db", str(missing))
    assert result.exit_code == 2, result.output
    assert "does not exist" in " ".join(result.output.split())
    assert not missing.exists()


def test_readers_refuse_an_empty_postgres_database() -> None:
    with temporary_postgres_db() as url:
        result = cli("monitor", "drift", "scores", "--suite", "rag-extraction", "--db", url)
        assert result.exit_code == 2, result.output
        assert "holds no harness results" in " ".join(result.output.split())
        result = cli("runs", "list", "--db", url)
        assert result.exit_code == 2 and "holds no harness results" in " ".join(result.output.split())


def _unprivileged(code: str) -> subprocess.CompletedProcess[str]:
    """Run Python as an ordinary user (root ignores file permissions, so the test would prove nothing)."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv is needed to test permissions as root"
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(REPO)}, cwd="/")


def test_a_read_only_folder_is_named_as_the_cause(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    Store(f"sqlite:///{folder / 'h.db'}").close()
    for f in folder.iterdir():
        if f.name != "h.db":
            f.unlink()
    os.chmod(folder, 0o555)
    os.chmod(folder / "h.db", 0o644)
    os.chmod(tmp_path, 0o755)
    try:
        done = _unprivileged(
            "from harness.store import Store\n"
            "from harness.errors import ConfigError\n"
            f"try:\n    Store('sqlite:///{folder / 'h.db'}')\nexcept ConfigError as e:\n    print(e)\n"
        )
    finally:
        os.chmod(folder, 0o755)
    assert "permission denied" in done.stdout and "read-only" in done.stdout, done.stdout + done.stderr


# ---- 5b. YAML errors on one line; secrets nested in options never stored ----------------------


def test_yaml_syntax_error_is_one_line_with_file_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("suites:\n  - name: rag-extraction\nmodel: {path: m, backend: [hf\n")
    result = cli("run", "--config", str(config), "--db", str(tmp_path / "h.db"))
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert f"{config}: line 4, column 1: invalid YAML:" in lines[0]


def test_secrets_nested_in_backend_options_are_not_stored(fake_openai: FakeOpenAIServer, sqlite_url: str) -> None:
    secret = "sk-nested-7c1e0a"
    config = RunConfig(
        suites=[SuiteConfig(name="rag-extraction", limit=2)],
        model=ModelConfig(path="served", backend="openai", options={
            "base_url": fake_openai.url,
            "extra_body": {"headers": {"Authorization": f"Bearer {secret}"}, "metadata": [{"api_token": secret}],
                           "note": f"Bearer {secret}", "top_k": 5},
        }),
    )
    store = Store(sqlite_url)
    try:
        (result,) = Runner(config, store, show_progress=False).run()
        info = store.get_run(result.run_id)["backend_info"]
        assert info["settings"]["options"]["extra_body"]["top_k"] == 5
    finally:
        store.close()
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    for f in db.parent.glob(db.name + "*"):
        assert secret.encode() not in f.read_bytes()


def test_fake_backend_runs_still_take_and_release_the_lease(store: Store) -> None:
    config = RunConfig(suites=[SuiteConfig(name="rag-extraction", limit=3)])
    Runner(config, store, backend_factory=lambda cfg: FakeBackend(cfg), show_progress=False).run()
    with store.engine.connect() as conn:
        assert conn.execute(run_leases.select()).all() == []
    assert isinstance(OpenAIBackend.answer_neutral_options, frozenset)
