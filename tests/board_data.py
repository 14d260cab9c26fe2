"""A store filled for the board's tests: real runs (tiny model and file backend) plus small helpers that
write training, monitor and sweep rows the way the fine-tuning, monitor and sweep commands do."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.runner import Runner
from harness.store import (
    Store,
    alarms,
    checkpoints,
    monitor_findings,
    monitor_runs,
    runs,
    sweep_trials,
    sweeps,
    train_runs,
    train_steps,
)
from suites.rag_extraction import RagExtractionSuite

LIMIT = 10
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def _id() -> str:
    return uuid.uuid4().hex[:12]


def run_tiny(store: Store, model: Path, name: str, tags: list[str]) -> str:
    config = RunConfig(
        suites=[SuiteConfig(name="rag-extraction", limit=LIMIT)],
        model=ModelConfig(path=str(model), backend="hf", dtype="float32", device="cpu", batch_size=8),
        generation=GenerationConfig(max_new_tokens=6),
        run_name=name,
        tags=tags,
    )
    return Runner(config, store, show_progress=False).run()[0].run_id


def run_file(store: Store, tmp: Path, name: str, tags: list[str], right: set[int]) -> str:
    """A file-backend run answering the gold answer on the sample positions in `right`, else abstaining."""
    suite = RagExtractionSuite()
    items = suite.load(suite.default_data())[:LIMIT]
    path = tmp / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i, s in enumerate(items):
            gold = list(s.data.get("answers") or [])
            answer = gold[0] if (i in right and gold) else "unanswerable"
            fh.write(json.dumps({"id": s.id, "completion": answer}) + "\n")
    config = RunConfig(
        suites=[SuiteConfig(name="rag-extraction", limit=LIMIT)],
        model=ModelConfig(backend="file", completions=str(path)),
        run_name=name,
        tags=tags,
    )
    return Runner(config, store, show_progress=False).run()[0].run_id


def add_training(store: Store, eval_runs: dict[int, str], name: str = "sft-lora-tiny") -> str:
    """A training run with 30 logged steps and a checkpoint per evaluated step; links runs to steps."""
    train_id = _id()
    with store.transaction() as conn:
        conn.execute(train_runs.insert().values(
            id=train_id, name=name, method="lora", base_model="tiny", config={"lr": 1e-3}, config_hash="c" * 16,
            output_dir="/tmp/ckpt", status="complete", versions={}, created_at=T0, finished_at=T0 + dt.timedelta(hours=1),
        ))
        conn.execute(train_steps.insert(), [
            {"train_run_id": train_id, "step": s, "epoch": s / 30, "loss": 3.0 / (1 + s / 10), "grad_norm": 1.0 + (s % 5) / 10,
             "learning_rate": 1e-3, "tokens_per_s": 1000.0, "created_at": T0 + dt.timedelta(minutes=s)}
            for s in range(1, 31)
        ])
        for step, run_id in eval_runs.items():
            conn.execute(checkpoints.insert().values(
                id=_id(), train_run_id=train_id, step=step, fraction=step / 30, path=f"/tmp/ckpt/step-{step}", kind="adapter",
                content_hash="h" * 64, created_at=T0 + dt.timedelta(minutes=step),
            ))
            conn.execute(runs.update().where(runs.c.id == run_id).values(train_run_id=train_id, step=step))
    return train_id


def add_monitor(store: Store, values: list[float], threshold: float = 0.2) -> list[str]:
    """One drift-score monitor run per value (a PSI finding each); values over the threshold raise an alarm."""
    ids = []
    with store.transaction() as conn:
        for i, value in enumerate(values):
            mid = _id()
            alarm = value > threshold
            conn.execute(monitor_runs.insert().values(
                id=mid, kind="drift-score", reference="ref", current=f"cur-{i}", config={"threshold": threshold},
                summary={"psi": value}, alarm=alarm, created_at=T0 + dt.timedelta(days=i),
            ))
            conn.execute(monitor_findings.insert().values(
                monitor_run_id=mid, idx=0, name="score psi", statistic="psi", value=value, p_value=None,
                threshold=threshold, alarm=alarm, details={},
            ))
            if alarm:
                conn.execute(alarms.insert().values(
                    id=_id(), monitor_run_id=mid, name="score psi", message=f"PSI {value:.2f} over {threshold}",
                    payload={"value": value}, delivered=False, created_at=T0 + dt.timedelta(days=i),
                ))
            ids.append(mid)
    return ids


def add_sweep(store: Store, name: str = "lr-search") -> str:
    """A data-efficiency sweep: 6 trials over 3 training-set sizes, one pruned early."""
    sweep_id = _id()
    trials: list[dict[str, Any]] = []
    for number, (n_train, early, final, state) in enumerate([
        (100, 0.20, 0.30, "complete"), (100, 0.25, 0.35, "complete"), (400, 0.35, 0.50, "complete"),
        (400, 0.30, 0.45, "complete"), (1600, 0.50, 0.70, "complete"), (1600, 0.05, None, "pruned"),
    ]):
        trials.append({
            "sweep_id": sweep_id, "number": number, "params": {"lr": 10 ** -(3 + number % 2)}, "train_run_id": None,
            "state": state, "early_score": early, "final_score": final, "early_loss": 2.0 - early, "early_grad_norm": 1.0,
            "steps_trained": 20 if state == "pruned" else 100, "n_train_samples": n_train,
            "created_at": T0 + dt.timedelta(minutes=number),
        })
    with store.transaction() as conn:
        conn.execute(sweeps.insert().values(
            id=sweep_id, name=name, kind="data-efficiency", config={"metric": "f1"}, status="complete",
            report={"best_trial": 4}, created_at=T0, finished_at=T0 + dt.timedelta(hours=2),
        ))
        conn.execute(sweep_trials.insert(), trials)
    return sweep_id


def add_drifting_series(url: str, tiny: str, even: str) -> list[str]:
    """What a team's store holds after some nights: an mmlu series tagged nightly-mmlu whose accuracy
    drops a point a night from night 7, checked by `harness monitor drift scores` as it grew (the check
    alarms once the drop is sustained), plus an output-drift check between two real runs. Written
    through the CLI, so findings, alarm states and notifications are the monitors' own."""
    from typer.testing import CliRunner

    from harness.cli import app
    from harness.types import MetricValue

    store = Store(url)
    ids = []
    try:
        for night in range(14):
            acc = 0.62 - 0.01 * max(0, night - 6)
            run_id = store.create_run({"name": f"nightly-{night:02d}", "suite": "mmlu", "suite_version": "1.0",
                                       "model": "org/model-nightly", "backend": "hf", "backend_info": {}, "generation": {},
                                       "config": {}, "config_hash": f"mmlu-night-{night}", "fingerprint": "f",
                                       "n_samples": 1000, "versions": {}}, tags=["nightly-mmlu"])
            store.finish_run(run_id, [MetricValue("acc", acc, 0.005, 1000, True)])
            with store.transaction() as conn:  # one run a night
                conn.execute(runs.update().where(runs.c.id == run_id).values(created_at=T0 + dt.timedelta(days=night)))
            ids.append(run_id)
    finally:
        store.close()
    cli = CliRunner()
    for last in (8, 10, 12, 14, 14):
        result = cli.invoke(app, ["monitor", "drift", "scores", "--suite", "mmlu", "--tag", "nightly-mmlu", "--last", str(last),
                                  "--db", url, "--json"])
        assert result.exit_code in (0, 1), result.output
    result = cli.invoke(app, ["monitor", "drift", "outputs", "--reference", tiny, "--current", even, "--embedder", "tfidf",
                              "--db", url, "--json"])
    assert result.exit_code in (0, 1), result.output
    return ids


RUN_NAMES = ("tiny-base", "gold-even", "gold-mixed")


def fill_board_store(url: str, tiny_model: Path, tmp: Path, realistic: bool = False) -> dict[str, Any]:
    """Three real runs (tiny model; file backend right on even positions; right on positions 0, 5, 7:
    against gold-even that is 3 regressions and 2 improvements on answerable samples), a
    training run that evaluated the two file runs at steps 10 and 20, drift history and a sweep;
    `realistic` adds a drifting nightly mmlu series with the monitors' own checks and alarms."""
    store = Store(url)
    try:
        tiny = run_tiny(store, tiny_model, "tiny-base", ["nightly"])
        even = run_file(store, tmp, "gold-even", ["nightly", "candidate"], set(range(0, LIMIT, 2)))
        mixed = run_file(store, tmp, "gold-mixed", ["candidate"], {0, 5, 7})
        train = add_training(store, {10: mixed, 20: even})
        monitors = add_monitor(store, [0.05, 0.1, 0.35])
        sweep = add_sweep(store)
    finally:
        store.close()
    nightly = add_drifting_series(url, tiny, even) if realistic else []
    return {"tiny": tiny, "even": even, "mixed": mixed, "train": train, "monitors": monitors, "sweep": sweep,
            "nightly": nightly}
