"""`harness train list|sweeps` (stored training runs and sweeps) and `harness study` (the fine-tuning study)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.commands.common import DbOption, JsonOption, err, exit_on_error, open_store, out, print_json

train_app = typer.Typer(help="List stored training runs (with checkpoints and scores) and sweeps.", no_args_is_help=True)


def _listing(db: str | None, json_output: bool, query: Callable[[Any, Any], list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    """Rows from a read-only store; with --json they are printed (without their configs) and None returned."""
    from harness.finetune import records

    store = open_store(db, read_only=True)
    try:
        rows = query(records, store)
    finally:
        store.close()
    if not json_output:
        return rows
    print_json([{k: v for k, v in r.items() if k != "config"} for r in rows])
    return None


def _scores_text(scores: dict[str, dict[str, float]]) -> str:
    return "; ".join(f"{suite}: " + ", ".join(f"{m} {v:.3f}" for m, v in sorted(vals.items())) for suite, vals in scores.items())


@train_app.command("list")
def list_training_runs(
    sweep: Annotated[str | None, typer.Option(help="Only the trials of this sweep id.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest N training runs.")] = 50,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Training runs, newest first, with each checkpoint and its scores."""
    with exit_on_error():
        rows = _listing(db, json_output, lambda records, store: records.list_train_runs(store, limit, sweep))
        if rows is None:
            return
        table = Table(title=f"training runs ({len(rows)})")
        for col in ("id", "name", "method", "status", "sweep/trial", "created", "step", "checkpoint", "scores"):
            table.add_column(col, overflow="fold")
        for r in rows:
            sweep_cell = f"{r['sweep_id']}/{r['trial_number']}" if r["sweep_id"] else ""
            head = [r["id"], r["name"], r["method"], r["status"], sweep_cell, f"{r['created_at']:%Y-%m-%d %H:%M}"]
            lines = ([("0", "(base model)", r["base_scores"])] if r["base_scores"] else []) + [
                (str(c["step"]), c["path"], c["scores"]) for c in r["checkpoints"]
            ]
            if not lines:
                table.add_row(*head, "", "(no checkpoint yet)", "")
            for i, (step, path, scores) in enumerate(lines):
                table.add_row(*(head if i == 0 else [""] * len(head)), step, path, _scores_text(scores))
        out.print(table)


@train_app.command("sweeps")
def list_sweeps(
    limit: Annotated[int, typer.Option(min=1, help="Newest N sweeps.")] = 50,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Sweeps, newest first: kind, status, trial states and the headline of the report."""
    with exit_on_error():
        rows = _listing(db, json_output, lambda records, store: records.list_sweeps(store, limit))
        if rows is None:
            return
        table = Table(title=f"sweeps ({len(rows)})")
        for col in ("id", "name", "kind", "status", "trials", "created", "headline"):
            table.add_column(col, overflow="fold")
        for r in rows:
            states = ", ".join(f"{n} {s}" for s, n in r["states"].items())
            table.add_row(r["id"], r["name"], r["kind"], r["status"], states, f"{r['created_at']:%Y-%m-%d %H:%M}", _headline(r))
        out.print(table)


def _headline(row: dict[str, Any]) -> str:
    report = row["report"] or {}
    if "error" in report:
        return f"error: {report['error']}"
    if row["kind"] == "search":
        rho = report.get("spearman_early_final")
        return (f"best trial {report.get('best_trial')} ({report.get('best_final_score')}); early/final Spearman "
                f"{'undefined' if rho is None else f'{rho:.2f}'}; steps {report.get('steps_trained')}/{report.get('steps_full_budget')}")
    if row["kind"] == "data-efficiency":
        sat = report.get("saturation_n")
        return f"saturation {'none' if sat is None else f'{sat:.0f}'} samples; " + "; ".join(report.get("notes") or [])
    return ""


def study(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Base model directory (harness models get-smollm2).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The small design (tiny random model unless --model): seconds, for CI.")] = False,
    output_dir: Annotated[str, typer.Option("--out", help="Checkpoints, study.json, study.md and PNG plots go here.")] = "study",
    steps: Annotated[int | None, typer.Option(min=3, help="Optimisation steps per sweep trial.")] = None,
    learning_rates: Annotated[str | None, typer.Option("--lrs", help="Comma-separated learning rates of the grid.")] = None,
    batch_sizes: Annotated[str | None, typer.Option(help="Comma-separated batch sizes of the grid.")] = None,
    val_limit: Annotated[int | None, typer.Option(min=1, help="Validation samples (attribute-extraction).")] = None,
    val_tokens: Annotated[int | None, typer.Option(min=1, help="New tokens per validation answer.")] = None,
    sizes: Annotated[str | None, typer.Option(help="Comma-separated training-set sizes of the curve.")] = None,
    size_epochs: Annotated[float | None, typer.Option(min=0.1, help="Epochs per size of the curve.")] = None,
    rag_data: Annotated[str | None, typer.Option(help="RAG questions (SQuAD JSON); default ../shared/data/rag/ if present.")] = None,
    rag_limit: Annotated[int | None, typer.Option(min=1, help="RAG questions to ask.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch threads.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress lines or bars.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """The fine-tuning study: early-judging sweep, data-efficiency curve, RAG check (docs/finetuning.md)."""
    with exit_on_error():
        from harness.finetune.study import StudyPlan, run_study

        if model is None and not quick:
            raise typer.BadParameter("give --model DIR (e.g. from `harness models get-smollm2 DIR`) or --quick")
        if model is None:
            from harness.models.tiny import make_tiny_model

            model = str(make_tiny_model(Path(output_dir) / "tiny-model"))
        plan = (StudyPlan.quick if quick else StudyPlan.full)(model, output_dir).with_overrides(
            max_steps=steps, learning_rates=_floats(learning_rates), batch_sizes=_ints(batch_sizes), val_limit=val_limit,
            val_tokens=val_tokens, sizes=_ints(sizes), size_epochs=size_epochs, rag_data=rag_data, rag_limit=rag_limit, threads=threads,
        )
        store = open_store(db)
        try:
            report = run_study(plan, store, show_progress=not (no_progress or json_output))
        finally:
            store.close()
        if json_output:
            print_json(report)
            return
        out.print((Path(output_dir) / "study.md").read_text(), markup=False, highlight=False)
        err.print(f"stored in {store.safe_url}; plots: {', '.join(report['plots'])}")


def _floats(text: str | None) -> list[float] | None:
    return None if text is None else [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str | None) -> list[int] | None:
    return None if text is None else [int(x) for x in text.split(",") if x.strip()]
