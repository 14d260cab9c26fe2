"""transformers backend: a base model plus an optional PEFT adapter, loaded directly (no merge).

Generation is batched with left padding; log-likelihoods follow lm-eval's tokenisation rules
(context and continuation encoded together, trailing context whitespace moved into the
continuation) so scores match lm-eval's HF model on the same inputs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

from harness.backends import resolved_dtype
from harness.backends.base import Backend
from harness.backends.paths import check_adapter_path, check_model_path, looks_local  # noqa: F401 - re-exported
from harness.backends.text import encode_pairs, render_messages, truncate_at_stop
from harness.config import ModelConfig
from harness.errors import BackendError, ConfigError
from harness.types import Completion, Request, sha256_text

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}




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
        self._prefix_ok: bool | None = None
        self._accepts_logits_to_keep: bool | None = None
        self._last_prefix: tuple[tuple[int, ...], Any] | None = None

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
            prompts = {i: render_messages(self.tokenizer, requests[i], self.config.chat_template_kwargs) for i in idxs}
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
        """lm-eval's rule: whitespace at the end of the context belongs to the continuation."""
        return encode_pairs(self.tokenizer, [(context, continuation)])[0]

    def encode_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        return encode_pairs(self.tokenizer, pairs)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        """Score continuations as lm-eval's HF model does, with less work for the same numbers.

        The model input of a request is `(context + continuation)[-(max_length + 1):][:-1]`, exactly
        as in lm-eval. Requests with the same input (MMLU's four one-token letters) share one forward
        pass; inputs that share a long token prefix (a few-shot header) run it once and attend to its
        cached keys and values; only the positions that score a continuation go through the output
        layer and the softmax.
        """
        pairs = self.encode_pairs([(r.prompt or "", r.continuation or "") for r in requests])
        rows: dict[tuple[int, ...], int] = {}  # model input -> first position whose logits are needed
        keys: list[tuple[int, ...]] = []
        for ctx, cont in pairs:
            if not cont:
                raise BackendError("log-likelihood request with an empty continuation")
            if len(cont) > self.max_length:
                raise BackendError(
                    f"continuation of {len(cont)} tokens is longer than the model's context ({self.max_length}); "
                    "scoring it in rolling windows is not supported"
                )
            row = tuple((ctx + cont)[-(self.max_length + 1) :][:-1])
            start = len(row) - len(cont)
            rows[row] = min(start, rows.get(row, start))
            keys.append(row)
        logprobs = self._row_logprobs(rows)
        out = []
        for row, (_, cont) in zip(keys, pairs, strict=True):
            scores = logprobs[row]
            piece = scores[scores.shape[0] - len(cont) :]
            target = torch.tensor(cont, device=piece.device)
            total = piece.gather(1, target[:, None]).sum().item()
            greedy = bool((piece.argmax(dim=-1) == target).all().item())
            out.append(Completion(logprob=float(total), is_greedy=greedy))
        return out

    def _row_logprobs(self, rows: dict[tuple[int, ...], int]) -> dict[tuple[int, ...], torch.Tensor]:
        """Log-softmax at positions `start..len(row)-1` of every row, batched by shared prefix."""
        result: dict[tuple[int, ...], torch.Tensor] = {}
        for prefix_len, family in self._prefix_families(rows):
            ordered = sorted(family, key=len, reverse=True)
            for begin in range(0, len(ordered), self.config.batch_size):
                batch = ordered[begin : begin + self.config.batch_size]
                starts = [rows[r] for r in batch]
                result.update(zip(batch, self._forward_rows(batch, starts, prefix_len), strict=True))
        return result

    def _prefix_families(self, rows: dict[tuple[int, ...], int]) -> list[tuple[int, list[tuple[int, ...]]]]:
        """Rows grouped by a common token prefix of at least `_MIN_PREFIX` tokens.

        In lexicographic order the common prefix of a run of rows is that of its first and last
        row, so one pass finds the families. The shared length stops before the first scored
        position of every member, so each suffix still produces all the logits it needs.
        """
        ordered = sorted(rows)
        families: list[tuple[int, list[tuple[int, ...]]]] = []
        i = 0
        while i < len(ordered):
            j = i + 1
            while j < len(ordered) and _common_prefix(ordered[i], ordered[j]) >= _MIN_PREFIX:
                j += 1
            members = ordered[i:j]
            shared = _common_prefix(members[0], members[-1]) if len(members) > 1 else 0
            shared = min([shared, *(rows[r] for r in members)])
            if shared < _MIN_PREFIX or not self._can_share_prefix():
                shared = 0
            families.append((shared, members))
            i = j
        # Rows that share nothing are batched together (by length), as lm-eval batches them.
        alone = [r for shared, members in families if shared == 0 for r in members]
        return [f for f in families if f[0] > 0] + ([(0, alone)] if alone else [])

    def _can_share_prefix(self) -> bool:
        """Prefix caching is exact for plain decoder attention; prompt-learning adapters and
        models without a dynamic KV cache take the ordinary path."""
        if self._prefix_ok is None:
            peft_config = getattr(self.model, "active_peft_config", None)
            self._prefix_ok = not bool(getattr(peft_config, "is_prompt_learning", False)) and self._supports_cache()
        return self._prefix_ok

    def _supports_cache(self) -> bool:
        try:
            from transformers import DynamicCache
            from transformers.cache_utils import DynamicLayer
        except ImportError:
            return False
        with torch.inference_mode():
            probe = torch.tensor([[self.tokenizer.pad_token_id or 0] * 2], device=self.device)
            past = self.model(input_ids=probe, use_cache=True).past_key_values
        layers = getattr(past, "layers", None)
        return isinstance(past, DynamicCache) and bool(layers) and all(type(layer) is DynamicLayer for layer in layers or [])

    def _prefix_cache(self, prefix: tuple[int, ...]) -> Any:
        """The KV cache of `prefix` (batch 1); the last one is kept, since consecutive calls of a
        run usually continue the same subject."""
        if self._last_prefix is not None and self._last_prefix[0] == prefix:
            return self._last_prefix[1]
        with torch.inference_mode():
            ids = torch.tensor([list(prefix)], device=self.device)
            past = self.model(input_ids=ids, use_cache=True, **self._keep_kwargs(torch.tensor([0]))).past_key_values
        self._last_prefix = (prefix, past)
        return past

    def _keep_kwargs(self, positions: torch.Tensor) -> dict[str, Any]:
        if self._accepts_logits_to_keep is None:
            import inspect

            base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            self._accepts_logits_to_keep = "logits_to_keep" in inspect.signature(base.forward).parameters
        return {"logits_to_keep": positions.to(self.device)} if self._accepts_logits_to_keep else {}

    def _forward_rows(self, batch: list[tuple[int, ...]], starts: list[int], prefix_len: int) -> list[torch.Tensor]:
        """One forward pass over right-padded rows (after a shared cached prefix, if any)."""
        import copy

        suffixes = [r[prefix_len:] for r in batch]
        width = max(len(s) for s in suffixes)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([list(s) + [pad] * (width - len(s)) for s in suffixes], device=self.device)
        # Right padding needs no attention mask: a causal model never looks at later positions.
        wanted = sorted({p for row, start in zip(batch, starts, strict=True) for p in range(start - prefix_len, len(row) - prefix_len)})
        kwargs = self._keep_kwargs(torch.tensor(wanted))
        if prefix_len:
            past = copy.deepcopy(self._prefix_cache(batch[0][:prefix_len]))
            past.batch_repeat_interleave(len(batch))
            kwargs.update(past_key_values=past, use_cache=True)
        try:
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids, **kwargs).logits
        except torch.OutOfMemoryError as exc:
            raise BackendError(f"out of memory scoring a batch of {len(batch)}; lower --batch-size") from exc
        index = {p: i for i, p in enumerate(wanted)} if "logits_to_keep" in kwargs else {p: p for p in wanted}
        out = []
        for b, (row, start) in enumerate(zip(batch, starts, strict=True)):
            cols = torch.tensor([index[p] for p in range(start - prefix_len, len(row) - prefix_len)], device=logits.device)
            out.append(torch.log_softmax(logits[b, cols].float(), dim=-1))
        return out


_MIN_PREFIX = 32


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
