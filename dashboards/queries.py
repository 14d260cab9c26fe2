"""Pure functions from a Store to pandas DataFrames: everything the board shows comes from here.

Kept free of Streamlit so they are unit-tested on their own and timed by `benchmarks/board.py`.
Every query is bounded: lists are paginated in SQL (`offset`/`limit`), per-run reads go through
the `(run_id, ...)` primary keys and indexes, and no function reads a whole table into memory
(500 runs x 2,000 samples must stay under 2 s a page). Confidence intervals are normal
approximations from the stored standard errors (`normal_ci`); `paired_flips` pairs samples by id.
The paired bootstrap and McNemar tests of `harness/stats.py` can replace the independent-runs
interval of `compare_metrics` once that module lands.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import pandas as pd
from sqlalchemy import Text, and_, cast, func, or_, select
from sqlalchemy.sql import ColumnElement, Select

from harness.store import (
    Store,
    alarms,
    checkpoints,
    metrics,
    monitor_findings,
    monitor_runs,
    run_tags,
    runs,
    samples,
    sweep_trials,
    sweeps,
    train_runs,
    train_steps,
)

#: Two-sided 95% normal quantile (1.959964...).
Z95 = NormalDist().inv_cdf(0.975)

RUN_COLUMNS = ("run_id", "name", "suite", "model", "adapter", "backend", "status", "n_samples", "created_at", "tags")
SAMPLE_COLUMNS = ("sample_id", "position", "prompt", "completion", "score", "scores", "groups")
METRIC_COLUMNS = ("metric", "value", "stderr", "ci_low", "ci_high", "n", "higher_is_better")
COMPARE_COLUMNS = (
    "metric", "a", "b", "delta", "delta_stderr", "ci_low", "ci_high", "significant", "higher_is_better", "verdict",
)
FLIP_COLUMNS = ("sample_id", "score_a", "score_b", "delta", "kind", "prompt", "completion_a", "completion_b")


@dataclass(frozen=True)
class Page:
    """One page of a longer result: the rows shown and how many rows match in total."""

    frame: pd.DataFrame
    total: int
    offset: int
    limit: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.limit)) if self.limit else 1


@dataclass(frozen=True)
class RunFilter:
    """Leaderboard filters; `None` means "any". Dates are inclusive UTC days."""

    suite: str | None = None
    model: str | None = None
    tag: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    status: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.suite:
            out.append(runs.c.suite == self.suite)
        if self.model:
            out.append(runs.c.model == self.model)
        if self.status:
            out.append(runs.c.status == self.status)
        if self.tag:
            out.append(runs.c.id.in_(select(run_tags.c.run_id).where(run_tags.c.tag == self.tag)))
        if self.since:
            out.append(runs.c.created_at >= _day_start(self.since))
        if self.until:
            out.append(runs.c.created_at < _day_start(self.until + dt.timedelta(days=1)))
        return out


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame with exactly `columns`, also when there are no rows (pages test `.empty`)."""
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))


def _read(store: Store, query: Select[Any]) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def normal_ci(value: float | None, stderr: float | None, z: float = Z95) -> tuple[float | None, float | None]:
    """`value ± z * stderr`; (None, None) when either is unknown (a single sample has no stderr)."""
    if value is None or stderr is None or math.isnan(stderr):
        return None, None
    return value - z * stderr, value + z * stderr


# ---- filters and run lists --------------------------------------------------------------------


def filter_options(store: Store) -> dict[str, list[str]]:
    """Distinct suites, models, tags and statuses, for the leaderboard's filter widgets."""
    out: dict[str, list[str]] = {}
    with store.engine.connect() as conn:
        for key, column in (("suite", runs.c.suite), ("model", runs.c.model), ("status", runs.c.status), ("tag", run_tags.c.tag)):
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


_RUN_SELECT = (
    runs.c.id, runs.c.name, runs.c.suite, runs.c.model, runs.c.adapter, runs.c.backend, runs.c.status,
    runs.c.n_samples, runs.c.created_at,
)


def recent_runs(store: Store, limit: int = 200, suite: str | None = None) -> pd.DataFrame:
    """The newest runs (for pickers): run_id, name, suite, model, ..., newest first."""
    query = select(*_RUN_SELECT).order_by(runs.c.created_at.desc(), runs.c.id).limit(limit)
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
    clauses = (filters or RunFilter()).clauses()
    where = and_(*clauses) if clauses else None
    query = select(*_RUN_SELECT)
    if sort_by in runs.c and sort_by in {c.name for c in _RUN_SELECT}:
        key: Any = runs.c[sort_by]
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
    clauses = (filters or RunFilter()).clauses()
    query = select(func.count()).select_from(runs)
    if clauses:
        query = query.where(*clauses)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def metric_names(store: Store, filters: RunFilter | None = None) -> list[str]:
    """Distinct metric names over the runs matching `filters` (the leaderboard's sort choices)."""
    query = select(metrics.c.name).distinct().select_from(metrics.join(runs, runs.c.id == metrics.c.run_id))
    clauses = (filters or RunFilter()).clauses()
    if clauses:
        query = query.where(*clauses)
    with store.engine.connect() as conn:
        return [str(n) for n in conn.execute(query.order_by(metrics.c.name)).scalars()]


def _metrics_for(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    if not run_ids:
        return pd.DataFrame(columns=["run_id", "metric", "value"])
    query = select(metrics.c.run_id, metrics.c.name.label("metric"), metrics.c.value).where(metrics.c.run_id.in_(list(run_ids)))
    return pd.DataFrame(_read(store, query), columns=["run_id", "metric", "value"])


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


# ---- checkpoints of a training run --------------------------------------------------------------

TRAIN_RUN_COLUMNS = ("train_run_id", "name", "method", "base_model", "status", "created_at", "n_steps", "n_checkpoints", "n_evals")


def train_run_list(store: Store, limit: int = 200) -> pd.DataFrame:
    """Training runs, newest first, with how many steps, checkpoints and evaluated runs each has."""
    n_steps = select(func.count()).where(train_steps.c.train_run_id == train_runs.c.id).scalar_subquery()
    n_ckpt = select(func.count()).where(checkpoints.c.train_run_id == train_runs.c.id).scalar_subquery()
    n_eval = select(func.count()).where(runs.c.train_run_id == train_runs.c.id).scalar_subquery()
    query = (
        select(
            train_runs.c.id.label("train_run_id"), train_runs.c.name, train_runs.c.method, train_runs.c.base_model,
            train_runs.c.status, train_runs.c.created_at, n_steps.label("n_steps"), n_ckpt.label("n_checkpoints"),
            n_eval.label("n_evals"),
        )
        .order_by(train_runs.c.created_at.desc())
        .limit(limit)
    )
    return _frame(_read(store, query), TRAIN_RUN_COLUMNS)


CHECKPOINT_METRIC_COLUMNS = ("step", "run_id", "run_name", "suite", "metric", "value", "stderr", "ci_low", "ci_high", "n")


def checkpoint_metrics(store: Store, train_run_id: str, metric_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Every stored metric of every evaluated checkpoint of a training run, by step (complete runs only)."""
    query = (
        select(runs.c.step, runs.c.id.label("run_id"), runs.c.name.label("run_name"), runs.c.suite,
               metrics.c.name.label("metric"), metrics.c.value, metrics.c.stderr, metrics.c.n)
        .select_from(runs.join(metrics, metrics.c.run_id == runs.c.id))
        .where(runs.c.train_run_id == train_run_id, runs.c.status == "complete", runs.c.step.is_not(None))
        .order_by(runs.c.step, metrics.c.name)
    )
    if metric_names:
        query = query.where(metrics.c.name.in_(list(metric_names)))
    rows = []
    for r in _read(store, query):
        low, high = normal_ci(r["value"], r["stderr"])
        rows.append({**r, "ci_low": low, "ci_high": high})
    return _frame(rows, CHECKPOINT_METRIC_COLUMNS)


TRAIN_STEP_COLUMNS = ("step", "epoch", "loss", "grad_norm", "learning_rate", "tokens_per_s")


def train_dynamics(store: Store, train_run_id: str, max_points: int = 2000) -> pd.DataFrame:
    """Loss, gradient norm and learning rate by step; long runs are thinned to about `max_points`."""
    with store.engine.connect() as conn:
        total = int(conn.execute(select(func.count()).where(train_steps.c.train_run_id == train_run_id)).scalar_one())
    query = select(*(train_steps.c[c] for c in TRAIN_STEP_COLUMNS)).where(train_steps.c.train_run_id == train_run_id)
    stride = max(1, math.ceil(total / max_points))
    if stride > 1:
        query = query.where(train_steps.c.step % stride == 0)
    return _frame(_read(store, query.order_by(train_steps.c.step)), TRAIN_STEP_COLUMNS)


def train_checkpoints(store: Store, train_run_id: str) -> pd.DataFrame:
    cols = ("step", "fraction", "kind", "path", "content_hash", "created_at")
    query = select(*(checkpoints.c[c] for c in cols)).where(checkpoints.c.train_run_id == train_run_id).order_by(checkpoints.c.step)
    return _frame(_read(store, query), cols)


# ---- drift monitors and alarms ------------------------------------------------------------------

MONITOR_COLUMNS = ("monitor_run_id", "kind", "reference", "current", "alarm", "created_at", "n_findings", "n_alarms", "summary")


def monitor_kinds(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [str(k) for k in conn.execute(select(monitor_runs.c.kind).distinct().order_by(monitor_runs.c.kind)).scalars()]


def monitor_history(store: Store, kind: str | None = None, offset: int = 0, limit: int = 100) -> Page:
    """Monitor runs newest first, with their findings and alarm counts."""
    n_find = select(func.count()).where(monitor_findings.c.monitor_run_id == monitor_runs.c.id).scalar_subquery()
    n_alarm = (
        select(func.count())
        .where(monitor_findings.c.monitor_run_id == monitor_runs.c.id, monitor_findings.c.alarm.is_(True))
        .scalar_subquery()
    )
    query = select(
        monitor_runs.c.id.label("monitor_run_id"), monitor_runs.c.kind, monitor_runs.c.reference, monitor_runs.c.current,
        monitor_runs.c.alarm, monitor_runs.c.created_at, monitor_runs.c.summary, n_find.label("n_findings"),
        n_alarm.label("n_alarms"),
    )
    count = select(func.count()).select_from(monitor_runs)
    if kind:
        query = query.where(monitor_runs.c.kind == kind)
        count = count.where(monitor_runs.c.kind == kind)
    query = query.order_by(monitor_runs.c.created_at.desc(), monitor_runs.c.id).offset(offset).limit(limit)
    with store.engine.connect() as conn:
        total = int(conn.execute(count).scalar_one())
    return Page(_frame(_read(store, query), MONITOR_COLUMNS), total, offset, limit)


FINDING_SERIES_COLUMNS = ("created_at", "monitor_run_id", "kind", "name", "statistic", "value", "p_value", "threshold", "alarm")


def finding_series(store: Store, kind: str | None = None, limit: int = 5000) -> pd.DataFrame:
    """Each finding's statistic over time (the drift chart), oldest first, the newest `limit` rows."""
    query = (
        select(monitor_runs.c.created_at, monitor_runs.c.id.label("monitor_run_id"), monitor_runs.c.kind,
               monitor_findings.c.name, monitor_findings.c.statistic, monitor_findings.c.value, monitor_findings.c.p_value,
               monitor_findings.c.threshold, monitor_findings.c.alarm)
        .select_from(monitor_runs.join(monitor_findings, monitor_findings.c.monitor_run_id == monitor_runs.c.id))
        .order_by(monitor_runs.c.created_at.desc())
        .limit(limit)
    )
    if kind:
        query = query.where(monitor_runs.c.kind == kind)
    frame = _frame(_read(store, query), FINDING_SERIES_COLUMNS)
    return frame.iloc[::-1].reset_index(drop=True)


FINDING_COLUMNS = ("idx", "name", "statistic", "value", "p_value", "threshold", "alarm", "details")


def monitor_findings_of(store: Store, monitor_run_id: str) -> pd.DataFrame:
    query = select(*(monitor_findings.c[c] for c in FINDING_COLUMNS)).where(
        monitor_findings.c.monitor_run_id == monitor_run_id
    ).order_by(monitor_findings.c.idx)
    return _frame(_read(store, query), FINDING_COLUMNS)


ALARM_COLUMNS = ("alarm_id", "created_at", "name", "message", "monitor_run_id", "kind", "delivered")


def alarm_list(store: Store, offset: int = 0, limit: int = 100) -> Page:
    """Alarms newest first, with the kind of monitor that raised them."""
    query = (
        select(alarms.c.id.label("alarm_id"), alarms.c.created_at, alarms.c.name, alarms.c.message, alarms.c.monitor_run_id,
               monitor_runs.c.kind, alarms.c.delivered)
        .select_from(alarms.outerjoin(monitor_runs, monitor_runs.c.id == alarms.c.monitor_run_id))
        .order_by(alarms.c.created_at.desc(), alarms.c.id)
        .offset(offset)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(alarms)).scalar_one())
    return Page(_frame(_read(store, query), ALARM_COLUMNS), total, offset, limit)


# ---- sweeps -------------------------------------------------------------------------------------

SWEEP_COLUMNS = ("sweep_id", "name", "kind", "status", "created_at", "finished_at", "n_trials", "n_pruned", "best_final")


def sweep_list(store: Store, limit: int = 200) -> pd.DataFrame:
    """Sweeps newest first, with their trial counts and best final score."""
    n_trials = select(func.count()).where(sweep_trials.c.sweep_id == sweeps.c.id).scalar_subquery()
    n_pruned = select(func.count()).where(sweep_trials.c.sweep_id == sweeps.c.id, sweep_trials.c.state == "pruned").scalar_subquery()
    best = select(func.max(sweep_trials.c.final_score)).where(sweep_trials.c.sweep_id == sweeps.c.id).scalar_subquery()
    query = (
        select(sweeps.c.id.label("sweep_id"), sweeps.c.name, sweeps.c.kind, sweeps.c.status, sweeps.c.created_at,
               sweeps.c.finished_at, n_trials.label("n_trials"), n_pruned.label("n_pruned"), best.label("best_final"))
        .order_by(sweeps.c.created_at.desc())
        .limit(limit)
    )
    return _frame(_read(store, query), SWEEP_COLUMNS)


def sweep_detail(store: Store, sweep_id: str) -> dict[str, Any] | None:
    rows = _read(store, select(sweeps).where(sweeps.c.id == sweep_id))
    return rows[0] if rows else None


TRIAL_COLUMNS = (
    "number", "state", "params", "early_score", "final_score", "early_loss", "early_grad_norm", "steps_trained",
    "n_train_samples", "train_run_id", "created_at",
)


def sweep_trial_table(store: Store, sweep_id: str) -> pd.DataFrame:
    """Every trial of a sweep in order (a sweep has tens to hundreds of trials, never paginated)."""
    query = select(*(sweep_trials.c[c] for c in TRIAL_COLUMNS)).where(sweep_trials.c.sweep_id == sweep_id).order_by(sweep_trials.c.number)
    return _frame(_read(store, query), TRIAL_COLUMNS)


def early_final_agreement(trials: pd.DataFrame) -> float | None:
    """Spearman rank correlation of early and final scores over trials that have both (None: undefined)."""
    from harness.ranking import spearman

    both = trials[["early_score", "final_score"]].dropna().astype(float)
    return spearman(both["early_score"].tolist(), both["final_score"].tolist())


def data_efficiency(trials: pd.DataFrame) -> pd.DataFrame:
    """Final score against training-set size: mean, standard error and count per size."""
    cols = ["n_train_samples", "mean", "stderr", "n"]
    both = trials[["n_train_samples", "final_score"]].dropna()
    if both.empty:
        return pd.DataFrame(columns=cols)
    both = both.astype({"n_train_samples": "int64", "final_score": "float64"})
    grouped = both.groupby("n_train_samples")["final_score"]
    out = pd.DataFrame({"mean": grouped.mean(), "stderr": grouped.sem(), "n": grouped.count()}).reset_index()
    return out[cols]


def store_counts(store: Store) -> dict[str, int]:
    """Row counts of the tables each page reads (the "nothing stored yet" checks)."""
    tables = {"runs": runs, "train_runs": train_runs, "monitor_runs": monitor_runs, "alarms": alarms, "sweeps": sweeps}
    with store.engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for name, t in tables.items()}
