"""The one `harness` command. Each subcommand lives in harness/commands/ and stays thin."""

from __future__ import annotations

import typer

from harness.commands.finetune import finetune, sweep
from harness.commands.models import models_app
from harness.commands.run import run
from harness.commands.runs import export, runs_app

app = typer.Typer(
    name="harness",
    help="Fine-tune LLMs, score checkpoints on standard suites, gate releases, watch drift.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("run")(run)
app.command("export")(export)
app.command("finetune")(finetune)
app.command("sweep")(sweep)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")


def main() -> None:
    app()
