"""`harness run ... --json` prints exactly one JSON document on stdout with every backend (the real
vLLM engine at its default INFO log level, HF, an OpenAI-compatible vLLM server, a completions
file, and Ray); libraries' logs go to stderr. Each case is the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, VLLMServer, require_module

pytestmark = pytest.mark.slow


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = os.environ | {"PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    full_env.pop("VLLM_LOGGING_LEVEL", None)  # vLLM's default INFO: the logs this test keeps off stdout
    full_env |= env or {}
    return subprocess.run([sys.executable, "-m", "harness", "run", *args, "--json"], env=full_env,
                          capture_output=True, text=True, cwd=REPO, timeout=600)


def one_document(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    document: dict[str, object] = json.loads(proc.stdout)  # fails on any stray line
    assert proc.stdout.strip().startswith("{") and proc.stdout.strip().endswith("}")
    return document


def test_vllm_engine_logs_stay_off_stdout(tiny_model: Path, vllm_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in vllm_env.items() if k != "VLLM_LOGGING_LEVEL"}
    proc = run_cli(["rag-extraction", "--backend", "vllm", "--model", str(tiny_model), "--limit", "2",
                    "--max-new-tokens", "4", "--device", "cpu", "--db", str(tmp_path / "v.db")], env)
    [run] = one_document(proc)["runs"]  # type: ignore[misc]
    assert run["status"] == "complete"
    assert "INFO" in proc.stderr, "vLLM logged nothing at INFO: this test would prove nothing"


def test_hf_file_and_server_backends_print_one_document(
    tiny_model: Path, vllm_server: VLLMServer, tmp_path: Path
) -> None:
    common = ["rag-extraction", "--limit", "2", "--max-new-tokens", "4", "--db", str(tmp_path / "h.db")]
    [hf_run] = one_document(run_cli([*common, "--model", str(tiny_model), "--backend", "hf"]))["runs"]  # type: ignore[misc]
    served = one_document(run_cli([*common, "--model", str(tiny_model), "--backend", "openai", "--base-url", vllm_server.url]))
    assert served["runs"][0]["status"] == "complete"  # type: ignore[index]
    replay = run_cli(["rag-extraction", "--limit", "2", "--backend", "file", "--completions", f"run:{hf_run['run_id']}",
                      "--db", str(tmp_path / "h.db")])
    assert one_document(replay)["runs"][0]["metrics"] == hf_run["metrics"]  # type: ignore[index]


def test_ray_run_prints_one_document(tiny_model: Path, tmp_path: Path) -> None:
    require_module("ray", "harness-eval[ray]")
    proc = run_cli(["rag-extraction", "--model", str(tiny_model), "--limit", "2", "--max-new-tokens", "4",
                    "--ray", "--ray-actors", "1", "--db", str(tmp_path / "r.db")])
    assert one_document(proc)["runs"][0]["status"] == "complete"  # type: ignore[index]
