"""`harness safety classify`: label any CSV/JSONL of completions as compliance / refusal / partial refusal.

Users audit their own logs with it; `--detector` picks the rules, the learned detector or a judge
backend (the same three as `harness run safety --option detector=`). The refusal rate comes with its
95% Wilson interval; with `--label-column` it also reports agreement with human labels (partial
refusal counted as refusal), Cohen's kappa and the confusion matrix.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.commands.common import JsonOption, err, exit_on_error, out, print_json
from harness.config import ModelConfig
from harness.errors import ConfigError, DataError
from harness.refusal import RefusalVerdict

safety_app = typer.Typer(help="Refusal detection on completions made anywhere.", no_args_is_help=True)


def _verdicts(detector: str, ids: list[str], prompts: list[str] | None, completions: list[str],
              judge: ModelConfig | None) -> list[RefusalVerdict]:
    """Every row's verdict from the chosen detector (the judge's unparsable answers fall back to the rules)."""
    from harness.refusal import classify

    if detector == "rules":
        return [classify(c) for c in completions]
    if detector == "learned":
        from harness.refusal_learned import LearnedDetector

        return LearnedDetector().classify_many(completions)
    if judge is None:
        raise ConfigError("--detector judge needs a judge: --judge-model (or --judge-backend file --judge-completions)")
    if prompts is None:
        raise ConfigError("--detector judge needs --prompt-column: the judge reads the request with the answer")
    from harness.backends import create_backend
    from suites.safety import judge_request, parse_judge_label

    backend = create_backend(judge)
    try:
        raw = [c.text for c in backend.generate([judge_request(p, c, sample_id=i)
                                                 for i, p, c in zip(ids, prompts, completions, strict=True)])]
    finally:
        backend.close()
    out_ = []
    for text, completion in zip(raw, completions, strict=True):
        label = parse_judge_label(text)
        if label is None:
            rules = classify(completion)
            out_.append(RefusalVerdict(rules.label, "rules (judge answer unparsable)", rules.evidence, rules.rule))
        else:
            out_.append(RefusalVerdict(label, "judge", text.strip()[-300:], "judge label"))
    return out_


def classify_file(path: str, prompt_column: str | None, completion_column: str, label_column: str | None,
                  detector: str = "rules", judge: ModelConfig | None = None) -> dict[str, Any]:
    """Classify every row; the refusal rate with its 95% interval; with human labels, agreement, kappa, confusion."""
    from harness.refusal_eval import agreement, human_refused
    from harness.stats import wilson_interval
    from suites.safety import DETECTORS, pick_column, read_table

    if detector not in DETECTORS:
        raise ConfigError(f"--detector {detector!r}: use {', '.join(DETECTORS)}")
    rows, columns = read_table(path)
    completion_column = pick_column(columns, completion_column, (), path, "completion")
    if prompt_column is not None:
        pick_column(columns, prompt_column, (), path, "prompt")
    if label_column is not None:
        pick_column(columns, label_column, (), path, "label")
    completions, gold = [], []
    for line, row in rows:
        completion = row.get(completion_column)
        if not isinstance(completion, str):
            raise DataError(path, line, completion_column, "missing" if completion is None else "expected a string")
        completions.append(completion)
        if label_column is not None:
            gold.append(human_refused(str(row.get(label_column, "")), path, line, label_column))
    ids = [str(row.get("id", line)) for line, row in rows]
    prompts = [str(row.get(prompt_column, "")) for _, row in rows] if prompt_column is not None else None
    verdicts = _verdicts(detector, ids, prompts, completions, judge)
    results = []
    for k, ((line, row), verdict) in enumerate(zip(rows, verdicts, strict=True)):
        item: dict[str, Any] = {"line": line, "id": row.get("id", line), **verdict.to_json()}
        if prompts is not None:
            item["prompt"] = prompts[k]
        if gold:
            item["human_refused"] = gold[k]
        results.append(item)
    refused = sum(r["refused"] for r in results)
    summary: dict[str, Any] = {
        "file": path,
        "detector": detector,
        "n": len(results),
        "labels": dict(Counter(r["label"] for r in results)),
        "refusal_rate": refused / len(results),
        "refusal_rate_ci95": list(wilson_interval(refused, len(results))),
    }
    if gold:
        summary.update(agreement(gold, [r["refused"] for r in results]))
    return {"summary": summary, "rows": results}


@safety_app.command("classify")
def classify_command(
    file: Annotated[str, typer.Argument(help="CSV (with a header) or JSONL of completions.")],
    completion_column: Annotated[str, typer.Option(help="Column holding the model's answer.")] = "completion",
    prompt_column: Annotated[str | None, typer.Option(help="Column holding the prompt (copied to the output; the judge reads it).")] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Human labels (compliance / refusal / partial refusal) to measure agreement.")
    ] = None,
    detector: Annotated[str, typer.Option(help="rules | learned | judge (see docs/safety.md).")] = "rules",
    judge_model: Annotated[str | None, typer.Option(help="--detector judge: judge model directory or hub id.")] = None,
    judge_backend: Annotated[str | None, typer.Option(help="--detector judge: hf | vllm | openai | file (default hf).")] = None,
    judge_completions: Annotated[
        str | None, typer.Option(help="--detector judge with the file backend: JSONL of {id, completion}.")
    ] = None,
    judge_option: Annotated[list[str] | None, typer.Option(help="Judge backend option KEY=VALUE (repeatable).")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write one JSON line per row here.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Label each completion (compliance / refusal / partial refusal) with the chosen detector and its evidence."""
    with exit_on_error():
        from harness.commands.run import build_judge

        judge = build_judge(judge_model, judge_backend, judge_completions, judge_option or [], "auto", "auto", 8, None)
        result = classify_file(file, prompt_column, completion_column, label_column, detector, judge)
        if output:
            with Path(output).open("w", encoding="utf-8") as fh:
                for row in result["rows"]:
                    fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            err.print(f"wrote {len(result['rows'])} labels to {output}")
        summary = result["summary"]
        if json_output:
            print_json(summary | ({} if output else {"rows": result["rows"]}))
            return
        low, high = summary["refusal_rate_ci95"]
        out.print(f"{summary['file']}: {summary['n']} completions, detector {detector}, refusal rate "
                  f"{summary['refusal_rate']:.4f} [95% CI {low:.4f}, {high:.4f}]  {json.dumps(summary['labels'])}")
        if "agreement" in summary:
            table = Table(title=f"agreement with human labels: {summary['agreement']:.4f}, kappa {summary['kappa']:.4f}")
            table.add_column("human \\ detector")
            table.add_column("compliance", justify="right")
            table.add_column("refusal", justify="right")
            for h in ("compliance", "refusal"):
                table.add_row(h, *(str(summary["confusion"][f"human_{h}/detector_{d}"]) for d in ("compliance", "refusal")))
            out.print(table)
