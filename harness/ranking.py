"""Rank agreement between two scorings of the same items (early vs final scores of sweep trials).

The one implementation of Spearman, Kendall and top-k overlap in the project (sweeps, the board).
Each returns None ("undefined") when the scores cannot rank the items: fewer than three pairs, or
every score tied in either list. Returning 1.0 there would claim a perfect early signal that judged
nothing (at step 1 of training every trial scores the same).

Top-k overlap is undefined when ties straddle the k-th place in either list: the scores then do not
say which items are in the top k, and any tie-break rule would decide the answer instead of the data.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence


def _rankable(x: Sequence[float], y: Sequence[float]) -> bool:
    if len(x) != len(y):
        raise ValueError(f"rank correlation needs equal lengths, got {len(x)} and {len(y)}")
    return len(x) >= 3 and len(set(x)) > 1 and len(set(y)) > 1


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (average ranks for partial ties); None when undefined (see module doc)."""
    from scipy import stats

    if not _rankable(x, y):
        return None
    value = float(stats.spearmanr(x, y).statistic)
    return None if math.isnan(value) else value


def kendall(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b; None when undefined (see module doc)."""
    from scipy import stats

    if not _rankable(x, y):
        return None
    value = float(stats.kendalltau(x, y).statistic)
    return None if math.isnan(value) else value


def top_k(scores: Mapping[Hashable, float], k: int, higher: bool = True) -> set[Hashable] | None:
    """The k best keys, or None when a tie crosses the k-th place (membership is not decided)."""
    if not 1 <= k <= len(scores):
        return None
    ordered = sorted(scores.items(), key=lambda kv: -kv[1] if higher else kv[1])
    if k < len(ordered) and ordered[k - 1][1] == ordered[k][1]:
        return None
    return {key for key, _ in ordered[:k]}


def top_k_overlap(a: Mapping[Hashable, float], b: Mapping[Hashable, float], k: int, higher: bool = True) -> float | None:
    """Share of a's top k that is also in b's top k (same keys); None when either top k is undecided."""
    if set(a) != set(b):
        raise ValueError("top-k overlap needs scores for the same items")
    if k >= len(a):
        return None  # every item is in both top-k sets: the overlap says nothing
    top_a, top_b = top_k(a, k, higher), top_k(b, k, higher)
    if top_a is None or top_b is None:
        return None
    return len(top_a & top_b) / k


def winner(scores: Mapping[Hashable, float], higher: bool = True) -> Hashable | None:
    """The single best key, or None when the best score is shared."""
    best = top_k(scores, 1, higher)
    return next(iter(best)) if best else None
