"""Issue 17 on the real vLLM engine: a run crashed half way, rerun with other memory settings
(answer-neutral options), resumes the same run and asks nothing twice. It shares the session's one
engine (those settings do not change the engine on a CPU), so it starts none of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.backends.vllm as vllm_module
from harness.backends.base import Backend
from harness.config import ModelConfig
from tests.test_run_state import resume_with_changed_settings

pytestmark = pytest.mark.slow


def test_vllm_rerun_with_changed_memory_settings_resumes(tiny_model: Path, vllm_backend: Backend, sqlite_url: str) -> None:
    engines = len(vllm_module._ENGINES)
    common = {"path": str(tiny_model), "backend": "vllm", "device": "cpu", "dtype": "float32"}
    first = ModelConfig(**common, batch_size=2)
    second = ModelConfig(**common, batch_size=4, options={"gpu_memory_utilization": 0.5, "cpu_kvcache_space_gb": 1})
    _, asked_again = resume_with_changed_settings(sqlite_url, first, second)
    assert len(asked_again) == 8
    assert len(vllm_module._ENGINES) == engines, "the rerun started an engine of its own"
