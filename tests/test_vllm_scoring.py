"""The vLLM log-likelihood plan (no engine needed): one request per context for single-token
choices, prompt-logprob requests for longer continuations after their context is cached, and the
LoRA-safe plan that never asks for prompt log-probabilities."""

from __future__ import annotations

import pytest

from harness.backends import vllm_scoring as vs
from harness.errors import BackendError

CTX_A, CTX_B = [1, 2, 3, 4], [1, 2, 5]


def test_single_token_choices_share_one_request_per_context() -> None:
    pairs = [(CTX_A, [10]), (CTX_A, [11]), (CTX_A, [12]), (CTX_A, [13]), (CTX_B, [10]), (CTX_B, [10])]
    plan = vs.plan(pairs, max_length=64)
    [wave] = plan.waves
    assert [(r.prompt, r.ids) for r in wave] == [(CTX_A, [10, 11, 12, 13]), (CTX_B, [10])]  # type: ignore[union-attr]
    assert wave[1].owners == [[(4, 0), (5, 0)]]  # type: ignore[union-attr]


def test_multi_token_continuations_wait_for_their_context_to_be_cached() -> None:
    pairs = [(CTX_A, [10, 11]), (CTX_A, [12, 13, 14]), (CTX_B, [10]), (CTX_B, [20, 21])]
    plan = vs.plan(pairs, max_length=64)
    first, second = plan.waves
    assert [type(r).__name__ for r in first] == ["NextToken", "PromptScore"]
    assert first[1].index == 0  # type: ignore[union-attr]
    assert sorted(r.index for r in second) == [1, 3]  # type: ignore[union-attr]
    assert all(isinstance(r, vs.PromptScore) for r in second)


def test_without_prompt_logprobs_each_token_is_a_next_token_request() -> None:
    plan = vs.plan([(CTX_A, [10, 11, 12]), (CTX_A, [10])], max_length=64, prompt_logprobs_ok=False)
    requests = [r for wave in plan.waves for r in wave]
    assert all(isinstance(r, vs.NextToken) for r in requests)
    assert sorted((tuple(r.prompt), tuple(r.ids)) for r in requests) == [  # type: ignore[union-attr]
        ((1, 2, 3, 4), (10,)), ((1, 2, 3, 4, 10), (11,)), ((1, 2, 3, 4, 10, 11), (12,))
    ]
    scores = vs.Scores(plan)
    for r in requests:
        assert isinstance(r, vs.NextToken)
        scores.next_token(r, {t: -1.0 for t in r.ids} | {99: -0.5}, sampled=r.ids[0] if len(r.prompt) == 4 else 99)
    long, short = scores.completions()
    assert long.logprob == pytest.approx(-3.0) and long.is_greedy is False
    assert short.logprob == pytest.approx(-1.0) and short.is_greedy is True


def test_more_than_128_choices_split_into_several_requests_for_one_prompt() -> None:
    plan = vs.plan([(CTX_A, [t]) for t in range(300)], max_length=64)
    [wave] = plan.waves
    assert [len(r.ids) for r in wave] == [128, 128, 44]  # type: ignore[union-attr]
    assert all(r.prompt == CTX_A for r in wave)


def test_truncation_keeps_the_plain_paths_rule_and_rejects_what_cannot_fit() -> None:
    [(row, n)] = vs.truncated_rows([(list(range(100)), [7, 8])], max_length=10)
    assert row == [*range(93, 100), 7, 8] and n == 2
    with pytest.raises(BackendError, match="context window"):
        vs.truncated_rows([([1], list(range(20)))], max_length=10)
    with pytest.raises(BackendError, match="empty continuation"):
        vs.plan([([1], [])], max_length=10)


def test_prompt_rows_score_the_continuation_and_greediness() -> None:
    plan = vs.plan([(CTX_A, [10, 11])], max_length=64)
    [[req]] = plan.waves
    assert isinstance(req, vs.PromptScore)
    scores = vs.Scores(plan)
    rows: list[dict[int, float] | None] = [None, {2: -9.0}, {3: -9.0}, {4: -9.0}, {10: -0.5}, {11: -2.0, 12: -1.0}]
    scores.prompt(req, rows)
    [c] = scores.completions()
    assert c.logprob == pytest.approx(-2.5) and c.is_greedy is False
