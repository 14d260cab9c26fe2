"""`harness comet setup|make-tiny`: the separate environment COMET scores in (see harness/comet.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.commands.common import JsonOption, err, exit_on_error, out, print_json

comet_app = typer.Typer(help="COMET's own environment (unbabel-comet cannot share the harness's).", no_args_is_help=True)

EnvOption = Annotated[
    str | None,
    typer.Option("--env", help="Environment folder (default: $HARNESS_COMET_ENV or ~/.cache/harness/comet-env)."),
]


@comet_app.command("setup")
def setup(
    env: EnvOption = None,
    python: Annotated[str | None, typer.Option(help="Interpreter for the new environment (default: this one).")] = None,
    torch: Annotated[str | None, typer.Option(help="torch requirement (default: this environment's torch version).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Create the COMET environment (a virtualenv with unbabel-comet), or complete a partial one."""
    with exit_on_error():
        from harness.comet import comet_env_dir, setup_env

        target = comet_env_dir(env)
        with err.status(f"installing unbabel-comet into {target} (a few minutes)"):
            info = setup_env(target, python=python, torch_requirement=torch)
        if json_output:
            print_json(info)
        else:
            versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
            out.print(f"COMET environment ready in {target} ({versions})")


@comet_app.command("make-tiny")
def make_tiny(
    directory: Annotated[str, typer.Argument(help="Where to write the tiny COMET model folder.")],
    env: EnvOption = None,
    json_output: JsonOption = False,
) -> None:
    """A tiny COMET-architecture model (tiny XLM-R encoder, briefly trained) for offline tests."""
    with exit_on_error():
        from harness.comet import comet_env_dir, make_tiny

        target = Path(directory).absolute()
        with err.status(f"building a tiny COMET model in {target}"):
            checkpoint = make_tiny(comet_env_dir(env), target)
        if json_output:
            print_json({"model": str(target), "checkpoint": str(checkpoint)})
        else:
            out.print(f"tiny COMET model ready in {target} (use --option comet={target})")
