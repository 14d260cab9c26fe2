"""The one rank-agreement implementation: scipy's numbers where defined, None where ties leave them undefined."""

from __future__ import annotations

import pytest
from scipy import stats

from harness import ranking


def test_matches_scipy_with_partial_ties() -> None:
    x, y = [0.1, 0.4, 0.4, 0.9, 0.2], [0.3, 0.5, 0.1, 0.8, 0.2]
    assert ranking.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert ranking.kendall(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


UNDEFINED = [([0.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]), ([0.1, 0.2, 0.3], [0.5, 0.5, 0.5]), ([0.1, 0.2], [0.1, 0.2])]


@pytest.mark.parametrize(("x", "y"), UNDEFINED)
def test_correlation_is_undefined_when_scores_cannot_rank(x: list[float], y: list[float]) -> None:
    assert ranking.spearman(x, y) is None and ranking.kendall(x, y) is None


def test_top_k_overlap() -> None:
    early = {0: 0.9, 1: 0.7, 2: 0.5, 3: 0.1}
    final = {0: 0.2, 1: 0.8, 2: 0.6, 3: 0.4}
    assert ranking.top_k_overlap(early, final, 2) == 0.5  # {0, 1} vs {1, 2}
    assert ranking.top_k_overlap(early, final, 2, higher=False) == 0.5  # {3, 2} vs {0, 3}
    tied = {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}
    assert ranking.top_k_overlap(tied, final, 2) is None  # every early score equal: no claim, not 1.0
    assert ranking.top_k_overlap({0: 0.9, 1: 0.5, 2: 0.5, 3: 0.1}, final, 2) is None  # a tie across the cut
    assert ranking.top_k_overlap({0: 0.9, 1: 0.9, 2: 0.5, 3: 0.1}, final, 2) == 0.5  # a tie inside the top k is fine
    assert ranking.top_k_overlap(early, final, 4) is None  # k = all items says nothing


def test_winner_is_undefined_when_shared() -> None:
    assert ranking.winner({0: 0.1, 1: 0.3}) == 1 and ranking.winner({0: 0.1, 1: 0.3}, higher=False) == 0
    assert ranking.winner({0: 0.3, 1: 0.3, 2: 0.1}) is None
