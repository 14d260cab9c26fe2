"""`harness safety classify`: label any CSV/JSONL of completions as compliance / refusal / partial refusal.

Users audit their own logs with it; with `--label-column` it also reports agreement with human labels
(partial refusal counted as refusal) and the confusion matrix.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.commands.common import JsonOption, err, exit_on_error, out, print_json
from harness.errors import DataError

safety_app = typer.Typer(help="Refusal detection on completions made anywhere.", no_args_is_help=True)


def human_refused(value: str, path: str, line: int, column: str) -> bool:
    """Read a human label: anything naming compliance is not a refusal; refusal / partial refusal are."""
    text = value.strip().lower()
    if "compli" in text:
        return False
    if "refus" in text or "partial" in text:
        return True
    raise DataError(path, line, column, f"cannot read label {value!r} (expected compliance, refusal or partial refusal)")


def classify_file(path: str, prompt_column: str | None, completion_column: str, label_column: str | None) -> dict[str, Any]:
    """Classify every row; with human labels, the agreement and the confusion matrix."""
    from harness.refusal import classify
    from suites.safety import pick_column, read_table

    rows, columns = read_table(path)
    completion_column = pick_column(columns, completion_column, (), path, "completion")
    if prompt_column is not None:
        pick_column(columns, prompt_column, (), path, "prompt")
    if label_column is not None:
        pick_column(columns, label_column, (), path, "label")
    results = []
    confusion: Counter[tuple[str, str]] = Counter()
    for line, row in rows:
        completion = row.get(completion_column)
        if not isinstance(completion, str):
            raise DataError(path, line, completion_column, "missing" if completion is None else "expected a string")
        verdict = classify(completion)
        item: dict[str, Any] = {"line": line, "id": row.get("id", line), **verdict.to_json()}
        if prompt_column is not None:
            item["prompt"] = row.get(prompt_column)
        if label_column is not None:
            gold = human_refused(str(row.get(label_column, "")), path, line, label_column)
            item["human_refused"] = gold
            confusion[("refusal" if gold else "compliance", "refusal" if verdict.refused else "compliance")] += 1
        results.append(item)
    summary: dict[str, Any] = {
        "file": path,
        "n": len(results),
        "labels": dict(Counter(r["label"] for r in results)),
        "refusal_rate": sum(r["refused"] for r in results) / len(results),
    }
    if label_column is not None:
        agree = confusion[("compliance", "compliance")] + confusion[("refusal", "refusal")]
        summary["agreement"] = agree / len(results)
        summary["confusion"] = {f"human_{h}/detector_{d}": confusion[(h, d)]
                                for h in ("compliance", "refusal") for d in ("compliance", "refusal")}
    return {"summary": summary, "rows": results}


@safety_app.command("classify")
def classify_command(
    file: Annotated[str, typer.Argument(help="CSV (with a header) or JSONL of completions.")],
    completion_column: Annotated[str, typer.Option(help="Column holding the model's answer.")] = "completion",
    prompt_column: Annotated[str | None, typer.Option(help="Column holding the prompt (copied to the output).")] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Human labels (compliance / refusal / partial refusal) to measure agreement.")
    ] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write one JSON line per row here.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Label each completion (compliance / refusal / partial refusal) with the pattern detector and its evidence."""
    with exit_on_error():
        result = classify_file(file, prompt_column, completion_column, label_column)
        if output:
            with Path(output).open("w", encoding="utf-8") as fh:
                for row in result["rows"]:
                    fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            err.print(f"wrote {len(result['rows'])} labels to {output}")
        summary = result["summary"]
        if json_output:
            print_json(summary | ({} if output else {"rows": result["rows"]}))
            return
        out.print(f"{summary['file']}: {summary['n']} completions, refusal rate {summary['refusal_rate']:.4f}  "
                  f"{json.dumps(summary['labels'])}")
        if "agreement" in summary:
            table = Table(title=f"agreement with human labels: {summary['agreement']:.4f}")
            table.add_column("human \\ detector")
            table.add_column("compliance", justify="right")
            table.add_column("refusal", justify="right")
            for h in ("compliance", "refusal"):
                table.add_row(h, *(str(summary["confusion"][f"human_{h}/detector_{d}"]) for d in ("compliance", "refusal")))
            out.print(table)
