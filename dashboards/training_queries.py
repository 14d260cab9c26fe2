"""Board queries about training: training runs, their checkpoints' scores and dynamics, and sweeps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from dashboards.frames import _frame, _read, normal_ci
from harness.store import Store, checkpoints, metrics, runs, sweep_trials, sweeps, train_runs, train_steps

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


