"""The OpenAI-compatible backend against a scripted local server: retries, Retry-After, dropped
connections, errors that must not be retried, API keys that never reach the store, option checks.
(The same backend against a real vLLM server is in test_backends_vllm.py.)"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import harness.backends.openai as openai_backend
from harness.backends.openai import OpenAIBackend, UnsupportedLoglikelihood, backoff_delay, retry_after_seconds
from harness.cli import app
from harness.config import ModelConfig
from harness.errors import BackendError, ConfigError
from harness.store import Store
from harness.types import Message, Request
from tests.fake_openai import FakeOpenAIServer, Scripted


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff waits the backend asked for, recorded instead of slept."""
    asked: list[float] = []

    async def record(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(openai_backend, "_sleep", record)
    return asked


def cli_run(url: str, db: str, *extra: str) -> Any:
    args = ["run", "rag-extraction", "--backend", "openai", "--model", "served-tiny", "--base-url", url,
            "--limit", "3", "--db", db, "--json", *extra]
    return CliRunner().invoke(app, args)


def backend(url: str, **options: Any) -> OpenAIBackend:
    return OpenAIBackend(ModelConfig(path="served-tiny", backend="openai", options={"base_url": url} | options))


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-4", 0.0), ("", None), (None, None), ("soon", None),
     ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0)],
)
def test_retry_after_parses_seconds_and_http_dates(header: str | None, expected: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_seconds(header, now=now) == expected


def test_backoff_is_jittered_exponential_and_never_shorter_than_retry_after() -> None:
    rng = random.Random(1)
    for attempt in range(8):
        d = backoff_delay(attempt, 0.5, 4.0, None, rng)
        assert 0.0 <= d <= min(4.0, 0.5 * 2**attempt)
        assert backoff_delay(attempt, 0.5, 4.0, 7.0, rng) >= 7.0
    assert len({round(backoff_delay(3, 0.5, 4.0, None, rng), 6) for _ in range(20)}) > 1


def test_two_500s_then_200_and_the_run_succeeds(fake_openai: FakeOpenAIServer, sqlite_url: str, waits: list[float]) -> None:
    fake_openai.script = [Scripted(500, body={"error": "boom"}), Scripted(502, body={"error": "bad gateway"})]
    result = cli_run(fake_openai.url, sqlite_url)
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]
    assert run["status"] == "complete" and run["n_samples"] == 3
    assert run["metrics"]["abstained"] == 1.0
    assert len(waits) == 2
    assert len(fake_openai.seen) == 3 + 2
    assert {s["path"] for s in fake_openai.seen} == {"/v1/chat/completions"}


def test_429_retry_after_is_honoured(fake_openai: FakeOpenAIServer, waits: list[float]) -> None:
    fake_openai.script = [Scripted(429, headers={"Retry-After": "7"}, body={"error": "slow down"})]
    b = backend(fake_openai.url, max_concurrency=1)
    out = b.generate([Request(kind="generate", prompt="hello", max_new_tokens=4)])
    assert out[0].text == "unanswerable"
    assert len(waits) == 1 and waits[0] >= 7.0
    assert b.info()["retries"] == 1


def test_dropped_connection_is_retried(fake_openai: FakeOpenAIServer, waits: list[float]) -> None:
    fake_openai.script = [Scripted(drop=True)]
    out = backend(fake_openai.url).generate([Request(kind="generate", prompt="hello")])
    assert out[0].text == "unanswerable" and len(waits) == 1


def test_client_errors_are_not_retried(fake_openai: FakeOpenAIServer, waits: list[float]) -> None:
    fake_openai.script = [Scripted(400, body={"error": "max_tokens too large"})]
    with pytest.raises(BackendError, match=r"HTTP 400.*max_tokens too large"):
        backend(fake_openai.url).generate([Request(kind="generate", prompt="hello")])
    assert waits == [] and len(fake_openai.seen) == 1


def test_a_server_that_keeps_failing_ends_the_run_with_a_clear_error(
    fake_openai: FakeOpenAIServer, sqlite_url: str, waits: list[float]
) -> None:
    # The first request (asked before the run row exists, as a capability check) succeeds; then the server fails.
    fake_openai.script = [Scripted()] + [Scripted(503, body={"error": "overloaded"})] * 50
    result = cli_run(fake_openai.url, sqlite_url, "--backend-option", "max_retries=2")
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "failed on POST /chat/completions after 3 attempts" in output
    assert "HTTP 503" in output and "rerun the same command" in output
    store = Store(sqlite_url)
    try:
        (run,) = store.list_runs()
        assert run["status"] == "failed" and "HTTP 503" in (run.get("error") or "")
    finally:
        store.close()


def test_api_key_comes_from_the_environment_and_is_never_stored(
    fake_openai: FakeOpenAIServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-4f1d9c2b7e"
    monkeypatch.setenv("HARNESS_TEST_API_KEY", secret)
    result = cli_run(fake_openai.url, sqlite_url, "--backend-option", "api_key_env=HARNESS_TEST_API_KEY")
    assert result.exit_code == 0, result.output
    assert {s["headers"].get("Authorization") for s in fake_openai.seen} == {f"Bearer {secret}"}
    assert secret not in result.output
    db_file = Path(sqlite_url.removeprefix("sqlite:///"))
    for f in db_file.parent.glob(db_file.name + "*"):
        assert secret.encode() not in f.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend-option", "api_key_env=HARNESS_SURELY_UNSET_VAR"], "HARNESS_SURELY_UNSET_VAR (named by api_key_env) is not set"),
        (["--backend-option", "max_concurency=4"], "field 'max_concurency': Extra inputs are not permitted"),
        (["--backend-option", "timeout_s=soon"], "field 'timeout_s'"),
        (["--backend-option", "noequals"], "expected KEY=VALUE"),
    ],
)
def test_bad_backend_options_exit_2(
    fake_openai: FakeOpenAIServer, sqlite_url: str, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARNESS_SURELY_UNSET_VAR", raising=False)
    result = cli_run(fake_openai.url, sqlite_url, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert fake_openai.seen == []


def test_missing_base_url_is_a_config_error(sqlite_url: str) -> None:
    result = CliRunner().invoke(app, ["run", "rag-extraction", "--backend", "openai", "--model", "m", "--db", sqlite_url])
    assert result.exit_code == 2
    assert "base_url" in result.output


def test_chat_goes_to_chat_completions_and_prompts_to_completions(fake_openai: FakeOpenAIServer) -> None:
    b = backend(fake_openai.url)
    out = b.generate(
        [
            Request(kind="generate", messages=(Message("user", "hi"),), max_new_tokens=5, stop=("\n",)),
            Request(kind="generate", prompt="raw text", max_new_tokens=6, temperature=0.7, seed=3),
        ]
    )
    assert [c.text for c in out] == ["unanswerable", "unanswerable"]
    by_path = {s["path"]: s["payload"] for s in fake_openai.seen}
    assert by_path["/v1/chat/completions"]["messages"] == [{"role": "user", "content": "hi"}]
    assert by_path["/v1/chat/completions"]["stop"] == ["\n"] and by_path["/v1/chat/completions"]["max_tokens"] == 5
    assert by_path["/v1/completions"]["prompt"] == "raw text"
    assert by_path["/v1/completions"]["temperature"] == 0.7 and by_path["/v1/completions"]["seed"] == 3
    assert all(s["payload"]["model"] == "served-tiny" for s in fake_openai.seen)


def test_stop_sequences_are_applied_even_if_the_server_ignores_them(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.answer = "Paris\nQuestion: next"
    out = backend(fake_openai.url).generate([Request(kind="generate", prompt="q", stop=("\nQuestion:",))])
    assert out[0].text == "Paris"


def test_loglikelihood_needs_prompt_logprobs(fake_openai: FakeOpenAIServer, tiny_model: Path) -> None:
    req = Request(kind="loglikelihood", prompt="The capital of France is", continuation=" Paris")
    b = OpenAIBackend(ModelConfig(path=str(tiny_model), backend="openai", options={"base_url": fake_openai.url}))
    (scored,) = b.loglikelihood([req])
    payload = fake_openai.seen[-1]["payload"]
    assert fake_openai.seen[-1]["path"] == "/v1/completions"
    assert payload["echo"] is True and payload["max_tokens"] == 0 and payload["logprobs"] == 1
    assert isinstance(payload["prompt"], list)  # token ids from the model's own tokenizer
    from transformers import AutoTokenizer

    from harness.backends.text import encode_pair

    ctx, cont = encode_pair(AutoTokenizer.from_pretrained(tiny_model), req.prompt or "", req.continuation or "")
    assert payload["prompt"] == ctx + cont
    assert scored.logprob == pytest.approx(-1.0 * len(cont)) and scored.is_greedy is False

    fake_openai.logprobs = False
    with pytest.raises(UnsupportedLoglikelihood, match="does not return prompt log-probabilities"):
        b.loglikelihood([req])
    fake_openai.script = [Scripted(400, body={"error": "echo is not supported with logprobs"})]
    with pytest.raises(UnsupportedLoglikelihood, match="echo is not supported"):
        b.loglikelihood([req])
    assert issubclass(UnsupportedLoglikelihood, ConfigError)


@pytest.fixture
def many_requests() -> Iterator[list[Request]]:
    yield [Request(kind="generate", prompt=f"p{i}", max_new_tokens=2) for i in range(40)]


def test_concurrency_is_bounded(fake_openai: FakeOpenAIServer, many_requests: list[Request]) -> None:
    import threading
    import time

    active, peak = 0, 0
    lock = threading.Lock()
    original = fake_openai._ok

    def slow_ok(path: str, payload: dict[str, Any]) -> dict[str, Any]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return original(path, payload)

    fake_openai._ok = slow_ok  # type: ignore[method-assign]
    out = backend(fake_openai.url, max_concurrency=3).generate(many_requests)
    assert len(out) == 40 and len(fake_openai.seen) == 40
    assert 1 < peak <= 3
