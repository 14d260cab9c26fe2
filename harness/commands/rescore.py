"""`harness rescore RUN`: score a stored run's raw completions again with the current suite code."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.commands.common import DbOption, JsonOption, err, exit_on_error, open_store, out, print_json
from harness.commands.run import render_results
from harness.runner import Runner


def rescore(
    run_id: Annotated[str, typer.Argument(help="Run id (or an unambiguous prefix) to re-score.")],
    tag: Annotated[list[str] | None, typer.Option(help="Tags for the new run (default: the old run's tags).")] = None,
    option: Annotated[list[str] | None, typer.Option(help="Override a suite option KEY=VALUE that only changes "
                                                     "scoring, e.g. detector=learned (safety).")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Replay a run's stored answers (model and judge) through the current suite code; no model is loaded."""
    with exit_on_error():
        from harness.commands.run import _parse_options
        from harness.rescore import metric_changes, rescore_config

        store = open_store(db, create=False)
        try:
            old, config = rescore_config(store, run_id, tag, _parse_options(option or []))
            before = store.run_metrics(old["id"])
            results = Runner(config, store, show_progress=not (no_progress or json_output)).run()
        finally:
            store.close()
        changes = metric_changes(before, results[0].to_json()["metrics"])
        from suites.task_file import task_file_change

        task_note = task_file_change(old)
        if json_output:
            print_json({"source_run": old["id"], "runs": [r.to_json() for r in results], "changed": changes,
                        "task_file_changed": task_note})
            return
        if task_note:
            err.print(task_note)
        render_results(results)
        if changes:
            out.print(f"{len(changes)} metric(s) changed since run {old['id']}:")
            for name, c in changes.items():
                out.print(f"  {name}: {c['before']} -> {c['after']}")
        else:
            out.print(f"every metric equals run {old['id']}'s")
        err.print(f"stored in {store.safe_url}")
