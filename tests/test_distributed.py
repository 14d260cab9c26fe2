"""Distributed evaluation on a local Ray cluster (2 CPUs) with the tiny model.

Results must equal a single-process run; an actor killed mid-run must not lose or duplicate
anything; a killed driver resumes like any run. Skips only where Ray is not installed (CI has it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import GenerationConfig, ModelConfig, RayConfig, RunConfig, SuiteConfig
from harness.errors import ConfigError
from harness.runner import Runner
from harness.store import Store
from tests.conftest import require_module

require_module("ray", "harness-eval[ray]")
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield
    ray.shutdown()


def test_unreachable_cluster_is_a_clear_error(tiny_model: Path, sqlite_url: str) -> None:
    assert not ray.is_initialized(), "must run before the module's local cluster starts"
    with pytest.raises(ConfigError, match="cannot reach the Ray cluster"):
        Runner(_config(tiny_model, RayConfig(address="ray://127.0.0.1:1")), Store(sqlite_url), show_progress=False).run()


def _config(model: Path, ray_config: RayConfig | None = None, limit: int = 8) -> RunConfig:
    return RunConfig(
        suites=[SuiteConfig(name="rag-extraction", limit=limit)],
        model=ModelConfig(path=str(model), batch_size=2),
        generation=GenerationConfig(max_new_tokens=6),
        ray=ray_config,
    )


def _completions(store: Store, run_id: str) -> dict[str, str]:
    return {r["sample_id"]: r["completions"][0][0]["text"] for r in store.run_samples(run_id)}


@pytest.fixture(scope="module")
def reference(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, float], dict[str, str]]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('ref') / 'ref.db'}")
    [result] = Runner(_config(tiny_model), store, show_progress=False).run()
    return {m.name: m.value for m in result.metrics}, _completions(store, result.run_id)


def test_ray_run_equals_single_process(local_ray: None, tiny_model: Path, sqlite_url: str, reference) -> None:  # type: ignore[no-untyped-def]
    store = Store(sqlite_url)
    [result] = Runner(_config(tiny_model, RayConfig(num_actors=2)), store, show_progress=False).run()
    assert {m.name: m.value for m in result.metrics} == reference[0]
    assert _completions(store, result.run_id) == reference[1]
    loaded = store.get_run(result.run_id)["backend_info"]["loaded"]
    assert loaded["ray"]["actors"] == 2
    # the wrapped backend's own info survives the pool
    assert loaded["dtype"] == "float32" and loaded["device"] == "cpu" and "chat_template_sha256" in loaded


def test_judge_role_is_served_by_the_pool(local_ray: None, tiny_model: Path, tmp_path: Path) -> None:
    from harness.distributed import RayPool
    from harness.models.tiny import make_tiny_model

    judge = make_tiny_model(tmp_path / "judge", seed=1)

    def config(ray_config: RayConfig | None) -> RunConfig:
        return RunConfig(
            suites=[SuiteConfig(name="mtbench", limit=2, options={"max_new_tokens": 4, "judge_max_new_tokens": 6, "temperature": 0.0})],
            model=ModelConfig(path=str(tiny_model), batch_size=2),
            judge=ModelConfig(path=str(judge), batch_size=2),
            ray=ray_config,
        )

    [alone] = Runner(config(None), Store(f"sqlite:///{tmp_path / 'a.db'}"), show_progress=False).run()
    pool = RayPool(RayConfig(num_actors=2))
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        [pooled] = Runner(config(RayConfig(num_actors=2)), store, show_progress=False, ray_pool=pool).run()
    finally:
        pool.shutdown()
    assert pool.answered == {"model": 4, "judge": 4}  # 2 questions x 2 turns, each answered and judged
    assert pooled.metrics == alone.metrics


def test_killed_actor_loses_nothing(local_ray: None, tiny_model: Path, sqlite_url: str, reference) -> None:  # type: ignore[no-untyped-def]
    from harness.distributed import RayPool

    pool = RayPool(RayConfig(num_actors=2))
    original = pool.map
    calls = {"n": 0}

    def map_then_kill(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # one batch is done; kill a replica before the next is answered
            ray.kill(pool.actors[0])
        return original(*args, **kwargs)

    pool.map = map_then_kill  # type: ignore[method-assign]
    store = Store(sqlite_url)
    try:
        [result] = Runner(
            _config(tiny_model, RayConfig(num_actors=2)), store, show_progress=False, ray_pool=pool, commit_every=4
        ).run()
    finally:
        pool.shutdown()
    assert pool.lost == 1 and calls["n"] >= 2
    assert result.status == "complete" and store.count_samples(result.run_id) == 8
    assert _completions(store, result.run_id) == reference[1]
    assert {m.name: m.value for m in result.metrics} == reference[0]


def test_grid_of_models_on_one_pool(local_ray: None, tiny_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli import app
    from harness.models.tiny import make_tiny_model

    other = make_tiny_model(tmp_path / "tiny-seed1", seed=1)
    db = tmp_path / "grid.db"
    result = CliRunner().invoke(app, [
        "run", "rag-extraction", "--model", str(tiny_model), "--model", str(other), "--limit", "4",
        "--max-new-tokens", "4", "--batch-size", "2", "--ray", "--db", str(db), "--json",
    ])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert len(runs) == 2 and all(r["status"] == "complete" for r in runs)
    models = {Store(f"sqlite:///{db}").get_run(r["run_id"])["model"] for r in runs}
    assert models == {str(tiny_model), str(other)}


def test_driver_killed_then_resumed_recomputes_nothing(tiny_model: Path, tmp_path: Path, reference) -> None:  # type: ignore[no-untyped-def]
    db, log = tmp_path / "d.db", tmp_path / "asked.log"
    cmd = [sys.executable, str(REPO / "tests" / "scripts" / "slow_harness.py"), "run", "rag-extraction",
           "--model", str(tiny_model), "--limit", "8", "--max-new-tokens", "6", "--batch-size", "2",
           "--db", str(db), "--no-progress"]
    env = os.environ | {"ASKED_LOG": str(log), "SLOW_SECONDS": "0.5", "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen([*cmd, "--ray", "--ray-actors", "2"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stored: set[str] = set()
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                s = Store(f"sqlite:///{db}", read_only=True)
                runs = s.list_runs()
                stored = s.stored_sample_ids(runs[0]["id"]) if runs else set()
                s.close()
            except ConfigError:
                pass
            if stored:
                break
            time.sleep(0.1)
        assert proc.poll() is None and stored, "the driver finished (or never stored) before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray processes it started
        proc.wait()
    log.write_text("")
    done = subprocess.run([*cmd, "--json"], env=env | {"SLOW_SECONDS": "0"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["runs"]
    assert result["metrics"] == reference[0]
    assert not set(log.read_text().split()) & stored
