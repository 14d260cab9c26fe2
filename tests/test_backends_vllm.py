"""Real vLLM on the CPU: an in-process engine and an OpenAI-compatible server (one of each per session).

Parity: on the tiny model in float32, HF, vLLM and the vLLM server (through the openai backend)
give the same greedy text and log-likelihoods within 1e-3. Faults: the server killed mid-run ends
the run with a clear error, keeps what finished, and the same command resumes after a restart
without asking for stored samples again. LoRA adapters are served unmerged and change the answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.backends import create_backend
from harness.backends.base import Backend
from harness.cli import app
from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.errors import BackendError, ConfigError
from harness.runner import Runner
from harness.store import Store
from harness.types import Completion, Message, Request
from suites import create_suite
from tests.conftest import VLLMServer

pytestmark = pytest.mark.slow

RAW_PROMPTS = [
    "The capital of France is",
    "Water boils at 100 degrees",
    "Translate the following sentence from German to English. Der Hund schläft.",
    "Product: a stainless steel kettle, 1.7 litres,",
    "0 1 2 3 4 5",
    "I cannot help with that request.",
    "Please rate the response on a scale of 1 to 10.",
    "The following are multiple choice questions (with answers) about science.",
]


def generate_requests() -> list[Request]:
    """The bundled RAG questions through the chat template, plus raw prompts (completions endpoint)."""
    suite = create_suite("rag-extraction", {}, GenerationConfig(max_new_tokens=24))
    chat = [r for s in suite.load(suite.default_data()) for r in suite.requests(s, 0, [])]
    raw = [Request(kind="generate", prompt=p, max_new_tokens=24) for p in RAW_PROMPTS]
    return chat + raw


def loglikelihood_requests() -> list[Request]:
    contexts = [
        "Question: What is the capital of France?\nAnswer:",
        "The quick brown fox jumps over the ",  # trailing space moves into the continuation
        "A. B. C. D. The answer is",
        "",  # empty context: scored after BOS
    ]
    continuations = [" Paris", " C", "lazy dog.", " 1.7 litres of water"]
    return [Request(kind="loglikelihood", prompt=c, continuation=k) for c in contexts for k in continuations]


@pytest.fixture(scope="module")
def hf(tiny_model: Path) -> Backend:
    return create_backend(ModelConfig(path=str(tiny_model), backend="hf", device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def served(tiny_model: Path, vllm_server: VLLMServer) -> Backend:
    options = {"base_url": vllm_server.url, "return_token_ids": True}
    return create_backend(ModelConfig(path=str(tiny_model), backend="openai", options=options))


@pytest.fixture(scope="module")
def served_text(tiny_model: Path, vllm_server: VLLMServer) -> Backend:
    """The server's own detokenised text (what a hosted API returns)."""
    return create_backend(ModelConfig(path=str(tiny_model), backend="openai", options={"base_url": vllm_server.url}))


def agreement(a: Sequence[Completion], b: Sequence[Completion]) -> float:
    return sum(x.text == y.text for x, y in zip(a, b, strict=True)) / len(a)


def test_greedy_text_matches_hf_in_process_and_over_http(
    hf: Backend, vllm_backend: Backend, served: Backend, served_text: Backend
) -> None:
    requests = generate_requests()
    assert len(requests) >= 30
    by_hf = hf.generate(requests)
    by_vllm = vllm_backend.generate(requests)
    by_server = served.generate(requests)
    assert len({c.text for c in by_hf}) > 5, "degenerate outputs would make parity meaningless"
    assert agreement(by_hf, by_vllm) >= 0.95
    assert agreement(by_hf, by_server) >= 0.95
    # The server's own text differs only where the random model stops inside a UTF-8 character:
    # its streaming detokenizer drops the incomplete tail that a one-shot decode shows as U+FFFD.
    for a, b in zip(by_hf, served_text.generate(requests), strict=True):
        assert a.text == b.text or a.text.rstrip("\ufffd") == b.text.rstrip("\ufffd")


def test_loglikelihoods_match_hf(hf: Backend, vllm_backend: Backend, served: Backend) -> None:
    """In-process vLLM within 1e-4 of HF (float32); the server, through text offsets, within 1e-3."""
    requests = loglikelihood_requests()
    by_hf = hf.loglikelihood(requests)
    for other, tolerance in ((vllm_backend.loglikelihood(requests), 1e-4), (served.loglikelihood(requests), 1e-3)):
        for a, b, r in zip(by_hf, other, requests, strict=True):
            assert b.logprob == pytest.approx(a.logprob, abs=tolerance), (r.prompt, r.continuation)
            assert a.is_greedy == b.is_greedy
    assert len({round(c.logprob or 0.0, 2) for c in by_hf}) > len(requests) // 2, "degenerate scores"


def mmlu_like_requests(tokenizer: Any) -> list[Request]:
    """Few-shot contexts longer than a KV-cache block, shared by questions, with single-token letter
    choices and multi-token answers; one answer is asked twice and one context ends just before a
    block boundary, so the prefix cache reaches into a continuation and that request must be redone."""
    shots = "".join(f"Question {i}: which planet is number {i}?\nAnswer: {'ABCD'[i % 4]}\n\n" for i in range(12))
    requests = []
    for q in range(3):
        context = f"{shots}Question: what is {q} + {q}?\nAnswer:"
        requests += [Request(kind="loglikelihood", prompt=context, continuation=f" {letter}") for letter in "ABCD"]
        requests += [Request(kind="loglikelihood", prompt=context, continuation=f" {q + q} apples and {q} pears")]
    requests.append(requests[4])
    # a context 2 tokens short of 128 with a 20-token continuation: a cached block covers its start
    ids = tokenizer(shots, add_special_tokens=False)["input_ids"][:126]
    short = tokenizer.decode(ids)
    requests += [Request(kind="loglikelihood", prompt=short, continuation=" and then the answer is number four, " * 3)] * 2
    return requests


def test_grouped_loglikelihoods_are_exact_and_read_the_prefix_cache(
    hf: Backend, vllm_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = mmlu_like_requests(hf.tokenizer)  # type: ignore[attr-defined]
    sent: list[tuple[int, list[Any]]] = []
    original = vllm_backend._run  # type: ignore[attr-defined]

    def spy(prompts: list[list[int]], params: list[Any]) -> list[Any]:
        outputs = original(prompts, params)
        sent.append((len(prompts), [(p, o.num_cached_tokens) for p, o in zip(params, outputs, strict=True)]))
        return outputs

    monkeypatch.setattr(vllm_backend, "_run", spy)
    by_vllm = vllm_backend.loglikelihood(requests)
    for a, b, r in zip(hf.loglikelihood(requests), by_vllm, requests, strict=True):
        assert b.logprob == pytest.approx(a.logprob, abs=1e-4), (r.prompt[-20:], r.continuation)
        assert a.is_greedy == b.is_greedy
    params = [p for _, batch in sent for p, _ in batch]
    next_token = [p for p in params if p.logprob_token_ids]
    assert len(next_token) == 3, "one request scores the four letters of each question"
    assert sorted(len(p.logprob_token_ids) for p in next_token) == [4, 4, 4]
    assert sum(cached for _, batch in sent for _, cached in batch) > 0, "the prefix cache was never read"
    assert [p.skip_reading_prefix_cache for p in params].count(True) >= 1, "the cache-overlap retry never ran"


def test_server_loglikelihood_by_character_offsets_without_a_tokenizer(
    tiny_model: Path, vllm_server: VLLMServer, hf: Backend
) -> None:
    """Hosted APIs have no local tokenizer: the continuation is found by text offsets instead."""
    served = create_backend(
        ModelConfig(path=str(tiny_model), backend="openai", options={"base_url": vllm_server.url, "tokenizer": "none"})
    )
    requests = [r for r in loglikelihood_requests() if r.prompt]
    for r, a, b in zip(requests, hf.loglikelihood(requests), served.loglikelihood(requests), strict=True):
        ctx, cont = hf.encode_pair(r.prompt or "", r.continuation or "")  # type: ignore[attr-defined]
        whole = hf.tokenizer(r.prompt + r.continuation, add_special_tokens=False)["input_ids"]  # type: ignore[attr-defined]
        if whole == ctx + cont:  # token boundaries agree with the character boundary: same number
            assert b.logprob == pytest.approx(a.logprob, abs=1e-3)


def make_adapter(base: Path, out: Path) -> Path:
    """A rank-4 LoRA with non-zero weights (peft's default init would leave the model unchanged)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(4.0)
    peft_model.save_pretrained(out)
    return out


def test_lora_adapter_is_served_unmerged(
    tiny_model: Path, tmp_path: Path, hf: Backend, vllm_backend: Backend
) -> None:
    import harness.backends.vllm as vllm_module

    adapter = make_adapter(tiny_model, tmp_path / "adapter")
    cfg = ModelConfig(path=str(tiny_model), adapter=str(adapter), device="cpu", dtype="float32")
    hf_lora = create_backend(cfg.model_copy(update={"backend": "hf"}))
    engines = len(vllm_module._ENGINES)
    vllm_lora = create_backend(cfg.model_copy(update={"backend": "vllm"}))
    try:
        requests = loglikelihood_requests()
        base = vllm_backend.loglikelihood(requests)
        with_hf = hf_lora.loglikelihood(requests)
        with_vllm = vllm_lora.loglikelihood(requests)
        for a, b in zip(with_hf, with_vllm, strict=True):
            assert b.logprob == pytest.approx(a.logprob, abs=1e-4)
            assert a.is_greedy == b.is_greedy
        # many requests in one call: the batch that crashed the CPU LoRA kernels with prompt logprobs
        mc = mmlu_like_requests(hf.tokenizer)  # type: ignore[attr-defined]
        for a, b in zip(hf_lora.loglikelihood(mc), vllm_lora.loglikelihood(mc), strict=True):
            assert b.logprob == pytest.approx(a.logprob, abs=1e-4)
        assert sum(abs((a.logprob or 0) - (b.logprob or 0)) > 0.05 for a, b in zip(base, with_vllm, strict=True)) >= len(requests) // 2
        gen = generate_requests()[:12]
        assert agreement(hf_lora.generate(gen), vllm_lora.generate(gen)) >= 0.9
        assert agreement(vllm_backend.generate(gen), vllm_lora.generate(gen)) < 1.0
    finally:
        vllm_lora.close()
    assert len(vllm_module._ENGINES) == engines


def test_cli_run_on_vllm_matches_hf_and_reuses_the_engine(tiny_model: Path, vllm_backend: Backend, sqlite_url: str) -> None:
    import harness.backends.vllm as vllm_module

    engines = len(vllm_module._ENGINES)
    runs = {}
    for backend in ("hf", "vllm"):
        args = ["run", "rag-extraction", "--backend", backend, "--model", str(tiny_model), "--limit", "8",
                "--max-new-tokens", "16", "--db", sqlite_url, "--json"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        runs[backend] = json.loads(result.stdout)["runs"][0]
    assert len(vllm_module._ENGINES) == engines
    assert runs["vllm"]["metrics"] == runs["hf"]["metrics"]
    store = Store(sqlite_url)
    try:
        run = store.get_run(runs["vllm"]["run_id"])
        assert run["backend"] == "vllm" and run["backend_info"]["loaded"]["dtype"] == "float32"
        assert run["backend_info"]["loaded"]["engine"]["enable_prefix_caching"] is True
        texts = {b: [row["completions"][0][0]["text"] for row in store.run_samples(runs[b]["run_id"])] for b in runs}
        assert texts["vllm"] == texts["hf"]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [({"tensor_parallel_sise": 2}, "tensor_parallel_sise"), ({"gpu_memory_utilization": 2}, "gpu_memory_utilization")],
)
def test_bad_vllm_options_are_config_errors(tiny_model: Path, vllm_env: dict[str, str], options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_backend(ModelConfig(path=str(tiny_model), backend="vllm", options=options))


class KillingBackend(Backend):
    """Delegates to a real backend, records what it is asked and can kill the server before a call."""

    name = "openai"

    def __init__(self, inner: Backend, server: VLLMServer | None = None, kill_on_call: int = 0) -> None:
        super().__init__(inner.config)
        self.inner = inner
        self.server = server
        self.kill_on_call = kill_on_call
        self.calls = 0
        self.asked: list[str] = []

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self.calls += 1
        if self.server is not None and self.calls == self.kill_on_call:
            self.server.kill()
        self.asked.extend(r.sample_id for r in requests)
        return self.inner.generate(requests)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        raise AssertionError("not used")


@pytest.fixture
def restarts(vllm_server: VLLMServer) -> Iterator[VLLMServer]:
    """Whatever a test does to the session's server, it is running again afterwards."""
    yield vllm_server
    if not vllm_server.running:
        vllm_server.start()


def test_server_killed_mid_run_then_the_same_command_resumes(tiny_model: Path, restarts: VLLMServer, sqlite_url: str) -> None:
    server = restarts
    config = RunConfig(
        suites=[SuiteConfig(name="rag-extraction")],
        model=ModelConfig(path=str(tiny_model), backend="openai", batch_size=2,
                          options={"base_url": server.url, "max_retries": 2, "backoff_base_s": 0.05}),
        generation=GenerationConfig(max_new_tokens=8),
    )
    first: list[KillingBackend] = []

    def killing(cfg: ModelConfig) -> Backend:
        # call 1 is the single request asked before the run row (capability check); batch_size 2:
        # calls 2-9 answer the rest of the first commit batch (16 samples); kill before call 10
        first.append(KillingBackend(create_backend(cfg), server, kill_on_call=10))
        return first[-1]

    store = Store(sqlite_url)
    try:
        with pytest.raises(BackendError) as failure:
            Runner(config, store, backend_factory=killing, show_progress=False).run()
        message = str(failure.value)
        assert server.url in message and "rerun the same command" in message
        (run,) = store.list_runs()
        assert run["status"] == "failed" and server.url in run["error"]
        stored = store.stored_sample_ids(run["id"])
        assert len(stored) == 16  # the first batch (commit_every = 16) finished before the kill

        server.start()
        second: list[KillingBackend] = []

        def counting(cfg: ModelConfig) -> Backend:
            second.append(KillingBackend(create_backend(cfg)))
            return second[-1]

        (result,) = Runner(config, store, backend_factory=counting, show_progress=False).run()
        assert result.run_id == run["id"] and result.status == "complete"
        assert result.n_samples == 24 and result.reused == 16 and result.computed == 8
        assert set(second[0].asked).isdisjoint(stored) and len(set(second[0].asked)) == 8
        assert store.get_run(run["id"])["status"] == "complete"
    finally:
        store.close()


def test_chat_requests_use_the_servers_template_like_hf(hf: Backend, served: Backend) -> None:
    request = Request(kind="generate", messages=(Message("system", "Be brief."), Message("user", "Capital of France?")),
                      max_new_tokens=16)
    assert served.generate([request])[0].text == hf.generate([request])[0].text
