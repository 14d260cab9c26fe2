"""lm-eval glue: a harness backend seen by lm-eval as an `LM`, and lm-eval requests seen by the
harness as `Request`s.

lm-eval's three request types map onto the two the harness backends answer:

| lm-eval | harness Request |
|---|---|
| `loglikelihood(context, continuation)` | `loglikelihood`, prompt = context |
| `loglikelihood_rolling(text)` | `loglikelihood`, empty prompt (conditioned on BOS/EOS like lm-eval's first window) |
| `generate_until(context, gen_kwargs)` | `generate`, raw prompt, `until` -> stop, `max_gen_toks` -> max_new_tokens |

`HarnessLM` answers through any `answer(requests) -> completions` callable, normally
`Runner.answer`, so every lm-eval call goes through the harness's response cache and backends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from harness.errors import ConfigError
from harness.types import Completion, Request

Answer = Callable[[Sequence[Request]], list[Completion]]
#: lm-eval's default generation budget (HFLM.max_gen_toks).
DEFAULT_MAX_GEN_TOKS = 256


def to_request(instance: Instance) -> Request:
    """The harness request that answers one lm-eval instance."""
    kind = instance.request_type
    args = instance.args
    if kind == "loglikelihood":
        context, continuation = args[0], args[1]
        return Request(kind="loglikelihood", prompt=context, continuation=continuation)
    if kind == "loglikelihood_rolling":
        return Request(kind="loglikelihood", prompt="", continuation=args[0])
    if kind == "generate_until":
        context, gen_kwargs = args[0], dict(args[1] or {})
        until = gen_kwargs.get("until") or []
        if isinstance(until, str):
            until = [until]
        do_sample = bool(gen_kwargs.get("do_sample", False))
        temperature = float(gen_kwargs.get("temperature", 0.0) or 0.0)
        return Request(
            kind="generate",
            prompt=context,
            stop=tuple(str(u) for u in until),
            max_new_tokens=int(gen_kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS)),
            temperature=temperature if do_sample else 0.0,
            top_p=float(gen_kwargs.get("top_p", 1.0) or 1.0) if do_sample else 1.0,
        )
    raise ConfigError(f"lm-eval request type '{kind}' is not supported by harness backends")


def to_response(instance: Instance, completion: Completion) -> Any:
    """A harness answer in the shape lm-eval expects for the instance's request type."""
    kind = instance.request_type
    if kind == "loglikelihood":
        return (float(completion.logprob or 0.0), bool(completion.is_greedy))
    if kind == "loglikelihood_rolling":
        return float(completion.logprob or 0.0)
    return completion.text


class HarnessLM(LM):
    """An lm-eval `LM` whose answers come from harness backends (through the runner's cache)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__()
        self.answer = answer

    def _run(self, instances: list[Instance]) -> list[Any]:
        completions = self.answer([to_request(i) for i in instances])
        return [to_response(i, c) for i, c in zip(instances, completions, strict=True)]

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self._run(requests)

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        return self._run(requests)

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        return self._run(requests)
