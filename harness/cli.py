"""The one `harness` command. Each subcommand lives in harness/commands/ and stays thin."""

from __future__ import annotations

import sys

import typer

from harness.commands.board import board
from harness.commands.comet import comet_app
from harness.commands.finetune import finetune, sweep
from harness.commands.gate import compare, gate
from harness.commands.meta import VersionOption, quiet_progress_bars, suites
from harness.commands.models import models_app
from harness.commands.monitor import monitor_app
from harness.commands.rescore import rescore
from harness.commands.run import run
from harness.commands.runs import export, runs_app
from harness.commands.safety import safety_app
from harness.commands.training import study, train_app

app = typer.Typer(
    name="harness",
    help="Fine-tune LLMs, score checkpoints on standard suites, gate releases, watch drift.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



@app.callback()
def _root(version: VersionOption = False) -> None:
    """Fine-tune LLMs, score checkpoints on standard suites, gate releases, watch drift."""
    quiet_progress_bars(sys.argv)


app.command("run")(run)
app.command("suites")(suites)
app.command("export")(export)
app.command("board")(board)
app.command("finetune")(finetune)
app.command("sweep")(sweep)
app.add_typer(train_app, name="train")
app.command("study")(study)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.command("compare")(compare)
app.command("gate")(gate)
app.add_typer(monitor_app, name="monitor")
app.command("rescore")(rescore)
app.add_typer(safety_app, name="safety")
app.add_typer(comet_app, name="comet")


def main() -> None:
    app()
