"""Options and helpers shared by every command: the store URL, JSON output, error handling."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from harness.config import resolve_db_url
from harness.errors import HarnessError
from harness.store import Store

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Store URL: a SQLite path/URL or postgresql+psycopg://... (default: $HARNESS_DB or ./harness.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]

# Tables keep their shape in CI logs and pipes (rich would otherwise assume 80 columns).
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def open_store(db: str | None, read_only: bool = False, create: bool = True) -> Store:
    """The store named by --db; commands that only read or report pass `create=False` (or
    `read_only`), so a mistyped path is an error instead of a new, empty store."""
    return Store(resolve_db_url(db), read_only=read_only, create=create)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


@contextmanager
def exit_on_error() -> Iterator[None]:
    """User mistakes print one line and exit 2; other deliberate errors exit 1 without a traceback."""
    try:
        yield
    except HarnessError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted; rerun the same command to resume[/]")
        raise typer.Exit(130) from None
