"""transformers backend: a base model plus an optional PEFT adapter, loaded directly (no merge).

Generation is batched with left padding; log-likelihoods follow lm-eval's tokenisation rules
(context and continuation encoded together, trailing context whitespace moved into the
continuation) so scores match lm-eval's HF model on the same inputs.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from harness.backends import resolved_dtype
from harness.backends.base import Backend
from harness.backends.text import encode_pair, render_messages, truncate_at_stop
from harness.config import ModelConfig
from harness.errors import BackendError, ConfigError
from harness.types import Completion, Request, sha256_text

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def looks_local(path: str) -> bool:
    """A path the user clearly meant as a directory (so a missing one is an error, not a hub lookup)."""
    return path.startswith((".", "/", "~")) or path.count("/") >= 2 or Path(path).exists()


def check_model_path(path: str | None) -> str:
    """Fail early, with the path in the message, when a local model directory is missing."""
    if not path:
        raise ConfigError("no model given: pass --model PATH_OR_HUB_ID")
    expanded = os.path.expanduser(path)
    if looks_local(path) and not Path(expanded).is_dir():
        raise ConfigError(f"model directory '{path}' does not exist")
    return expanded


def check_adapter_path(adapter: str | None) -> str | None:
    if adapter is None:
        return None
    expanded = os.path.expanduser(adapter)
    if not Path(expanded).is_dir():
        raise ConfigError(f"adapter directory '{adapter}' does not exist")
    if not (Path(expanded) / "adapter_config.json").is_file():
        raise ConfigError(f"'{adapter}' is not a PEFT adapter (no adapter_config.json)")
    return expanded


class HFBackend(Backend):
    """Hugging Face transformers, float32 on CPU by default so results are exact and comparable."""

    name = "hf"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = check_model_path(config.path)
        adapter = check_adapter_path(config.adapter)
        self.device = self._pick_device(config.device)
        self.dtype_name = resolved_dtype(config)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=_DTYPES[self.dtype_name], trust_remote_code=config.trust_remote_code
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load model '{config.path}': {exc}") from None
        if adapter is not None:
            model = self._apply_adapter(model, adapter)
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_length = config.max_length or self._model_max_length()

    @staticmethod
    def _pick_device(device: str) -> torch.device:
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(device)

    def _apply_adapter(self, model: Any, adapter: str) -> Any:
        from peft import PeftModel

        try:
            return PeftModel.from_pretrained(model, adapter, is_trainable=False)
        except (RuntimeError, ValueError, KeyError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"adapter '{self.config.adapter}' does not match base model '{self.config.path}': {first_line}"
            ) from None

    def _model_max_length(self) -> int:
        cfg = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    def info(self) -> dict[str, Any]:
        template = getattr(self.tokenizer, "chat_template", None)
        return {
            "dtype": self.dtype_name,
            "device": str(self.device),
            "max_length": self.max_length,
            "chat_template_sha256": sha256_text(template) if template else None,
            "model_class": type(self.model).__name__,
        }

    # ---- generation -------------------------------------------------------------------------

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[(r.max_new_tokens, r.temperature, r.top_p, r.seed)].append(i)
        for (max_new, temperature, top_p, seed), idxs in groups.items():
            prompts = {i: render_messages(self.tokenizer, requests[i]) for i in idxs}
            encoded = {i: self.tokenizer(prompts[i], add_special_tokens=not requests[i].messages)["input_ids"] for i in idxs}
            order = sorted(idxs, key=lambda i: -len(encoded[i]))
            for start in range(0, len(order), self.config.batch_size):
                batch = order[start : start + self.config.batch_size]
                texts = self._generate_batch([encoded[i] for i in batch], max_new, temperature, top_p, seed)
                for i, text in zip(batch, texts, strict=True):
                    out[i] = Completion(text=truncate_at_stop(text, requests[i].stop))
        return [c for c in out if c is not None]

    def _generate_batch(
        self, ids: list[list[int]], max_new: int, temperature: float, top_p: float, seed: int
    ) -> list[str]:
        keep = max(1, self.max_length - max_new)
        ids = [x[-keep:] for x in ids]
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": pad}
        if temperature > 0:
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        try:
            with torch.inference_mode():
                generated = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        except torch.OutOfMemoryError as exc:
            raise BackendError(f"out of memory generating a batch of {len(ids)}; lower --batch-size") from exc
        new_tokens = generated[:, width:]
        return list(self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True))

    # ---- log-likelihood ---------------------------------------------------------------------

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's tokenisation rule, shared with the other backends (harness/backends/text.py)."""
        return encode_pair(self.tokenizer, context, continuation)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        pairs = [self.encode_pair(r.prompt or "", r.continuation or "") for r in requests]
        order = sorted(range(len(requests)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        out: list[Completion | None] = [None] * len(requests)
        for start in range(0, len(order), self.config.batch_size):
            batch = order[start : start + self.config.batch_size]
            for i, result in zip(batch, self._loglikelihood_batch([pairs[i] for i in batch]), strict=True):
                out[i] = result
        return [c for c in out if c is not None]

    def _loglikelihood_batch(self, pairs: list[tuple[list[int], list[int]]]) -> list[Completion]:
        rows = []
        for ctx, cont in pairs:
            if not cont:
                raise BackendError("log-likelihood request with an empty continuation")
            rows.append((ctx + cont)[-(self.max_length + 1) :][:-1])
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
        attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=attention).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        results = []
        for row, (row_ids, (_, cont)) in enumerate(zip(rows, pairs, strict=True)):
            end = len(row_ids)
            start = end - len(cont)
            piece = logprobs[row, start:end]
            target = torch.tensor(cont, device=self.device)
            total = piece.gather(1, target[:, None]).sum().item()
            greedy = bool((piece.argmax(dim=-1) == target).all().item())
            results.append(Completion(logprob=float(total), is_greedy=greedy))
        return results
