"""The board's query API: pure functions from a Store to pandas DataFrames, free of Streamlit (unit-tested
on their own, timed by `benchmarks/board.py`).

Split by page: runs and samples (`run_queries`), training runs, checkpoints and sweeps
(`training_queries`), monitors and alarms (`monitor_queries`), shared helpers (`frames`). They are
re-exported here so pages call `queries.NAME`; comparing two runs (the Compare page) lives here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select

from dashboards.frames import Z95, Page, _frame, _read, normal_ci, store_counts
from dashboards.monitor_queries import (
    ALARM_COLUMNS,
    ALARM_STATE_COLUMNS,
    FINDING_COLUMNS,
    FINDING_SERIES_COLUMNS,
    MONITOR_COLUMNS,
    alarm_list,
    alarm_states,
    finding_series,
    monitor_findings_of,
    monitor_history,
    monitor_kinds,
    score_series,
)
from dashboards.run_queries import (
    METRIC_COLUMNS,
    RUN_COLUMNS,
    SAMPLE_COLUMNS,
    RunFilter,
    _completion_text,
    _prompt_text,
    count_runs,
    count_samples,
    filter_options,
    leaderboard,
    metric_names,
    recent_runs,
    run_detail,
    run_metrics,
    run_samples,
    sample_score_keys,
)
from dashboards.training_queries import (
    CHECKPOINT_METRIC_COLUMNS,
    SWEEP_COLUMNS,
    TRAIN_RUN_COLUMNS,
    TRAIN_STEP_COLUMNS,
    TRIAL_COLUMNS,
    checkpoint_metrics,
    data_efficiency,
    early_final_agreement,
    sweep_detail,
    sweep_list,
    sweep_trial_table,
    train_checkpoints,
    train_dynamics,
    train_run_list,
)
from harness.store import Store, metrics, samples

__all__ = [
    "ALARM_COLUMNS", "ALARM_STATE_COLUMNS", "CHECKPOINT_METRIC_COLUMNS", "COMPARE_COLUMNS", "FINDING_COLUMNS",
    "FINDING_SERIES_COLUMNS", "FLIP_COLUMNS", "METRIC_COLUMNS", "MONITOR_COLUMNS", "RUN_COLUMNS", "SAMPLE_COLUMNS",
    "SWEEP_COLUMNS", "TRAIN_RUN_COLUMNS", "TRAIN_STEP_COLUMNS", "TRIAL_COLUMNS", "Z95", "Page", "RunFilter",
    "alarm_list", "alarm_states", "checkpoint_metrics", "count_runs", "count_samples", "data_efficiency",
    "early_final_agreement", "filter_options", "finding_series", "headline_metric", "leaderboard", "metric_names",
    "monitor_findings_of", "monitor_history", "monitor_kinds", "normal_ci", "recent_runs", "run_detail", "run_metrics",
    "run_samples", "sample_score_keys", "score_series", "store_counts", "sweep_detail", "sweep_list", "sweep_trial_table",
    "train_checkpoints", "train_dynamics", "train_run_list",
]

COMPARE_COLUMNS = (
    "metric", "a", "b", "delta", "delta_stderr", "ci_low", "ci_high", "significant", "higher_is_better", "verdict",
)
FLIP_COLUMNS = ("sample_id", "score_a", "score_b", "delta", "kind", "prompt", "completion_a", "completion_b")


def headline_metric(suite: str, available: Sequence[str]) -> str | None:
    """The suite's primary metric when it is registered and stored, else the first stored one."""
    try:
        from suites import suite_class

        primary = suite_class(suite).primary_metric
    except Exception:  # an unregistered suite (a plugin, a newer store): fall back
        primary = None
    if primary in available:
        return primary
    overall = [m for m in available if "/" not in m] or list(available)
    return overall[0] if overall else None


# ---- comparing two runs -------------------------------------------------------------------------


def compare_metrics(store: Store, run_a: str, run_b: str) -> pd.DataFrame:
    """Metric deltas `b - a` with 95% intervals from the two stored standard errors.

    Normal approximation, treating the runs as independent: conservative for runs on the same
    samples (pairing removes shared variance; `paired_flips` gives the paired interval for one
    per-sample score). A delta is `significant` when its interval excludes 0; `verdict` says
    whether it is an improvement or a regression given the metric's direction.
    """
    a = run_metrics(store, run_a).set_index("metric")
    b = run_metrics(store, run_b).set_index("metric")
    rows = []
    for name in sorted(set(a.index) | set(b.index)):
        va = a["value"].get(name)
        vb = b["value"].get(name)
        hib = bool(b["higher_is_better"].get(name, a["higher_is_better"].get(name, True)))
        row: dict[str, Any] = {"metric": name, "a": va, "b": vb, "higher_is_better": hib}
        if va is None or vb is None or pd.isna(va) or pd.isna(vb):
            row.update(verdict="missing", significant=False)
            rows.append(row)
            continue
        delta = float(vb) - float(va)
        sa, sb = a["stderr"].get(name), b["stderr"].get(name)
        se = math.sqrt(float(sa) ** 2 + float(sb) ** 2) if sa is not None and sb is not None and not (pd.isna(sa) or pd.isna(sb)) else None
        low, high = normal_ci(delta, se)
        significant = low is not None and high is not None and (low > 0 or high < 0)
        better = delta > 0 if hib else delta < 0
        verdict = "unchanged" if delta == 0 else ("improved" if better else "regressed")
        if not significant and delta != 0:
            verdict += " (n.s.)"
        row.update(delta=delta, delta_stderr=se, ci_low=low, ci_high=high, significant=significant, verdict=verdict)
        rows.append(row)
    return _frame(rows, COMPARE_COLUMNS)


PAIRED_COLUMNS = ("metric", "n", "a", "b", "delta", "ci_low", "ci_high", "p_value", "test", "improved", "regressed", "mde")


def paired_comparison(store: Store, run_a: str, run_b: str) -> pd.DataFrame:
    """The gate's own paired statistics (harness.compare) for two runs of one suite: per metric the
    mean difference over samples matched by id, its paired bootstrap interval, the paired test's
    p-value, flip counts and the minimum detectable effect. Empty when the runs are of different
    suites or share no per-sample scores (corpus-level metrics such as BLEU have none)."""
    from harness.compare import compare_runs

    base, cand = run_detail(store, run_a), run_detail(store, run_b)
    if base is None or cand is None or base["suite"] != cand["suite"]:
        return _frame([], PAIRED_COLUMNS)
    result = compare_runs(store, base, cand, top=0, n_resamples=2_000)
    rows = [
        {
            "metric": m.metric, "n": m.n, "a": m.baseline, "b": m.candidate, "delta": m.delta,
            "ci_low": m.ci.low, "ci_high": m.ci.high, "p_value": m.test.p_value, "test": m.test.method,
            "improved": m.improved, "regressed": m.regressed, "mde": m.mde,
        }
        for m in result.metrics
    ]
    return _frame(rows, PAIRED_COLUMNS)


def _scores(store: Store, run_id: str, key: str) -> pd.Series:
    query = select(samples.c.sample_id, samples.c.scores).where(samples.c.run_id == run_id)
    data = {r["sample_id"]: (r["scores"] or {}).get(key) for r in _read(store, query)}
    return pd.Series(data, dtype="float64", name=key)


def _higher_is_better(store: Store, run_id: str, key: str) -> bool:
    query = select(metrics.c.higher_is_better).where(metrics.c.run_id == run_id, metrics.c.name == key)
    rows = _read(store, query)
    return bool(rows[0]["higher_is_better"]) if rows else True


@dataclass(frozen=True)
class Flips:
    """Per-sample changes of one score between two runs, paired by sample id (never by position).

    `changed` lists the samples whose score moved (sample_id, score_a, score_b, delta, kind),
    regressions first and the largest first; the mean delta's interval is the paired one.
    """

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


def paired_flips(store: Store, run_a: str, run_b: str, key: str) -> Flips:
    """Pair two runs' per-sample `key` scores by sample id: counts, paired mean delta, changed samples."""
    sa, sb = _scores(store, run_a, key), _scores(store, run_b, key)
    paired = pd.concat([sa.rename("score_a"), sb.rename("score_b")], axis=1, join="inner").dropna()
    paired["delta"] = paired["score_b"] - paired["score_a"]
    hib = _higher_is_better(store, run_b, key)
    harm = -paired["delta"] if hib else paired["delta"]
    changed = paired.assign(harm=harm)[harm != 0]
    changed = changed.assign(kind=["regression" if h > 0 else "improvement" for h in changed["harm"]])
    changed = changed.rename_axis("sample_id").reset_index().sort_values(["harm", "sample_id"], ascending=[False, True])
    n = len(paired)
    mean = float(paired["delta"].mean()) if n else None
    se = float(paired["delta"].std(ddof=1) / math.sqrt(n)) if n > 1 else None
    low, high = normal_ci(mean, se)
    return Flips(
        run_a, run_b, key, n, len(sa.index.difference(sb.index)), len(sb.index.difference(sa.index)),
        int((harm > 0).sum()), int((harm < 0).sum()), mean, low, high,
        changed[["sample_id", "score_a", "score_b", "delta", "kind"]].reset_index(drop=True),
    )


def sample_flips(store: Store, flips: Flips, offset: int = 0, limit: int = 50) -> Page:
    """One page of changed samples side by side; prompts and completions are read for that page only."""
    page = flips.changed.iloc[offset : offset + limit]
    ids = list(page["sample_id"])
    texts = {run: _texts(store, run, ids) for run in (flips.run_a, flips.run_b)}
    blank = ("", "")
    rows = [
        {
            **r,
            "prompt": texts[flips.run_a].get(r["sample_id"], blank)[0] or texts[flips.run_b].get(r["sample_id"], blank)[0],
            "completion_a": texts[flips.run_a].get(r["sample_id"], blank)[1],
            "completion_b": texts[flips.run_b].get(r["sample_id"], blank)[1],
        }
        for r in page.to_dict("records")
    ]
    return Page(_frame(rows, FLIP_COLUMNS), len(flips.changed), offset, limit)


def _texts(store: Store, run_id: str, sample_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    if not sample_ids:
        return {}
    query = select(samples.c.sample_id, samples.c.requests, samples.c.completions).where(
        samples.c.run_id == run_id, samples.c.sample_id.in_(list(sample_ids))
    )
    return {r["sample_id"]: (_prompt_text(r["requests"]), _completion_text(r["completions"])) for r in _read(store, query)}


