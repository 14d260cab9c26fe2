"""The board's query API: pure functions from a Store to pandas DataFrames, free of Streamlit (unit-tested
on their own, timed by `benchmarks/board.py`).

Split by page: runs and samples (`run_queries`), training runs, checkpoints and sweeps
(`training_queries`), monitors and alarms (`monitor_queries`), shared helpers (`frames`). They are
re-exported here so pages call `queries.NAME`. Comparing two runs is the comparison engine's job:
see `dashboards/comparison.py`.
"""

from __future__ import annotations

from dashboards.frames import Z95, Page, normal_ci, store_counts
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

__all__ = [
    "ALARM_COLUMNS", "ALARM_STATE_COLUMNS", "CHECKPOINT_METRIC_COLUMNS", "FINDING_COLUMNS",
    "FINDING_SERIES_COLUMNS", "METRIC_COLUMNS", "MONITOR_COLUMNS", "RUN_COLUMNS", "SAMPLE_COLUMNS",
    "SWEEP_COLUMNS", "TRAIN_RUN_COLUMNS", "TRAIN_STEP_COLUMNS", "TRIAL_COLUMNS", "Z95", "Page", "RunFilter",
    "alarm_list", "alarm_states", "checkpoint_metrics", "count_runs", "count_samples", "data_efficiency",
    "early_final_agreement", "filter_options", "finding_series", "leaderboard", "metric_names",
    "monitor_findings_of", "monitor_history", "monitor_kinds", "normal_ci", "recent_runs", "run_detail", "run_metrics",
    "run_samples", "sample_score_keys", "score_series", "store_counts", "sweep_detail", "sweep_list", "sweep_trial_table",
    "train_checkpoints", "train_dynamics", "train_run_list",
]
