"""Any OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp, OpenAI itself.

Requests go out concurrently (bounded by `max_concurrency`) over async HTTP. A 429, a 5xx, a
timeout or a dropped connection is retried with exponential backoff and full jitter, honouring
`Retry-After`; any other error, or running out of retries, raises a `BackendError`, and the runner
keeps every batch that finished so rerunning the same command resumes.

Chat requests go to `/chat/completions` (the server applies the model's chat template); raw prompts
and log-likelihoods go to `/completions`. Log-likelihoods need `echo` with `logprobs`: when the model
is a local directory its tokenizer is used to send token ids split by lm-eval's rule (exactly what
the hf and vllm backends score); otherwise the text is sent and the continuation located by
character offsets. The API key is read from the environment variable named by `api_key_env` at
call time; it is never part of the configuration, the store or a log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.backends.base import Backend, parse_options
from harness.backends.text import encode_pair, truncate_at_stop
from harness.config import ModelConfig
from harness.errors import BackendError, ConfigError
from harness.types import Completion, Request

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_RETRY_AFTER_CAP_S = 300.0


class OpenAIOptions(BaseModel):
    """`ModelConfig.options` for the openai backend (`--base-url`, `--backend-option KEY=VALUE`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="API root including /v1, e.g. http://127.0.0.1:8000/v1 or https://api.openai.com/v1.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (the key itself is never configured)."
    )
    served_model_name: str | None = Field(None, description="Model name sent to the server; default: --model.")
    tokenizer: str | None = Field(
        None,
        description="Tokenizer directory for exact log-likelihood token boundaries; default: --model when it is a local "
        "directory. 'none' sends text and splits by character offsets.",
    )
    return_token_ids: bool = Field(
        False,
        description="vLLM servers: ask for the generated token ids and decode them with the local tokenizer, exactly "
        "like the hf and vllm backends (a streaming detokenizer drops an incomplete UTF-8 tail that they show as U+FFFD).",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra JSON fields sent with every request (server-specific, e.g. top_k)."
    )
    max_concurrency: int = Field(8, ge=1, le=1024, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds (connect, read and write).")
    max_retries: int = Field(6, ge=0, description="Retries of one request on 429/5xx/timeouts/dropped connections.")
    backoff_base_s: float = Field(0.5, gt=0, description="First backoff ceiling; doubles each retry (full jitter).")
    backoff_max_s: float = Field(30.0, gt=0, description="Largest backoff ceiling.")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: either delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None, rng: random.Random) -> float:
    """Full-jitter exponential backoff, but never shorter than what the server asked for."""
    jittered = rng.uniform(0.0, min(cap, base * (2**attempt)))
    if retry_after is not None:
        return max(jittered, min(retry_after, _RETRY_AFTER_CAP_S))
    return jittered


class UnsupportedLoglikelihood(ConfigError):
    """The server cannot return prompt log-probabilities, so log-likelihood suites cannot run on it."""


# Indirection so tests can observe backoff waits without sleeping.
_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


class OpenAIBackend(Backend):
    """An OpenAI-compatible HTTP server."""

    name = "openai"
    answer_neutral_options = frozenset({"api_key_env", "max_concurrency", "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s"})

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        try:
            import httpx  # noqa: F401 - fail early with the install hint
        except ImportError:
            raise ConfigError("the openai backend needs httpx: pip install 'harness-eval[openai]'") from None
        self.opts: OpenAIOptions = parse_options(config, OpenAIOptions)
        if not self.opts.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url '{self.opts.base_url}' must start with http:// or https://")
        self.base_url = self.opts.base_url.rstrip("/")
        self.model_name = self.opts.served_model_name or config.path
        if not self.model_name:
            raise ConfigError("the openai backend needs --model (the served model name)")
        if self.opts.api_key_env and not os.environ.get(self.opts.api_key_env):
            raise ConfigError(f"environment variable {self.opts.api_key_env} (named by api_key_env) is not set")
        self._tokenizer: Any = None
        self._tokenizer_loaded = False
        self._rng = random.Random(0)
        self.retries = 0

    def info(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "served_model_name": self.model_name, "retries": self.retries}

    def preflight(self, requests: Sequence[Request]) -> None:
        """Before a run row exists: is the server there at all? (A judge is asked only after the
        model answered, so an unreachable one would otherwise fail a run half way.)"""
        import httpx

        try:
            resp = httpx.get(self.base_url + "/models", headers=self._headers(), timeout=min(self.opts.timeout_s, 30.0))
        except httpx.HTTPError as exc:
            raise BackendError(
                f"server {self.base_url} is not reachable ({type(exc).__name__}: {exc}); nothing was stored"
            ) from None
        if resp.status_code in (401, 403):
            self._raise_client_error("/models", {}, resp.status_code, resp.text[:300])

    # ---- HTTP -------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.opts.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ.get(self.opts.api_key_env, '')}"
        return headers

    async def _post(self, client: Any, path: str, payload: dict[str, Any], gate: asyncio.Semaphore) -> dict[str, Any]:
        import httpx

        url = self.base_url + path
        last = ""
        for attempt in range(self.opts.max_retries + 1):
            retry_after = None
            async with gate:
                try:
                    resp = await client.post(url, json=payload)
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                else:
                    if resp.status_code == 200:
                        try:
                            body: dict[str, Any] = resp.json()
                        except ValueError:
                            raise BackendError(f"{url} answered 200 with a body that is not JSON") from None
                        return body
                    text = resp.text[:300].replace("\n", " ")
                    if resp.status_code not in RETRY_STATUS and resp.status_code < 500:
                        self._raise_client_error(path, payload, resp.status_code, text)
                    last = f"HTTP {resp.status_code}: {text}"
                    retry_after = retry_after_seconds(resp.headers.get("retry-after"))
            if attempt < self.opts.max_retries:
                self.retries += 1
                await _sleep(backoff_delay(attempt, self.opts.backoff_base_s, self.opts.backoff_max_s, retry_after, self._rng))
        raise BackendError(
            f"server {self.base_url} failed on POST {path} after {self.opts.max_retries + 1} attempts ({last}); "
            "what finished is stored: rerun the same command to resume"
        )

    def _raise_client_error(self, path: str, payload: dict[str, Any], status: int, text: str) -> None:
        if payload.get("echo") and any(w in text.lower() for w in ("echo", "logprobs", "log_probs")):
            raise UnsupportedLoglikelihood(self._no_logprobs_message(text))
        if status == 400 and "chat template" in text.lower().replace("_", " "):
            raise ConfigError(
                f"server {self.base_url} has no chat template for '{self.model_name}' ({text}); this suite sends chat "
                "messages: serve the model with a chat template (vLLM: --chat-template) or use one that ships one"
            )
        if status in (401, 403):
            hint = f" (is {self.opts.api_key_env} right?)" if self.opts.api_key_env else " (set --backend-option api_key_env=VAR)"
            raise ConfigError(f"server {self.base_url} refused the request: HTTP {status}{hint}: {text}")
        if status == 404:
            raise ConfigError(f"server {self.base_url} has no {path} or no model '{self.model_name}': HTTP 404: {text}")
        raise BackendError(f"server {self.base_url} rejected POST {path}: HTTP {status}: {text}")

    def _no_logprobs_message(self, detail: str = "") -> str:
        return (
            f"server {self.base_url} does not return prompt log-probabilities (/completions with echo and logprobs)"
            + (f": {detail}" if detail else "")
            + "; log-likelihood suites need a server that does (e.g. vLLM) or the hf/vllm backend"
        )

    def _gather(self, path: str, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import httpx

        async def main() -> list[dict[str, Any]]:
            gate = asyncio.Semaphore(self.opts.max_concurrency)
            limits = httpx.Limits(max_connections=self.opts.max_concurrency)
            timeout = httpx.Timeout(self.opts.timeout_s)
            async with httpx.AsyncClient(headers=self._headers(), timeout=timeout, limits=limits) as client:
                return list(await asyncio.gather(*(self._post(client, path, p, gate) for p in payloads)))

        return asyncio.run(main())

    # ---- generation -------------------------------------------------------------------------

    def _generate_payload(self, r: Request) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": r.max_new_tokens,
            "temperature": r.temperature,
            "top_p": r.top_p if r.temperature > 0 else 1.0,
            "seed": r.seed,
        }
        if r.stop:
            payload["stop"] = list(r.stop)
        if self.opts.return_token_ids:
            payload["return_token_ids"] = True
        payload.update(self.opts.extra_body)
        if r.messages is not None:
            payload["messages"] = [{"role": m.role, "content": m.content} for m in r.messages]
            if self.config.chat_template_kwargs:
                payload["chat_template_kwargs"] = dict(self.config.chat_template_kwargs)
            return "/chat/completions", payload
        payload["prompt"] = r.prompt or ""
        return "/completions", payload

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        by_path: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for i, r in enumerate(requests):
            path, payload = self._generate_payload(r)
            by_path.setdefault(path, []).append((i, payload))
        for path, items in by_path.items():
            bodies = self._gather(path, [p for _, p in items])
            for (i, _), body in zip(items, bodies, strict=True):
                out[i] = _server_split(body) or Completion(text=truncate_at_stop(self._text(body, path), requests[i].stop))
        return [c for c in out if c is not None]

    def text_tokenizer(self) -> Any | None:
        return self._load_tokenizer()

    def _text(self, body: dict[str, Any], path: str) -> str:
        ids = None
        if self.opts.return_token_ids:
            try:
                ids = body["choices"][0]["token_ids"]
            except (KeyError, IndexError, TypeError):
                ids = None
        tokenizer = self._load_tokenizer() if ids is not None else None
        if tokenizer is None:
            return _choice_text(body, path, self.base_url)
        text: str = tokenizer.decode(ids, skip_special_tokens=True)
        return text

    # ---- log-likelihood ---------------------------------------------------------------------

    def _load_tokenizer(self) -> Any:
        if self._tokenizer_loaded:
            return self._tokenizer
        self._tokenizer_loaded = True
        name = self.opts.tokenizer
        if name is None and self.config.path and Path(os.path.expanduser(self.config.path)).is_dir():
            name = os.path.expanduser(self.config.path)
        if name and name.lower() != "none":
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=self.config.trust_remote_code)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot load tokenizer '{name}' for log-likelihoods: {exc}") from None
        return self._tokenizer

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        tokenizer = self._load_tokenizer()
        payloads: list[dict[str, Any]] = []
        spans: list[tuple[str, int, int]] = []
        for r in requests:
            base: dict[str, Any] = {"model": self.model_name, "max_tokens": 0, "echo": True, "logprobs": 1, "temperature": 0.0}
            base |= self.opts.extra_body
            if tokenizer is not None:
                ctx, cont = encode_pair(tokenizer, r.prompt or "", r.continuation or "")
                if not cont:
                    raise BackendError("log-likelihood request with an empty continuation")
                payloads.append(base | {"prompt": ctx + cont})
                spans.append(("tokens", len(ctx), len(ctx) + len(cont)))
            else:
                context = (r.prompt or "").rstrip()
                text = (r.prompt or "") + (r.continuation or "")
                payloads.append(base | {"prompt": text})
                spans.append(("chars", len(context), len(text)))
        bodies = self._gather("/completions", payloads)
        return [self._score(body, span) for body, span in zip(bodies, spans, strict=True)]

    def _score(self, body: dict[str, Any], span: tuple[str, int, int]) -> Completion:
        try:
            lp = body["choices"][0]["logprobs"]
            token_logprobs: list[float | None] = lp["token_logprobs"]
            top: list[dict[str, float] | None] = lp.get("top_logprobs") or [None] * len(token_logprobs)
        except (KeyError, IndexError, TypeError):
            raise UnsupportedLoglikelihood(self._no_logprobs_message("the answer has no logprobs.token_logprobs")) from None
        mode, start, end = span
        if mode == "tokens":
            positions = range(start, end)
        else:
            offsets: list[int] = lp.get("text_offset") or []
            if len(offsets) != len(token_logprobs):
                raise UnsupportedLoglikelihood(self._no_logprobs_message("the answer has no text_offset per token"))
            # A token belongs to the continuation when it ends after the context does.
            n = sum(1 for o in offsets if o < end)
            ends = [*offsets[1:n], end]
            positions = range(next((i for i, e in enumerate(ends) if e > start), n), n)
        total, greedy = 0.0, True
        for i in positions:
            if i >= len(token_logprobs) or token_logprobs[i] is None:
                raise BackendError(f"server {self.base_url} returned no log-probability for prompt token {i}")
            value = float(token_logprobs[i])  # type: ignore[arg-type]
            total += value
            alternatives = top[i] if i < len(top) else None
            if alternatives:
                greedy = greedy and value >= max(alternatives.values()) - 1e-9
        return Completion(logprob=total, is_greedy=greedy)


def _choice_text(body: dict[str, Any], path: str, base_url: str) -> str:
    """The generated text of the first choice, for either endpoint."""
    try:
        choice = body["choices"][0]
        text = choice["message"]["content"] if path == "/chat/completions" else choice["text"]
    except (KeyError, IndexError, TypeError):
        raise BackendError(f"server {base_url} answered POST {path} without choices[0] text") from None
    return str(text or "")


def _server_split(body: dict[str, Any]) -> Completion | None:
    """A server that parses reasoning itself (vLLM's --reasoning-parser) returns it beside the
    answer as `reasoning_content` (or `reasoning`); an answer still null at `finish_reason: length`
    was cut inside the thinking."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        return None
    reasoning = message.get("reasoning_content", message.get("reasoning")) if isinstance(message, dict) else None
    if not isinstance(reasoning, str):
        return None
    content = message.get("content")
    truncated = content in (None, "") and choice.get("finish_reason") == "length"
    return Completion(text=str(content or ""), reasoning=reasoning, reasoning_truncated=truncated)
