"""`harness --version`, `harness suites`, and quiet library progress bars where nobody watches them."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.commands.common import JsonOption, exit_on_error, out, print_json


def quiet_progress_bars(argv: list[str]) -> None:
    """Library progress bars (model loading, vLLM, tokenisers) go to stderr and interleave with results:
    switch them off for `--json` or when stderr is not a terminal (CI logs, pipes). Set before the
    libraries are imported, as environment variables they read; an explicit user setting wins."""
    if "--json" in argv or not sys.stderr.isatty():
        for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(name, "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def version_callback(value: bool) -> None:
    if value:
        import harness

        out.print(f"harness {harness.__version__}", highlight=False)
        raise typer.Exit()


VersionOption = Annotated[
    bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")
]


def _describe(name: str) -> dict[str, Any]:
    from suites import suite_class

    cls = suite_class(name)
    try:  # options are a class-level fact; no instance (some suites need options to be built)
        options = list(cls.allowed_options(object.__new__(cls)))
    except AttributeError:
        options = []
    return {
        "name": name,
        "version": getattr(cls, "version", None),
        "primary_metric": cls.primary_metric,
        "metrics": [{"name": m.name, "higher_is_better": m.higher_is_better, "description": m.description}
                    for m in cls.metrics],
        "options": options,
        "summary": _first_line(cls.__doc__) or _first_line(sys.modules[cls.__module__].__doc__),
    }


def _first_line(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join(doc.strip().split("\n\n")[0].split()) if doc and doc.strip() else ""


def suites(json_output: JsonOption = False) -> None:
    """List the suites with their metrics (primary first) and options (`--option KEY=VALUE` of harness run)."""
    with exit_on_error():
        from suites import SUITE_PREFIXES, SUITES

        listed = [_describe(name) for name in sorted(SUITES)]
        families = [{"name": f"{prefix}TASK", "summary": "any lm-eval task, scored through harness backends"}
                    for prefix in SUITE_PREFIXES]
        if json_output:
            print_json({"suites": listed, "families": families})
            return
        table = Table(title="suites (harness run SUITE --option KEY=VALUE)")
        for col in ("suite", "metrics (primary first)", "options", "what it scores"):
            table.add_column(col, overflow="fold")
        for s in listed:
            names = [s["primary_metric"], *(m["name"] for m in s["metrics"] if m["name"] != s["primary_metric"])]
            table.add_row(s["name"], ", ".join(names), ", ".join(s["options"]) or "-", s["summary"])
        for f in families:
            table.add_row(f["name"], "the task's own metrics", "num_fewshot, include_path, per_task_limit", f["summary"])
        out.print(table)
