"""The transformers backend on the tiny local model: batching must not change answers, adapters
must change them (and be recorded), and mismatched adapters fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.backends.hf import HFBackend
from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.errors import ConfigError
from harness.runner import Runner
from harness.store import Store
from harness.types import Message, Request

PROMPTS = ["The capital of France is", "Water boils at", "Hello", "A much longer prompt about a blender with a glass jar and"]


def _gen(prompts: list[str], chat: bool = False) -> list[Request]:
    if chat:
        return [Request(kind="generate", messages=(Message("user", p),), max_new_tokens=12) for p in prompts]
    return [Request(kind="generate", prompt=p, max_new_tokens=12) for p in prompts]


def make_adapter(base: Path, out: Path, seed: int = 1) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, cfg)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def backend(tiny_model: Path) -> HFBackend:
    return HFBackend(ModelConfig(path=str(tiny_model), batch_size=3))


@pytest.mark.parametrize("chat", [False, True])
def test_batched_generation_equals_one_by_one(tiny_model: Path, backend: HFBackend, chat: bool) -> None:
    single = HFBackend(ModelConfig(path=str(tiny_model), batch_size=1))
    batched = [c.text for c in backend.generate(_gen(PROMPTS, chat))]
    alone = [c.text for c in single.generate(_gen(PROMPTS, chat))]
    assert batched == alone
    assert all(isinstance(t, str) for t in batched)


def test_stop_sequences_cut_text(backend: HFBackend) -> None:
    [full] = backend.generate(_gen(["Hello"]))
    assert full.text, "the random model should say something"
    stop = full.text[len(full.text) // 2 :][:2] or full.text[:1]
    [cut] = backend.generate([Request(kind="generate", prompt="Hello", max_new_tokens=12, stop=(stop,))])
    assert stop not in cut.text and full.text.startswith(cut.text)


def test_loglikelihood_matches_a_manual_forward_pass(tiny_model: Path, backend: HFBackend) -> None:
    reqs = [Request(kind="loglikelihood", prompt=p, continuation=" Paris") for p in PROMPTS]
    results = backend.loglikelihood(reqs)
    tok, model = backend.tokenizer, backend.model
    for req, res in zip(reqs, results, strict=True):
        ctx, cont = backend.encode_pair(req.prompt or "", req.continuation or "")
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].float(), -1)
        expected = sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))
        assert res.logprob == pytest.approx(expected, abs=1e-4)
        greedy = all(logp[len(ctx) - 1 + i].argmax().item() == t for i, t in enumerate(cont))
        assert res.is_greedy == greedy
    assert tok is not None


def test_trailing_context_space_moves_to_continuation(backend: HFBackend) -> None:
    a = backend.loglikelihood([Request(kind="loglikelihood", prompt="Answer: ", continuation="A")])[0]
    b = backend.loglikelihood([Request(kind="loglikelihood", prompt="Answer:", continuation=" A")])[0]
    assert a.logprob == pytest.approx(b.logprob)


def test_info_records_template_and_dtype(backend: HFBackend) -> None:
    info = backend.info()
    assert info["dtype"] == "float32" and info["device"] == "cpu"
    assert info["chat_template_sha256"] and len(info["chat_template_sha256"]) == 64


def test_adapter_changes_outputs_and_is_recorded(tiny_model: Path, tmp_path: Path, sqlite_url: str) -> None:
    adapter = make_adapter(tiny_model, tmp_path / "adapter")
    base = HFBackend(ModelConfig(path=str(tiny_model)))
    tuned = HFBackend(ModelConfig(path=str(tiny_model), adapter=str(adapter)))
    req = [Request(kind="loglikelihood", prompt="The capital of France is", continuation=" Paris")]
    assert base.loglikelihood(req)[0].logprob != pytest.approx(tuned.loglikelihood(req)[0].logprob, abs=1e-6)

    store = Store(sqlite_url)
    cfg = lambda a: RunConfig(  # noqa: E731
        suites=[SuiteConfig(name="rag-extraction", limit=2)],
        model=ModelConfig(path=str(tiny_model), adapter=a),
        generation=GenerationConfig(max_new_tokens=4),
    )
    [plain] = Runner(cfg(None), store, show_progress=False).run()
    [with_adapter] = Runner(cfg(str(adapter)), store, show_progress=False).run()
    run = store.get_run(with_adapter.run_id)
    assert run["adapter"] == str(adapter) and run["adapter_hash"]
    assert run["fingerprint"] != store.get_run(plain.run_id)["fingerprint"]  # never served from the base's cache
    assert run["backend_info"]["loaded"]["chat_template_sha256"]


def test_adapter_for_another_base_is_rejected(tiny_model: Path, tmp_path: Path) -> None:
    from harness.models.tiny import make_tiny_model

    other = make_tiny_model(tmp_path / "wide", hidden_size=256, heads=4)
    adapter = make_adapter(other, tmp_path / "wide-adapter")
    with pytest.raises(ConfigError, match="does not match base model"):
        HFBackend(ModelConfig(path=str(tiny_model), adapter=str(adapter)))


def test_not_an_adapter_directory(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a PEFT adapter"):
        HFBackend(ModelConfig(path=str(tiny_model), adapter=str(tmp_path / "empty")))


def test_tiny_model_is_deterministic(tmp_path: Path, tiny_model: Path) -> None:
    from harness.models.tiny import make_tiny_model
    from harness.provenance import directory_hash

    again = make_tiny_model(tmp_path / "again")
    assert (again / "config.json").read_text() == (tiny_model / "config.json").read_text()
    assert directory_hash(again / "model.safetensors") == directory_hash(tiny_model / "model.safetensors")
    cfg = (again / "config.json").read_text()
    assert '"head_dim": 64' in cfg
