"""`harness finetune CONFIG.yaml` and `harness sweep SWEEP.yaml`: thin wrappers over harness.finetune."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from harness.commands.common import DbOption, JsonOption, err, exit_on_error, open_store, out, print_json


def finetune(
    config: Annotated[str, typer.Argument(help="Fine-tuning YAML (see README: Fine-tuning and sweeps).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue the unfinished run of this config from its last checkpoint.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Train (LoRA, DoRA, QLoRA, full or half), log every step, checkpoint and score at fractions."""
    with exit_on_error():
        from harness.finetune import records
        from harness.finetune.config import load_finetune_config
        from harness.finetune.train import FinetuneJob

        cfg = load_finetune_config(config)
        store = open_store(db)
        try:
            job = FinetuneJob(cfg, store, show_progress=not (no_progress or json_output))
            if resume:
                previous = records.find_resumable_train_run(store, cfg.identity_hash())
                if previous is None:
                    err.print("no unfinished training run with this configuration; starting a new one")
                else:
                    step = job.attach(previous["id"])
                    err.print(f"resuming training run {previous['id']} at step {step}")
            result = job.train()
        finally:
            store.close()
        if json_output:
            print_json(result.to_json())
            return
        table = Table(title=f"training run {result.train_run_id} ({cfg.method}, {result.n_rows} rows, {result.total_steps} steps)")
        table.add_column("step")
        table.add_column("checkpoint", overflow="fold")
        table.add_column("hash")
        metric_names = _metric_columns(result.base_scores, *(c.scores for c in result.checkpoints))
        single_suite = len({n.partition(":")[0] for n in metric_names}) == 1
        for name in metric_names:
            table.add_column(name.partition(":")[2] if single_suite else name, justify="right")
        if result.base_scores:
            table.add_row("0", "(base model)", "", *_cells(result.base_scores, metric_names))
        for c in result.checkpoints:
            table.add_row(str(c.step), c.path, c.content_hash[:12], *_cells(c.scores, metric_names))
        out.print(table)
        err.print(f"stored in {store.safe_url}")


def _metric_columns(*score_sets: dict[str, dict[str, float]]) -> list[str]:
    names: dict[str, None] = {}
    for scores in score_sets:
        for suite, values in scores.items():
            for metric in values:
                if "/" not in metric:
                    names[f"{suite}:{metric}"] = None
    return list(names)


def _cells(scores: dict[str, dict[str, float]], names: list[str]) -> list[str]:
    cells = []
    for name in names:
        suite, _, metric = name.partition(":")
        value = scores.get(suite, {}).get(metric)
        cells.append("" if value is None else f"{value:.4f}")
    return cells


def sweep(
    config: Annotated[str, typer.Argument(help="Sweep YAML: a base fine-tuning config, a search space, a validation suite.")],
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide the progress bars.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Hyper-parameter search that judges trials early, or a data-efficiency curve."""
    with exit_on_error():
        from harness.finetune.sweep import load_sweep_config, run_sweep

        cfg = load_sweep_config(config)
        store = open_store(db)
        try:
            result = run_sweep(cfg, store, show_progress=not (no_progress or json_output))
        finally:
            store.close()
        if json_output:
            print_json(result.to_json())
            return
        render_sweep(result.kind, result.sweep_id, result.report, result.trials)
        err.print(f"stored in {store.safe_url}")


def _fmt(value: Any, none: str = "-") -> str:
    if value is None:
        return none
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_sweep(kind: str, sweep_id: str, report: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    table = Table(title=f"sweep {sweep_id} ({kind})")
    for col in ("trial", "state", "params", "rows", "steps", "early score", "early loss", "early grad norm", "final score"):
        table.add_column(col)
    for t in trials:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in (t["params"] or {}).items())
        table.add_row(str(t["number"]), t["state"], params, _fmt(t["n_train_samples"]), _fmt(t["steps_trained"]),
                      _fmt(t["early_score"]), _fmt(t["early_loss"]), _fmt(t["early_grad_norm"]), _fmt(t["final_score"]))
    out.print(table)
    summary = Table(title="report", show_header=False)
    for key, value in report.items():
        if key in ("points", "notes"):
            continue
        summary.add_row(key, _fmt(value, "undefined"))
    out.print(summary)
    if report.get("points"):
        points = Table(title="curve points")
        for col in ("training samples", "score", "stderr"):
            points.add_column(col, justify="right")
        for p in report["points"]:
            points.add_row(str(p["n"]), _fmt(p["score"]), _fmt(p["stderr"]))
        out.print(points)
    for note in report.get("notes") or []:
        out.print(f"note: {note}", highlight=False)
