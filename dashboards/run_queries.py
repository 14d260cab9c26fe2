"""Board queries about runs: the leaderboard (filtered, sorted, paginated in SQL), one run's metrics
and its samples."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Text, and_, cast, func, or_, select
from sqlalchemy.sql import ColumnElement, Select

from dashboards.frames import Page, _frame, _read, normal_ci
from harness.store import Store, metrics, run_tags, runs, samples

RUN_COLUMNS = ("run_id", "name", "suite", "model", "adapter", "backend", "status", "n_samples", "created_at", "tags")
SAMPLE_COLUMNS = ("sample_id", "position", "prompt", "completion", "reasoning", "score", "scores", "groups")
METRIC_COLUMNS = ("metric", "value", "stderr", "ci_low", "ci_high", "n", "higher_is_better")


@dataclass(frozen=True)
class RunFilter:
    """Leaderboard filters; `None` means "any". Dates are inclusive UTC days."""

    suite: str | None = None
    model: str | None = None
    tag: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    status: str | None = None

    def clauses(self, store: Store) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.suite:
            out.append(runs.c.suite == self.suite)
        if self.model:
            out.append(runs.c.model == self.model)
        if self.status:
            out.append(store.status_column == self.status)  # `interrupted` is derived, not stored
        if self.tag:
            out.append(runs.c.id.in_(select(run_tags.c.run_id).where(run_tags.c.tag == self.tag)))
        if self.since:
            out.append(runs.c.created_at >= _day_start(self.since))
        if self.until:
            out.append(runs.c.created_at < _day_start(self.until + dt.timedelta(days=1)))
        return out


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


# ---- filters and run lists --------------------------------------------------------------------


def filter_options(store: Store) -> dict[str, list[str]]:
    """Distinct suites, models, tags and statuses, for the leaderboard's filter widgets."""
    out: dict[str, list[str]] = {}
    with store.engine.connect() as conn:
        for key, column in (("suite", runs.c.suite), ("model", runs.c.model), ("status", store.status_column), ("tag", run_tags.c.tag)):
            values = conn.execute(select(column).distinct().where(column.is_not(None)).order_by(column)).scalars()
            out[key] = [str(v) for v in values]
    return out


def _tags_for(store: Store, run_ids: Sequence[str]) -> dict[str, list[str]]:
    if not run_ids:
        return {}
    found: dict[str, list[str]] = {r: [] for r in run_ids}
    query = select(run_tags.c.run_id, run_tags.c.tag).where(run_tags.c.run_id.in_(list(run_ids))).order_by(run_tags.c.tag)
    for row in _read(store, query):
        found[row["run_id"]].append(row["tag"])
    return found


def _run_rows(store: Store, query: Select[Any]) -> list[dict[str, Any]]:
    rows = _read(store, query)
    tags = _tags_for(store, [r["id"] for r in rows])
    return [{**r, "run_id": r["id"], "tags": ", ".join(tags.get(r["id"], []))} for r in rows]


def _run_select(store: Store) -> tuple[Any, ...]:
    """Run columns for lists; the status is the store's view of it (a dead `running` run is `interrupted`)."""
    return (
        runs.c.id, runs.c.name, runs.c.suite, runs.c.model, runs.c.adapter, runs.c.backend,
        store.status_column.label("status"), runs.c.n_samples, runs.c.created_at,
    )


def recent_runs(store: Store, limit: int = 200, suite: str | None = None) -> pd.DataFrame:
    """The newest runs (for pickers): run_id, name, suite, model, ..., newest first."""
    query = select(*_run_select(store)).order_by(runs.c.created_at.desc(), runs.c.id).limit(limit)
    if suite:
        query = query.where(runs.c.suite == suite)
    return _frame(_run_rows(store, query), RUN_COLUMNS)


def leaderboard(
    store: Store,
    filters: RunFilter | None = None,
    sort_by: str = "created_at",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    """Runs x metrics, filtered and sorted in SQL, one page at a time.

    `sort_by` is a run column (`created_at`, `name`, `suite`, `model`, `status`, `n_samples`) or a
    metric name; runs without that metric sort last. Metric columns are named `metric:NAME`.
    """
    clauses = (filters or RunFilter()).clauses(store)
    where = and_(*clauses) if clauses else None
    columns = _run_select(store)
    query = select(*columns)
    if sort_by == "status":
        key: Any = store.status_column
    elif sort_by in runs.c and sort_by in {c.name for c in columns}:
        key = runs.c[sort_by]
    else:
        joined = runs.outerjoin(metrics, and_(metrics.c.run_id == runs.c.id, metrics.c.name == sort_by))
        query = query.select_from(joined)
        key = metrics.c.value
    order = key.desc().nulls_last() if descending else key.asc().nulls_last()
    query = query.order_by(order, runs.c.created_at.desc(), runs.c.id).offset(offset).limit(limit)
    if where is not None:
        query = query.where(where)
    total = count_runs(store, filters)
    rows = _run_rows(store, query)
    frame = _frame(rows, RUN_COLUMNS)
    values = _metrics_for(store, [r["run_id"] for r in rows])
    if not values.empty:
        wide = values.pivot(index="run_id", columns="metric", values="value")
        wide.columns = [f"metric:{c}" for c in wide.columns]
        frame = frame.merge(wide, how="left", left_on="run_id", right_index=True)
    return Page(frame, total, offset, limit)


def count_runs(store: Store, filters: RunFilter | None = None) -> int:
    clauses = (filters or RunFilter()).clauses(store)
    query = select(func.count()).select_from(runs)
    if clauses:
        query = query.where(*clauses)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def metric_names(store: Store, filters: RunFilter | None = None) -> list[str]:
    """Distinct metric names over the runs matching `filters` (the leaderboard's sort choices)."""
    query = select(metrics.c.name).distinct().select_from(metrics.join(runs, runs.c.id == metrics.c.run_id))
    clauses = (filters or RunFilter()).clauses(store)
    if clauses:
        query = query.where(*clauses)
    with store.engine.connect() as conn:
        return [str(n) for n in conn.execute(query.order_by(metrics.c.name)).scalars()]


def _metrics_for(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    if not run_ids:
        return pd.DataFrame(columns=["run_id", "metric", "value"])
    query = select(metrics.c.run_id, metrics.c.name.label("metric"), metrics.c.value).where(metrics.c.run_id.in_(list(run_ids)))
    return pd.DataFrame(_read(store, query), columns=["run_id", "metric", "value"])


# ---- one run ------------------------------------------------------------------------------------


def run_detail(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run row with its tags (provenance: versions, config hash, git revision...), or None."""
    rows = _read(store, select(runs).where(runs.c.id == run_id))
    if not rows:
        return None
    row = rows[0]
    row["tags"] = _tags_for(store, [run_id]).get(run_id, [])
    return row


def run_metrics(store: Store, run_id: str) -> pd.DataFrame:
    """Every metric of a run with its standard error and 95% normal-approximation interval."""
    query = select(metrics).where(metrics.c.run_id == run_id).order_by(metrics.c.name)
    rows = []
    for r in _read(store, query):
        low, high = normal_ci(r["value"], r["stderr"])
        rows.append({**r, "metric": r["name"], "ci_low": low, "ci_high": high})
    return _frame(rows, METRIC_COLUMNS)


def _prompt_text(requests: Any) -> str:
    """What the model was asked first: the last user turn of a chat request, or the raw prompt."""
    try:
        first = requests[0][0]
    except (IndexError, KeyError, TypeError):
        return ""
    if first.get("messages"):
        users = [content for role, content in first["messages"] if role == "user"]
        return str(users[-1] if users else first["messages"][-1][1])
    return str(first.get("prompt") or "")


def _completion_text(completions: Any) -> str:
    """The first answer of every stage (a second turn, a judge) joined; logprob answers shown as numbers."""
    parts = []
    for stage in completions or []:
        if not stage:
            continue
        c = stage[0]
        parts.append(str(c.get("text") or (f"logprob={c['logprob']:.4f}" if c.get("logprob") is not None else "")))
    return "\n---\n".join(parts)


def _reasoning_text(completions: Any) -> str:
    """The thinking a reasoning model wrote before each stage's first answer (docs/reasoning.md)."""
    parts = []
    for stage in completions or []:
        if stage and stage[0].get("reasoning"):
            cut = " [cut inside its thinking]" if stage[0].get("reasoning_truncated") else ""
            parts.append(str(stage[0]["reasoning"]) + cut)
    return "\n---\n".join(parts)


def _sample_search(term: str | None) -> ColumnElement[bool] | None:
    if not term:
        return None
    return or_(
        samples.c.sample_id.icontains(term, autoescape=True),
        cast(samples.c.input, Text).icontains(term, autoescape=True),
        cast(samples.c.completions, Text).icontains(term, autoescape=True),
    )


def _sample_where(run_id: str, search: str | None) -> ColumnElement[bool]:
    where: ColumnElement[bool] = samples.c.run_id == run_id
    found = _sample_search(search)
    return and_(where, found) if found is not None else where


def count_samples(store: Store, run_id: str, search: str | None = None) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(samples).where(_sample_where(run_id, search))).scalar_one())


def run_samples(
    store: Store, run_id: str, search: str | None = None, score_key: str | None = None, offset: int = 0, limit: int = 50
) -> Page:
    """One page of a run's samples (prompt, completion, score), in run order, optionally searched.

    The search matches the sample id, the input and the completions (case-insensitive substring);
    `score` is `scores[score_key]` (the headline metric when the page passes it).
    """
    where = _sample_where(run_id, search)
    query = (
        select(samples.c.sample_id, samples.c.position, samples.c.requests, samples.c.completions, samples.c.scores, samples.c.groups)
        .where(where)
        .order_by(samples.c.position)
        .offset(offset)
        .limit(limit)
    )
    total = count_samples(store, run_id, search)
    rows = [
        {
            "sample_id": r["sample_id"],
            "position": r["position"],
            "prompt": _prompt_text(r["requests"]),
            "completion": _completion_text(r["completions"]),
            "reasoning": _reasoning_text(r["completions"]),
            "score": (r["scores"] or {}).get(score_key) if score_key else None,
            "scores": r["scores"],
            "groups": ", ".join(r["groups"] or []),
        }
        for r in _read(store, query)
    ]
    return Page(_frame(rows, SAMPLE_COLUMNS), total, offset, limit)


def sample_score_keys(store: Store, run_id: str) -> list[str]:
    """Per-sample score names of a run (read from its first sample)."""
    query = select(samples.c.scores).where(samples.c.run_id == run_id).order_by(samples.c.position).limit(1)
    rows = _read(store, query)
    return sorted(rows[0]["scores"]) if rows and rows[0]["scores"] else []


