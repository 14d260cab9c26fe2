"""The one small backend interface every generator implements.

Two batched methods, nothing else leaks out: `generate` for text and `loglikelihood` for scoring a
continuation. The runner owns caching, batching across samples, retries of whole runs and storage,
so a backend only turns requests into answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from harness.config import ModelConfig, format_validation_error
from harness.errors import ConfigError
from harness.types import Completion, Request, canonical_json, sha256_text


class Backend(ABC):
    """Base class for backends. Subclasses load lazily-imported heavy libraries in `__init__`."""

    name: str = "base"
    #: Whether answers may be stored in the response cache (a replay backend has nothing to gain).
    cacheable: bool = True
    #: Options that cannot change an answer (how requests travel: concurrency, timeouts, retries,
    #: memory). They stay out of the fingerprint, so changing one resumes the same run and its cache;
    #: every other option, including ones a backend passes through unread, changes the fingerprint.
    answer_neutral_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    @abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Answer generate requests, one Completion with `text` per request, in order."""

    @abstractmethod
    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        """Score `continuation` after `prompt`: one Completion with `logprob` and `is_greedy` each."""

    def preflight(self, requests: Sequence[Request]) -> None:  # noqa: B027 - optional hook
        """Check, before a run is created, that these requests can be answered (a replay backend
        verifies that every sample has an answer, so a gap is an input error, not a failed run)."""

    def text_tokenizer(self) -> Any | None:
        """The tokenizer that renders prompts and counts tokens locally, if any (reasoning markers and
        thinking-token counts come from it); replay backends and plain servers have none."""
        return getattr(self, "tokenizer", None)

    def info(self) -> dict[str, Any]:
        """Settings worth recording with a run (dtype actually used, chat template hash, device)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release engines, servers or GPU memory. Safe to call twice."""


OptionsT = TypeVar("OptionsT", bound=BaseModel)


def parse_options(config: ModelConfig, model: type[OptionsT]) -> OptionsT:
    """Validate `config.options` with a backend's own pydantic model (`extra="forbid"`), so an unknown
    or mistyped setting is a configuration error (exit 2), never a silent default."""
    try:
        return model.model_validate(config.options)
    except ValidationError as exc:
        raise ConfigError(f"backend '{config.backend}' options: {format_validation_error(exc)}") from None


def backend_fingerprint(
    config: ModelConfig, identity: dict[str, Any], dtype: str, neutral: frozenset[str] = frozenset()
) -> str:
    """Identity of everything that can change an answer, computed without loading the model.

    It keys the response cache and the run, so it covers the backend, model and adapter content
    hashes, the resolved dtype, length limit and backend options; batch size, device and the
    backend's `answer_neutral_options` (`neutral`) do not change answers and are left out.
    """
    options = {k: v for k, v in config.options.items() if k not in neutral}
    payload = {
        "backend": config.backend,
        "identity": identity,
        "dtype": dtype,
        "max_length": config.max_length,
        "trust_remote_code": config.trust_remote_code,
        "completions": config.completions,
        "options": options,
    }
    # Reasoning settings change answers; added only when set, so existing cache keys stay valid.
    for key in ("chat_template_kwargs", "reasoning_tags", "reasoning_max_tokens"):
        value = getattr(config, key, None)
        if value:
            payload[key] = value
    return sha256_text(canonical_json(payload))
