"""The store's tables (SQLAlchemy Core), shared by every reader and writer through `harness.store`.

One layout for every feature (runs, training, sweeps, monitors, alarms, leases), so the gate, the
monitors and the board agree on it; `Store` creates what is missing when it opens a store for writing.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 1

metadata = MetaData()

schema_info = Table(
    "schema_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("suite", String(128), nullable=False),
    Column("suite_version", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # running | complete | failed (readers add interrupted)
    Column("model", Text),
    Column("model_hash", String(64)),
    Column("adapter", Text),
    Column("adapter_hash", String(64)),
    Column("backend", String(32), nullable=False),
    Column("backend_info", JSON, nullable=False),
    Column("generation", JSON, nullable=False),
    Column("config", JSON, nullable=False),
    Column("config_hash", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("data_source", Text),
    Column("data_hash", String(64)),
    Column("n_samples", Integer, nullable=False),
    Column("git_revision", String(64)),
    Column("versions", JSON, nullable=False),
    Column("trust_remote_code", Boolean, nullable=False, default=False),
    Column("train_run_id", String(32)),
    Column("step", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("error", Text),
    Index("ix_runs_config_hash", "config_hash"),
    Index("ix_runs_suite_created", "suite", "created_at"),
    Index("ix_runs_model", "model"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("tag", String(128), primary_key=True),
    Index("ix_run_tags_tag", "tag"),
)

samples = Table(
    "samples",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("sample_id", String(256), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("input", JSON, nullable=False),
    Column("requests", JSON, nullable=False),
    Column("completions", JSON, nullable=False),  # list per stage of list of Completion.to_json()
    Column("scores", JSON, nullable=False),
    Column("groups", JSON, nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_samples_run_position", "run_id", "position"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("value", Float, nullable=False),
    Column("stderr", Float),
    Column("n", Integer, nullable=False),
    Column("higher_is_better", Boolean, nullable=False),
)

completions = Table(
    "completions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("request", JSON, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# ---- fine-tuning: training runs, their per-step dynamics and checkpoints --------------------------

train_runs = Table(
    "train_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("method", String(32), nullable=False),  # lora | dora | qlora | full | half
    Column("base_model", Text, nullable=False),
    Column("config", JSON, nullable=False),
    Column("config_hash", String(32), nullable=False),
    Column("output_dir", Text),
    Column("status", String(16), nullable=False),  # running | complete | failed | pruned
    Column("sweep_id", String(32)),
    Column("trial_number", Integer),
    Column("git_revision", String(64)),
    Column("versions", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("error", Text),
    Index("ix_train_runs_sweep", "sweep_id"),
)

train_steps = Table(
    "train_steps",
    metadata,
    Column("train_run_id", String(32), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("epoch", Float),
    Column("loss", Float),
    Column("grad_norm", Float),
    Column("learning_rate", Float),
    Column("tokens_per_s", Float),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("train_run_id", String(32), nullable=False),
    Column("step", Integer, nullable=False),
    Column("fraction", Float),
    Column("path", Text, nullable=False),
    Column("kind", String(16), nullable=False),  # adapter | full
    Column("content_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_checkpoints_run_step", "train_run_id", "step", unique=True),
)

# ---- sweeps: hyper-parameter searches that judge trials early ------------------------------------

sweeps = Table(
    "sweeps",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("kind", String(32), nullable=False),  # search | data-efficiency
    Column("config", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("report", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

sweep_trials = Table(
    "sweep_trials",
    metadata,
    Column("sweep_id", String(32), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("params", JSON, nullable=False),
    Column("train_run_id", String(32)),
    Column("state", String(16), nullable=False),  # running | complete | pruned | failed
    Column("early_score", Float),
    Column("final_score", Float),
    Column("early_loss", Float),
    Column("early_grad_norm", Float),
    Column("steps_trained", Integer),
    Column("n_train_samples", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# ---- monitors: drift and RAG-regression checks, their findings and alarms -------------------------

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),  # drift-score | drift-output | drift-input | rag
    Column("reference", Text),  # run id, run ids, or stream window
    Column("current", Text),
    Column("config", JSON, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("alarm", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_monitor_runs_kind_created", "kind", "created_at"),
)

monitor_findings = Table(
    "monitor_findings",
    metadata,
    Column("monitor_run_id", String(32), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("name", String(256), nullable=False),  # e.g. "response_length", "f1 flips"
    Column("statistic", String(64)),  # e.g. ks, chi2, psi, mmd, page-hinkley, mcnemar
    Column("value", Float),
    Column("p_value", Float),
    Column("threshold", Float),
    Column("alarm", Boolean, nullable=False),
    Column("details", JSON, nullable=False),
)

alarms = Table(
    "alarms",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("monitor_run_id", String(32), nullable=False),
    Column("name", String(256), nullable=False),
    Column("message", Text, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("delivered", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per alarm identity (check kind, check name, subject): its current state, so a scheduled job
# that sees the same alarm again does not page again (monitors/alarms.py). A new table, so existing
# stores gain it on open.
alarm_states = Table(
    "alarm_states",
    metadata,
    Column("key", String(64), primary_key=True),  # sha256 of kind, name, subject
    Column("kind", String(32), nullable=False),
    Column("name", String(256), nullable=False),
    Column("subject", Text, nullable=False),
    Column("state", String(16), nullable=False),  # firing | ok
    Column("since", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("last_notified", DateTime(timezone=True)),
    Column("times_seen", Integer, nullable=False),
    Column("message", Text, nullable=False),
    Column("monitor_run_id", String(32), nullable=False),
)

# ---- monitors: production prompt logs, ingested by stream and time for input-drift windows ---------

prompt_logs = Table(
    "prompt_logs",
    metadata,
    Column("key", String(64), primary_key=True),  # sha256 of stream, ts, prompt, response: re-ingesting is a no-op
    Column("stream", String(128), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),  # UTC
    Column("prompt", Text, nullable=False),
    Column("response", Text),
    Column("features", JSON, nullable=False),  # n_chars, n_words, language (computed once at ingest)
    Column("source", Text, nullable=False),  # file:line it came from
    Column("ingested_at", DateTime(timezone=True), nullable=False),
    Index("ix_prompt_logs_stream_ts", "stream", "ts"),
)
# ---- board: indexes behind its paginated, sorted reads (no new columns) ----------------------------
# The leaderboard sorts all runs by time, the checkpoints page finds a training run's evaluations,
# and the drift page lists alarms newest first; without these each would scan its whole table.

Index("ix_runs_created", runs.c.created_at)
Index("ix_runs_train_step", runs.c.train_run_id, runs.c.step)
Index("ix_metrics_name_value", metrics.c.name, metrics.c.value)
Index("ix_alarms_created", alarms.c.created_at)
Index("ix_train_runs_created", train_runs.c.created_at)
Index("ix_sweeps_created", sweeps.c.created_at)
# ---- metric details: how an aggregate was computed (e.g. sacrebleu signatures) -------------------

metric_details = Table(
    "metric_details",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("details", JSON, nullable=False),  # e.g. {"signature": "nrefs:1|case:mixed|...", "score": "BLEU = ..."}
)

# ---- run leases: one live worker per run configuration (harness/lease.py) --------------------------

run_leases = Table(
    "run_leases",
    metadata,
    Column("key", String(64), primary_key=True),  # the run's config hash: two starts of one command collide here
    Column("run_id", String(32)),  # set once the run row exists
    Column("owner", String(256), nullable=False),  # host:pid:nonce
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_run_leases_run", "run_id"),
)
