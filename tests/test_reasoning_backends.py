"""A tiny reasoning model (`make-tiny --thinking`) through HF and the real vLLM CPU engine.

Its template opens `<think>` for the model (DeepSeek-R1 / Qwen3 style) unless
`enable_thinking=false` closes it empty. The random weights never write `</think>`, so with thinking
on every answer is cut inside its thinking (a counted failure), with thinking off every output is
the answer; a configured end marker taken from the model's own output splits mid-text. HF and vLLM
must split every output the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.runner import Runner
from harness.store import Store

pytestmark = pytest.mark.slow

LIMIT = 4


@pytest.fixture(scope="module")
def thinking_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.models.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-thinking"), thinking=True)


def _run(store: Store, model: Path, backend: str, **reasoning: Any) -> tuple[dict[str, float], list[tuple[Any, ...]], str]:
    config = RunConfig(
        suites=[SuiteConfig(name="rag-extraction", limit=LIMIT)],
        model=ModelConfig(path=str(model), backend=backend, device="cpu", dtype="float32", batch_size=4, **reasoning),
        generation=GenerationConfig(max_new_tokens=12),
    )
    [result] = Runner(config, store, show_progress=False).run()
    rows = store.run_samples(result.run_id)
    splits = [
        (c["text"], c.get("reasoning"), c.get("reasoning_truncated"), c.get("reasoning_tokens"))
        for r in rows for stage in r["completions"] for c in stage
    ]
    return {m.name: m.value for m in result.metrics}, splits, result.run_id


def _check_thinking_on_and_off(store: Store, model: Path, backend: str) -> dict[str, Any]:
    on_metrics, on, on_id = _run(store, model, backend)
    assert on_metrics["reasoning_truncated_rate"] == 1.0
    assert on_metrics["f1"] == 0.0 and on_metrics["exact_match"] == 0.0  # failures, not parsed
    assert all(text == "" and reasoning and truncated and tokens > 0 for text, reasoning, truncated, tokens in on)

    off_metrics, off, off_id = _run(store, model, backend, chat_template_kwargs={"enable_thinking": False})
    assert off_metrics["reasoning_truncated_rate"] == 0.0 and off_metrics["reasoning_tokens"] == 0.0
    assert all(text and reasoning == "" and not truncated for text, reasoning, truncated, _ in off)
    assert off_id != on_id  # the template switch is part of the run's identity

    # An end marker the model does write: three characters from the middle of its first thinking.
    first = on[0][1]
    marker = first[len(first) * 3 // 5 :][:3]
    tagged_metrics, tagged, _ = _run(store, model, backend, reasoning_tags=f"<think>,{marker}")
    _, reasoning, truncated, tokens = tagged[0]
    assert not truncated and reasoning and first.startswith(reasoning) and tokens >= 2
    assert tagged_metrics["reasoning_truncated_rate"] < 1.0
    # A separate thinking budget one token short of what it needed: now cut inside its thinking.
    budget_metrics, budget, _ = _run(store, model, backend, reasoning_tags=f"<think>,{marker}",
                                     reasoning_max_tokens=tokens - 1)
    assert budget[0] == ("", reasoning, True, tokens)
    return {"on": on, "off": off, "tagged": tagged, "budget": budget,
            "metrics": [on_metrics, off_metrics, tagged_metrics, budget_metrics], "marker": marker}


def test_hf_and_vllm_split_thinking_the_same_way(thinking_model: Path, tmp_path: Path, vllm_env: dict[str, str]) -> None:
    hf_store = Store(f"sqlite:///{tmp_path / 'hf.db'}")
    vllm_store = Store(f"sqlite:///{tmp_path / 'vllm.db'}")
    try:
        hf = _check_thinking_on_and_off(hf_store, thinking_model, "hf")
        vllm = _check_thinking_on_and_off(vllm_store, thinking_model, "vllm")
    finally:
        hf_store.close()
        vllm_store.close()
    assert hf["marker"] == vllm["marker"]
    for key in ("on", "off", "tagged", "budget"):
        assert hf[key] == vllm[key], key
    for a, b in zip(hf["metrics"], vllm["metrics"], strict=True):
        assert a == pytest.approx(b)
