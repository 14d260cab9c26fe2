"""The board's Compare page data: the comparison engine's paired result (what `harness gate`,
`harness compare` and `monitor rag` report for the same two runs) and per-sample flips.

Pure functions from a Store to pandas frames, free of Streamlit. Nothing here computes a statistic
of its own: every number comes from `harness.comparison`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from harness.comparison import (
    Pairing,
    RunComparison,
    compare_metric,
    compare_runs,
    corpus_metric,
    load_pairing,
    metric_pairs,
    model_text,
    primary_metric,
    prompt_text,
    sample_directions,
)
from harness.store import Store, runs, samples

PAIRED_COLUMNS = ("metric", "kind", "n", "a", "b", "delta", "ci_low", "ci_high", "p_value", "test", "improved",
                  "regressed", "mde", "verdict")
FLIP_COLUMNS = ("sample_id", "score_a", "score_b", "delta", "kind", "prompt", "completion_a", "completion_b")
#: Two-sided level at which the board calls a difference "improved" or "regressed" without "(n.s.)".
ALPHA = 0.05


def _run(store: Store, run_id: str) -> dict[str, Any] | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
    return dict(row) if row else None


@dataclass(frozen=True)
class PairedView:
    """The paired table (one row per metric), the engine's result behind it and why pairing is partial."""

    frame: pd.DataFrame
    result: RunComparison | None = None
    problems: list[str] = field(default_factory=list)


def _verdict(delta: float, worse_by: float, p: float) -> str:
    if delta == 0:
        return "unchanged"
    word = "regressed" if worse_by > 0 else "improved"
    return word if p < ALPHA else f"{word} (n.s.)"


def paired_comparison(store: Store, run_a: str, run_b: str, n_resamples: int = 10_000) -> PairedView:
    """Every metric of two runs of one suite, paired by sample id: mean metrics by the paired test,
    corpus metrics (BLEU, chrF, TER) by the paired bootstrap over segments; two-sided p-values,
    the same numbers `harness compare` prints. Empty for runs of different suites."""
    base, cand = _run(store, run_a), _run(store, run_b)
    if base is None or cand is None:
        return PairedView(pd.DataFrame(columns=PAIRED_COLUMNS), problems=["run not found"])
    if base["suite"] != cand["suite"]:
        return PairedView(pd.DataFrame(columns=PAIRED_COLUMNS),
                          problems=[f"runs of different suites ({base['suite']}, {cand['suite']}) cannot be paired"])
    result = compare_runs(store, base, cand, top=0, n_resamples=n_resamples)
    rows = [
        {"metric": m.metric, "kind": m.kind, "n": m.n, "a": m.baseline, "b": m.candidate, "delta": m.delta,
         "ci_low": m.ci.low, "ci_high": m.ci.high, "p_value": m.test.p_value, "test": m.test.method,
         "improved": m.improved, "regressed": m.regressed, "mde": m.mde,
         "verdict": _verdict(m.delta, m.worse_by, m.test.p_value)}
        for m in result.metrics
    ]
    return PairedView(pd.DataFrame(rows, columns=PAIRED_COLUMNS), result, result.problems)


def default_score(suite: str, keys: Sequence[str]) -> str | None:
    """The per-sample score the flips table opens on: the suite's primary metric, or for a corpus
    primary metric (BLEU) its sentence-level score."""
    head = primary_metric(suite, None)
    if head is not None and f"sentence_{head}" in keys:
        return f"sentence_{head}"
    return primary_metric(suite, list(keys))


@dataclass(frozen=True)
class Flips:
    """Per-sample changes of one score between two runs, paired by sample id (never by position)."""

    run_a: str
    run_b: str
    key: str
    n_paired: int
    n_only_a: int
    n_only_b: int
    regressions: int
    improvements: int
    mean_delta: float | None
    ci_low: float | None
    ci_high: float | None
    changed: pd.DataFrame


def _higher_is_better(pairing: Pairing, key: str) -> bool:
    row = pairing.baseline.metric_rows.get(key)
    if row is not None:
        return bool(row["higher_is_better"])
    corpus = corpus_metric(pairing.baseline.run, key.removeprefix("sentence_"))
    return bool(corpus.higher_is_better) if corpus is not None else True


def paired_flips(store: Store, run_a: str, run_b: str, key: str) -> Flips:
    """Which samples moved on `key`, regressions first and largest first, with the engine's paired
    bootstrap interval of the mean difference."""
    base, cand = _run(store, run_a), _run(store, run_b)
    empty = pd.DataFrame(columns=["sample_id", "score_a", "score_b", "delta", "kind"])
    if base is None or cand is None:
        return Flips(run_a, run_b, key, 0, 0, 0, 0, 0, None, None, None, empty)
    pairing = load_pairing(store, base, cand)
    pairs = metric_pairs(pairing, key)
    n = len(pairs.ids)
    if n == 0:
        return Flips(run_a, run_b, key, 0, len(pairing.only_baseline), len(pairing.only_candidate), 0, 0, None, None, None, empty)
    hib = _higher_is_better(pairing, key)
    directions = sample_directions(pairing, pairs, hib)
    comp = compare_metric(key, pairs.baseline, pairs.candidate, hib, directions=directions)
    delta = pairs.candidate - pairs.baseline
    harm = -delta * directions
    frame = pd.DataFrame({"sample_id": pairs.ids, "score_a": pairs.baseline, "score_b": pairs.candidate, "delta": delta,
                          "harm": harm})
    changed = frame[np.abs(harm) > 1e-12].copy()
    changed["kind"] = np.where(changed["harm"] > 0, "regression", "improvement")
    changed = changed.sort_values(["harm", "sample_id"], ascending=[False, True])
    return Flips(run_a, run_b, key, n, len(pairing.only_baseline), len(pairing.only_candidate), comp.regressed, comp.improved,
                 comp.delta, comp.ci.low, comp.ci.high,
                 changed[["sample_id", "score_a", "score_b", "delta", "kind"]].reset_index(drop=True))


@dataclass(frozen=True)
class FlipPage:
    frame: pd.DataFrame
    total: int


def sample_flips(store: Store, flips: Flips, offset: int = 0, limit: int = 50) -> FlipPage:
    """One page of changed samples side by side; prompts and completions are read for that page only."""
    page = flips.changed.iloc[offset : offset + limit]
    ids = list(page["sample_id"])
    texts = {run: _texts(store, run, ids) for run in (flips.run_a, flips.run_b)}
    blank = ("", "")
    rows = [
        {**r, "prompt": texts[flips.run_a].get(r["sample_id"], blank)[0] or texts[flips.run_b].get(r["sample_id"], blank)[0],
         "completion_a": texts[flips.run_a].get(r["sample_id"], blank)[1],
         "completion_b": texts[flips.run_b].get(r["sample_id"], blank)[1]}
        for r in page.to_dict("records")
    ]
    return FlipPage(pd.DataFrame(rows, columns=FLIP_COLUMNS), len(flips.changed))


def _texts(store: Store, run_id: str, sample_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    if not sample_ids:
        return {}
    query = select(samples.c.sample_id, samples.c.requests, samples.c.completions).where(
        samples.c.run_id == run_id, samples.c.sample_id.in_(list(sample_ids)))
    with store.engine.connect() as conn:
        return {r["sample_id"]: (prompt_text(r["requests"]), model_text(r["requests"], r["completions"]))
                for r in conn.execute(query).mappings()}
