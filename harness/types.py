"""Plain, frozen value types that flow between config, runner, backends, suites and store.

They are dataclasses rather than pydantic models on purpose: they are created in hot loops
(one per sample and request) and never come from user input directly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RequestKind = Literal["generate", "loglikelihood"]


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same bytes (for hashing)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Message:
    """One chat turn. Chat requests keep turns structured so each backend applies the model's own
    chat template (never a template guessed from the model name)."""

    role: str
    content: str


@dataclass(frozen=True)
class Sample:
    """One evaluation item, as loaded from a data file.

    `id` is stable across runs (it pairs samples for comparisons and the gate); `data` holds the
    suite-specific fields; `source` says where the item came from (file and line) for error messages.
    """

    id: str
    data: Mapping[str, Any]
    source: str = ""


@dataclass(frozen=True)
class Request:
    """One call a suite wants made to a backend.

    `kind="generate"` takes `messages` (chat, templated by the backend) or a raw `prompt`;
    `kind="loglikelihood"` scores `continuation` after `prompt`. `role` names which backend answers
    ("model" or "judge"). `sample_id` and `index` locate the request for replay backends but are not
    part of its content key: two samples asking the same thing share one cached answer.
    """

    kind: RequestKind
    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    continuation: str | None = None
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    role: str = "model"
    sample_id: str = ""
    index: int = 0

    def content(self) -> dict[str, Any]:
        """The fields that determine the answer; the cache key is built from these alone."""
        body: dict[str, Any] = {"kind": self.kind}
        if self.messages is not None:
            body["messages"] = [[m.role, m.content] for m in self.messages]
        if self.prompt is not None:
            body["prompt"] = self.prompt
        if self.kind == "loglikelihood":
            body["continuation"] = self.continuation
        else:
            body.update(
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                top_p=self.top_p,
                stop=list(self.stop),
                seed=self.seed,
            )
        return body

    def key(self, backend_fingerprint: str) -> str:
        """Content address of this request for one backend identity (the response cache key)."""
        return sha256_text(backend_fingerprint + "\n" + canonical_json(self.content()))


@dataclass(frozen=True)
class Completion:
    """A backend's answer: generated `text`, or the `logprob` of a continuation (with whether it
    was the greedy continuation, as lm-eval reports it).

    For a reasoning model `text` is the final answer only and `reasoning` the thinking before it
    (None: no split was made); `reasoning_truncated` marks an output cut inside its thinking, whose
    empty answer is never scored (harness/reasoning.py)."""

    text: str = ""
    logprob: float | None = None
    is_greedy: bool | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    reasoning: str | None = None
    reasoning_tokens: int | None = None
    reasoning_truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text}
        if self.reasoning is not None:  # only when split, so older caches and stores read the same
            out.update(reasoning=self.reasoning, reasoning_truncated=self.reasoning_truncated)
            if self.reasoning_tokens is not None:
                out["reasoning_tokens"] = self.reasoning_tokens
        if self.logprob is not None:
            out["logprob"] = self.logprob
        if self.is_greedy is not None:
            out["is_greedy"] = self.is_greedy
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Completion:
        return cls(
            text=str(data.get("text", "")),
            logprob=data.get("logprob"),
            is_greedy=data.get("is_greedy"),
            meta=dict(data.get("meta") or {}),
            reasoning=data.get("reasoning"),
            reasoning_tokens=data.get("reasoning_tokens"),
            reasoning_truncated=bool(data.get("reasoning_truncated", False)),
        )


@dataclass(frozen=True)
class SampleScore:
    """Per-sample scores. `groups` names the subsets this sample belongs to (e.g. "answerable"),
    so aggregates per subset need no suite-specific code; `details` keeps evidence (parsed answer,
    judge text) for people reading results."""

    sample_id: str
    scores: Mapping[str, float]
    groups: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricSpec:
    """A metric a suite reports; the gate reads `higher_is_better` from here, never from a guess."""

    name: str
    higher_is_better: bool = True
    description: str = ""


@dataclass(frozen=True)
class MetricValue:
    """One aggregate number with its uncertainty and sample count.

    `details` carries what is needed to reproduce or read the number (e.g. sacrebleu's signature
    string for a corpus-level BLEU); it is stored beside the metric, never folded into its value."""

    name: str
    value: float
    stderr: float | None = None
    n: int = 0
    higher_is_better: bool = True
    details: Mapping[str, Any] = field(default_factory=dict)
