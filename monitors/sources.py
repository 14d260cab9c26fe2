"""Read what the drift checks need from the store: metric series over runs, and a run's responses.

Read-only: monitors never write to the run tables.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from harness.errors import UserError
from harness.store import Store, metrics
from monitors.drift import ScorePoint


def select_runs(
    store: Store,
    suite: str | None = None,
    tag: str | None = None,
    model: str | None = None,
    train_run: str | None = None,
    run_refs: Sequence[str] = (),
    last: int = 30,
) -> list[dict[str, object]]:
    """Complete runs in sequence order: explicit `run_refs` in the order given; a training run's
    checkpoints by step; otherwise by creation time. Only the newest `last` are kept."""
    if run_refs:
        from harness.refs import resolve_one

        rows = [resolve_one(store, r, suite) for r in run_refs]
        for row in rows:
            if row["status"] != "complete":
                raise UserError(f"run {row['id']} is {row['status']}, not complete")
        return rows
    if not (suite or train_run):
        raise UserError("say which runs form the series: --suite (with --tag/--model), --train-run, or --run repeated")
    rows = store.list_runs(limit=last, suite=suite, tag=tag, model=model, status="complete", train_run=train_run)
    rows.reverse()
    suites = {r["suite"] for r in rows}
    if len(suites) > 1:
        raise UserError(f"the selected runs mix suites ({', '.join(sorted(map(str, suites)))}); add --suite")
    return rows


def metric_series(
    store: Store, rows: Sequence[dict[str, object]], names: Sequence[str]
) -> tuple[dict[str, list[ScorePoint]], dict[str, bool]]:
    """Each metric's value per run, in the runs' order; a run lacking a metric is an error, not a gap."""
    ids = [str(r["id"]) for r in rows]
    with store.engine.connect() as conn:
        found = conn.execute(select(metrics).where(metrics.c.run_id.in_(ids), metrics.c.name.in_(list(names)))).mappings().all()
    by_key = {(m["run_id"], m["name"]): m for m in found}
    series: dict[str, list[ScorePoint]] = {}
    higher: dict[str, bool] = {}
    for name in names:
        points = []
        for row in rows:
            m = by_key.get((row["id"], name))
            if m is None:
                raise UserError(f"run {row['id']} has no metric '{name}'")
            label = f"step {row['step']}" if row.get("step") is not None else f"{row['created_at']:%Y-%m-%d %H:%M}"
            points.append(ScorePoint(str(row["id"]), label, float(m["value"]), m["stderr"]))
            higher[name] = bool(m["higher_is_better"])
        series[name] = points
    return series, higher


def default_metric(suite: str) -> str:
    """The suite's primary metric: the one rule the gate, `compare` and the board use."""
    from harness.comparison import primary_metric
    from suites import suite_class

    suite_class(suite)  # an unknown suite is a clear error here, with close matches
    return str(primary_metric(suite))


def run_responses(store: Store, ref: str) -> tuple[str, list[str]]:
    """All model completions of a run (every stage), in sample order; `ref` is a run id (or prefix)."""
    run = store.get_run(ref)
    texts = []
    for row in store.run_samples(str(run["id"])):
        for stage, asked in zip(row["completions"], row["requests"], strict=False):
            for completion, request in zip(stage, asked, strict=False):
                if request.get("role", "model") == "model":
                    texts.append(str(completion.get("text", "")))
    if not texts:
        raise UserError(f"run {run['id']} has no stored responses")
    return str(run["id"]), texts
