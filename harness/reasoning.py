"""Reasoning models: split the model's thinking from its final answer, once, after every backend.

Models such as Qwen3, DeepSeek-R1 distills and SmolLM3 write `<think>...</think>` before they
answer. Suites must score the answer only, so the runner passes every generated text through
`ReasoningLayer` before it is cached or scored: the answer becomes `Completion.text`, the thinking
`Completion.reasoning`. An output that never leaves its reasoning (cut at the token budget inside
it) gets an empty answer and `reasoning_truncated=True`; the runner scores that sample as a failure
without parsing anything.

Markers come from `--reasoning-tags` (a preset name or `START,END`), else from the tokenizer: a
vocabulary holding `<think>` and `</think>` means the think format. Stop sequences apply to the
answer only (a stop string inside the thinking must not cut it), so the layer asks the backend
without them and cuts the answer itself. `--reasoning-max-tokens` gives the thinking its own budget
on top of the answer's `max_new_tokens` where a local tokenizer can count (hf, vllm, openai with a
tokenizer): the backend generates up to both budgets, thinking over its budget counts as truncated
and the answer is cut at its own budget, which under greedy decoding is exactly what two separate
budgets give.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.types import Completion, Request

#: Named marker pairs: the answer follows END. `harmony` is the channel format (analysis, then final).
PRESETS: dict[str, tuple[str, str]] = {
    "think": ("<think>", "</think>"),
    "harmony": ("<|channel|>analysis<|message|>", "<|channel|>final<|message|>"),
}
#: `--reasoning-tags` values that turn splitting off even when the tokenizer has markers.
OFF = ("none", "off")
#: Chat-template switches that ask for thinking; a log-likelihood suite refuses them.
THINKING_SWITCHES = ("enable_thinking", "thinking", "reasoning_effort")


@dataclass(frozen=True)
class Markers:
    """Where thinking starts and where the answer begins."""

    start: str
    end: str


def parse_tags(value: str | None) -> Markers | None:
    """`--reasoning-tags`: a preset name, `START,END`, `none`/`off`, or None (detect from the tokenizer).

    Raises ValueError with a readable message (pydantic turns it into a field error)."""
    if value is None or value.strip().lower() in OFF:
        return None
    if value in PRESETS:
        return Markers(*PRESETS[value])
    start, sep, end = value.partition(",")
    if not sep or not start.strip() or not end.strip():
        known = ", ".join([*PRESETS, *OFF])
        raise ValueError(f"'{value}' is not START,END (e.g. '<think>,</think>') or one of: {known}")
    return Markers(start.strip(), end.strip())


def detect_markers(tokenizer: Any) -> Markers | None:
    """The think markers when the tokenizer's vocabulary holds both tokens (Qwen3, R1 distills, SmolLM3)."""
    if tokenizer is None:
        return None
    try:
        vocab = tokenizer.get_vocab()
    except (AttributeError, NotImplementedError):
        return None
    start, end = PRESETS["think"]
    return Markers(start, end) if start in vocab and end in vocab else None


def split(text: str, markers: Markers, opened: bool = False) -> tuple[str, str, bool]:
    """(reasoning, answer, truncated) of one generated text.

    `opened` says the prompt itself ended with the start marker (templates that open the thinking
    for the model), so an output without the end marker is all thinking."""
    end = text.find(markers.end)
    if end != -1:
        reasoning = text[:end]
        start = reasoning.find(markers.start)
        if start != -1:
            reasoning = reasoning[start + len(markers.start) :]
        return reasoning.strip(), text[end + len(markers.end) :].lstrip(), False
    start = text.find(markers.start)
    if start != -1:
        return text[start + len(markers.start) :].strip(), "", True
    if opened:
        return text.strip(), "", True
    return "", text, False


def thinking_requested(template_kwargs: Mapping[str, Any]) -> list[str]:
    """The chat-template switches in `template_kwargs` that ask for thinking (truthy values)."""
    return [k for k in THINKING_SWITCHES if template_kwargs.get(k) not in (None, False, "false", "False", 0, "none")]


def parse_template_kwargs(values: Sequence[str]) -> dict[str, Any]:
    """`--chat-template-kwargs enable_thinking=false` (repeatable, or comma-separated), values as YAML scalars."""
    import yaml

    out: dict[str, Any] = {}
    for value in values:
        for item in value.split(","):
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--chat-template-kwargs '{item}': expected KEY=VALUE")
            try:
                out[key.strip()] = yaml.safe_load(raw) if raw.strip() else raw
            except yaml.YAMLError:
                out[key.strip()] = raw
    return out


def reasoning_settings(tags: str | None, max_tokens: int | None, template_kwargs: Sequence[str]) -> dict[str, Any]:
    """The ModelConfig fields the `--reasoning-*` and `--chat-template-kwargs` flags set (only those given)."""
    out: dict[str, Any] = {}
    if tags is not None:
        out["reasoning_tags"] = tags
    if max_tokens is not None:
        out["reasoning_max_tokens"] = max_tokens
    if template_kwargs:
        out["chat_template_kwargs"] = parse_template_kwargs(template_kwargs)
    return out


def shown_to_judge(completion: Completion, show_reasoning: bool) -> str:
    """What a judge reads of an answer: the answer alone, or (asked for) the thinking before it."""
    if not show_reasoning or not completion.reasoning:
        return completion.text
    return f"[reasoning]\n{completion.reasoning}\n[/reasoning]\n\n{completion.text}"


class ReasoningLayer:
    """Splits one role's generated texts; inactive (a pass-through) when no markers apply."""

    def __init__(self, config: Any, backend: Any) -> None:
        self.tokenizer = backend.text_tokenizer() if hasattr(backend, "text_tokenizer") else None
        self.template_kwargs: dict[str, Any] = dict(getattr(config, "chat_template_kwargs", None) or {})
        tags = getattr(config, "reasoning_tags", None)
        off = tags is not None and tags.strip().lower() in OFF
        self.markers = None if off else (parse_tags(tags) or detect_markers(self.tokenizer))
        self.budget: int | None = getattr(config, "reasoning_max_tokens", None)
        if self.budget is not None:
            if self.markers is None:
                raise ConfigError("--reasoning-max-tokens needs reasoning markers: pass --reasoning-tags")
            if self.tokenizer is None:
                raise ConfigError(
                    f"--reasoning-max-tokens needs a local tokenizer to count thinking tokens; the "
                    f"'{config.backend}' backend has none here (hf and vllm do; openai with option tokenizer=DIR)"
                )

    @property
    def active(self) -> bool:
        return self.markers is not None

    def prepare(self, requests: Sequence[Request]) -> list[Request]:
        """What the backend is asked: no stop sequences (they apply to the answer) and room for both budgets."""
        if not self.active:
            return list(requests)
        extra = self.budget or 0
        return [dataclasses.replace(r, stop=(), max_new_tokens=r.max_new_tokens + extra) for r in requests]

    def finish(self, requests: Sequence[Request], completions: Sequence[Completion]) -> list[Completion]:
        """Each raw completion split into reasoning and answer (already split ones are kept)."""
        if not self.active:
            return list(completions)
        return [self._split_one(r, c) for r, c in zip(requests, completions, strict=True)]

    def _split_one(self, request: Request, completion: Completion) -> Completion:
        from harness.backends.text import render_messages, truncate_at_stop

        if completion.reasoning is not None:  # split by the backend (a server's reasoning parser) or replayed
            if completion.reasoning_truncated:
                return completion
            return dataclasses.replace(completion, text=truncate_at_stop(completion.text, request.stop))
        assert self.markers is not None
        prompt = request.prompt or ""
        if self.tokenizer is not None and request.messages is not None:
            prompt = render_messages(self.tokenizer, request, self.template_kwargs)
        opened = prompt.rstrip().endswith(self.markers.start)
        reasoning, answer, truncated = split(completion.text, self.markers, opened)
        tokens = self._count(reasoning)
        if self.budget is not None and tokens is not None and tokens > self.budget:
            answer, truncated = "", True
        if not truncated:
            answer = truncate_at_stop(self._cut(answer, request.max_new_tokens), request.stop)
        return dataclasses.replace(
            completion, text=answer, reasoning=reasoning, reasoning_tokens=tokens, reasoning_truncated=truncated
        )

    def _count(self, text: str) -> int | None:
        if self.tokenizer is None:
            return None
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    def _cut(self, answer: str, max_tokens: int) -> str:
        """The answer's first `max_tokens` tokens (its own budget when thinking had a separate one)."""
        if self.budget is None or self.tokenizer is None or not answer:
            return answer
        enc = self.tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        return answer if len(offsets) <= max_tokens else answer[: offsets[max_tokens - 1][1]]


def check_loglikelihood(suite_name: str, kinds: Collection[str], config: Any) -> None:
    """Log-likelihood suites score fixed continuations and never think: asking for thinking there is
    a configuration error (raised before any run row exists), not a silently ignored setting."""
    if "loglikelihood" not in kinds:
        return
    asked = thinking_requested(getattr(config, "chat_template_kwargs", None) or {})
    if getattr(config, "reasoning_max_tokens", None):
        asked.append("reasoning_max_tokens")
    if asked:
        raise ConfigError(
            f"suite '{suite_name}' scores log-likelihoods, which never apply thinking; drop "
            f"{', '.join(asked)} for this suite (run generate suites with thinking separately)"
        )


def sample_reasoning_scores(stages: Sequence[Sequence[Completion]], roles: Sequence[Sequence[str]]) -> dict[str, float]:
    """Per-sample `reasoning_truncated_rate` (0/1) and `reasoning_tokens` (the model's, all stages),
    present only when the model's answers were split, so runs of other models keep their metrics."""
    mine = [c for cs, rs in zip(stages, roles, strict=True) for c, r in zip(cs, rs, strict=True) if r == "model"]
    split_ones = [c for c in mine if c.reasoning is not None]
    if not split_ones:
        return {}
    out = {TRUNCATED: float(any(c.reasoning_truncated for c in split_ones))}
    counts = [c.reasoning_tokens for c in split_ones]
    if all(n is not None for n in counts):
        out[TOKENS] = float(sum(n for n in counts if n is not None))
    return out


#: Per-sample score names the runner adds and aggregates itself (lower is better for both).
TRUNCATED = "reasoning_truncated_rate"
TOKENS = "reasoning_tokens"
