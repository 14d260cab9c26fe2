"""`harness runs list|show` and `harness export`: read stored runs back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.commands.common import DbOption, JsonOption, err, exit_on_error, open_store, out, print_json
from harness.errors import ConfigError

runs_app = typer.Typer(help="List and inspect stored runs.", no_args_is_help=True)


def _summary(run: dict[str, Any], metric_rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "run_id": run["id"],
        "name": run["name"],
        "suite": run["suite"],
        "status": run["status"],
        "model": run["model"],
        "adapter": run["adapter"],
        "created_at": run["created_at"],
        "n_samples": run["n_samples"],
        "metrics": {m["name"]: m["value"] for m in metric_rows},
    }


@runs_app.command("list")
def list_runs(
    suite: Annotated[str | None, typer.Option(help="Only this suite.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only runs with this tag.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model path/id.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Newest runs first, with their headline metric."""
    with exit_on_error():
        store = open_store(db, read_only=True)
        rows = store.list_runs(limit=limit, suite=suite, tag=tag, model=model)
        summaries = [_summary(r, store.run_metrics(r["id"])) for r in rows]
        if json_output:
            print_json({"runs": summaries})
            return
        table = Table(title=f"runs in {store.safe_url}")
        for col in ("run", "name", "suite", "status", "samples", "created", "headline"):
            table.add_column(col, no_wrap=col in ("run", "created"))
        for s in summaries:
            head = _headline(s["suite"], s["metrics"])
            table.add_row(s["run_id"], s["name"], s["suite"], s["status"], str(s["n_samples"]),
                          f"{s['created_at']:%Y-%m-%d %H:%M}", head)
        out.print(table)


def _headline(suite: str, values: dict[str, float]) -> str:
    try:
        from suites import suite_class

        primary = suite_class(suite).primary_metric
    except ConfigError:
        primary = next(iter(values), "")
    return f"{primary}={values[primary]:.4f}" if primary in values else ""


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="Run id (or an unambiguous prefix).")],
    samples: Annotated[int, typer.Option(min=0, help="Also list the first N samples.")] = 0,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Metrics with standard errors, provenance, and optionally samples of one run."""
    with exit_on_error():
        store = open_store(db, read_only=True)
        run = store.get_run(run_id)
        metric_rows = store.run_metrics(run["id"])
        sample_rows = store.run_samples(run["id"], limit=samples) if samples else []
        if json_output:
            print_json({"run": run, "metrics": metric_rows, "samples": sample_rows})
            return
        out.print(f"[bold]{run['name']}[/]  ({run['id']}, {run['suite']} v{run['suite_version']}, {run['status']})")
        if run["error"]:
            out.print(f"[red]error:[/] {run['error']}")
        prov = Table(show_header=False, title="provenance")
        for key in ("model", "model_hash", "adapter", "adapter_hash", "backend", "config_hash", "data_source",
                    "data_hash", "git_revision", "created_at", "finished_at", "trust_remote_code"):
            prov.add_row(key, str(run[key]))
        prov.add_row("versions", json.dumps(run["versions"]))
        prov.add_row("tags", ", ".join(run["tags"]))
        out.print(prov)
        from suites.task_file import stored_task_file

        task_file = stored_task_file(run)
        if task_file:
            out.print(f"task file {task_file['path']} (sha256 {str(task_file['sha256'])[:12]}):\n{task_file['text']}", highlight=False)
        table = Table(title="metrics")
        for col in ("metric", "value", "± stderr", "n"):
            table.add_column(col)
        for m in metric_rows:
            table.add_row(m["name"], f"{m['value']:.4f}", f"{m['stderr']:.4f}" if m["stderr"] is not None else "", str(m["n"]))
        out.print(table)
        for m in metric_rows:
            if m["details"].get("signature"):
                out.print(f"{m['name']}: {m['details']['signature']}", highlight=False)
            if m["details"].get("ci95"):  # e.g. the safety rates' Wilson interval
                low, high = m["details"]["ci95"]
                out.print(f"{m['name']}: 95% CI [{low:.4f}, {high:.4f}] ({m['details'].get('interval', '')})", highlight=False)
        for s in sample_rows:
            text = s["completions"][0][0].get("text", "") if s["completions"] and s["completions"][0] else ""
            out.print(f"[bold]{s['sample_id']}[/] {json.dumps(s['scores'])}\n  {text[:200]!r}")


def export(
    run_id: Annotated[str, typer.Argument(help="Run id (or prefix).")],
    format: Annotated[str, typer.Option("--format", help="jsonl | parquet")] = "jsonl",
    output: Annotated[str | None, typer.Option("--output", "-o", help="File to write (default RUN_ID.FORMAT).")] = None,
    db: DbOption = None,
) -> None:
    """Write a run's per-sample results (input, requests, completions, scores) to JSONL or Parquet."""
    with exit_on_error():
        if format not in ("jsonl", "parquet"):
            raise ConfigError(f"--format '{format}': use jsonl or parquet")
        store = open_store(db, read_only=True)
        run = store.get_run(run_id)
        rows = store.run_samples(run["id"])
        target = Path(output or f"{run['id']}.{format}")
        if format == "jsonl":
            with target.open("w", encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps({k: v for k, v in r.items()}, default=str, ensure_ascii=False) + "\n")
        else:
            import pandas as pd

            frame = pd.DataFrame(
                [{**{k: r[k] for k in ("run_id", "sample_id", "position")},
                  **{k: json.dumps(r[k], ensure_ascii=False) for k in ("input", "requests", "completions", "scores", "groups", "details")}}
                 for r in rows]
            )
            frame.to_parquet(target, index=False)
        err.print(f"wrote {len(rows)} samples to {target}")
