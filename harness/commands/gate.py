"""`harness compare A B` and `harness gate`: paired comparisons of stored runs, and the CI gate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from harness.commands.common import DbOption, JsonOption, err, exit_on_error, open_store, out, print_json
from harness.errors import UserError

if TYPE_CHECKING:  # the statistics stack (scipy) loads only when compare or gate runs, not for every command
    from harness.comparison import RunComparison
    from harness.gate import GateReport

RefHelp = "run id (or prefix), tag, tag:NAME, run:ID or latest:MODEL"


def compare(
    baseline: Annotated[str, typer.Argument(help=f"Baseline: {RefHelp}.")],
    candidate: Annotated[str, typer.Argument(help=f"Candidate: {RefHelp}.")],
    metric: Annotated[list[str] | None, typer.Option("--metric", help="Only these metrics (repeatable; name or group/name).")] = None,
    top: Annotated[int, typer.Option(min=0, help="List this many worst regressions per suite.")] = 5,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print markdown instead of tables.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Per-metric differences with confidence intervals, p-values and per-sample flips (paired by sample id)."""
    with exit_on_error():
        from harness.compare import to_markdown as compare_markdown
        from harness.comparison import compare_runs
        from harness.refs import resolve_ref

        store = open_store(db, read_only=True)
        try:
            base_sel, cand_sel = resolve_ref(store, baseline), resolve_ref(store, candidate)
            problems = [f"suite {s} only in the baseline" for s in sorted(set(base_sel.runs) - set(cand_sel.runs))]
            problems += [f"suite {s} only in the candidate" for s in sorted(set(cand_sel.runs) - set(base_sel.runs))]
            results = [
                compare_runs(store, base_sel.runs[s], cand_sel.runs[s], metric, top)
                for s in sorted(set(base_sel.runs) & set(cand_sel.runs))
            ]
        finally:
            store.close()
        if not results:
            raise UserError(f"'{baseline}' and '{candidate}' have no suite in common ({'; '.join(problems)})")
        if json_output:
            print_json({"baseline": base_sel.to_json(), "candidate": cand_sel.to_json(),
                        "comparisons": [r.to_json() for r in results], "problems": problems})
        elif markdown:
            out.print(compare_markdown(results, problems), markup=False, highlight=False)
        else:
            for r in results:
                _print_comparison(r)
            for p in problems:
                err.print(f"[yellow]warning:[/] {p}", highlight=False)


def _print_comparison(r: RunComparison) -> None:
    from harness.compare import shorten

    table = Table(title=f"{r.suite}: {r.baseline_run} → {r.candidate_run} ({len(r.pairing.common)} paired samples)")
    for col in ("metric", "baseline", "candidate", "Δ [95% CI]", "p", "test", "+", "−", "=", "n"):
        table.add_column(col, justify="left" if col in ("metric", "test") else "right", no_wrap=col == "metric")
    for m in r.metrics:
        table.add_row(
            f"{m.metric} {'↑' if m.higher_is_better else '↓'}", f"{m.baseline:.4f}", f"{m.candidate:.4f}",
            f"{m.delta:+.4f} [{m.ci.low:+.4f}, {m.ci.high:+.4f}]", f"{m.test.p_value:.3g}", m.test.method,
            str(m.improved), str(m.regressed), str(m.unchanged), str(m.n),
        )
    out.print(table)
    for p in r.problems:
        err.print(f"[yellow]warning:[/] {p}", highlight=False)
    if r.worst:
        out.print(f"[bold]worst regressions on {r.worst_metric}[/]")
        for w in r.worst:
            out.print(f"  [bold]{w.sample_id}[/] worse by {w.worse_by:.4g}\n    prompt:    {shorten(w.prompt)!r}\n"
                      f"    gold:      {shorten(w.gold)!r}\n"
                      f"    baseline:  {shorten(w.baseline_completion)!r}\n    candidate: {shorten(w.candidate_completion)!r}",
                      highlight=False)


def gate(
    baseline: Annotated[str, typer.Option("--baseline", help=f"What the candidate must not fall behind: {RefHelp}.")],
    candidate: Annotated[str, typer.Option("--candidate", help=f"What is being released: {RefHelp}.")],
    policy: Annotated[str | None, typer.Option("--policy", help="Policy YAML (default: each baseline suite, primary metric).")] = None,
    junit: Annotated[str | None, typer.Option("--junit", help="Write JUnit XML here (one test case per suite/metric).")] = None,
    markdown: Annotated[str | None, typer.Option("--markdown", help="Write the markdown report here.")] = None,
    top: Annotated[int, typer.Option(min=0, help="Worst regressions listed per failing metric.")] = 3,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Fail (exit 1) on a significant drop beyond tolerance; exit 2 when the data cannot decide; 0 to pass."""
    with exit_on_error():
        from harness.gate import load_policy, run_gate
        from harness.gate_report import to_junit, to_markdown

        rules = load_policy(policy) if policy else None
        store = open_store(db, read_only=True)
        try:
            report = run_gate(store, baseline, candidate, rules, top)
        finally:
            store.close()
        text = to_markdown(report)
        if markdown:
            Path(markdown).write_text(text, encoding="utf-8")
        if junit:
            Path(junit).write_text(to_junit(report), encoding="utf-8")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")
        if json_output:
            print_json(report.to_json())
        else:
            _print_report(report)
    raise typer.Exit(report.exit_code)


def _print_report(report: GateReport) -> None:
    style = {"pass": "green", "fail": "red", "undecided": "yellow", "skipped": "dim"}
    table = Table(title=f"gate {report.baseline_ref} → {report.candidate_ref}")
    for col in ("suite", "metric", "baseline", "candidate", "Δ [95% CI]", "tol", "p (Holm)", "MDE", "n", "result"):
        table.add_column(col, no_wrap=col == "metric")
    for c in report.checks:
        m = c.comparison
        cells = (
            [f"{m.baseline:.4f}", f"{m.candidate:.4f}", f"{m.delta:+.4f} [{m.ci.low:+.4f}, {m.ci.high:+.4f}]", f"{c.rule.max_drop:g}",
             f"{c.p_adjusted:.3g}" if c.p_adjusted is not None else "", f"{c.mde:.4f}" if c.mde is not None else "", str(m.n)]
            if m else ["", "", "", f"{c.rule.max_drop:g}", "", "", ""]
        )
        table.add_row(c.suite, c.metric, *cells, f"[{style[c.status]}]{c.status}[/]: {c.reason}")
    out.print(table)
    for c in report.checks:
        if c.underpowered or c.too_small:
            err.print(f"[yellow]underpowered:[/] {c.suite} / {c.metric}: with {c.comparison.n if c.comparison else 0} samples "
                      f"only drops of about {(c.mde or float('nan')):.4g} or more are reliably detected (tolerance {c.rule.max_drop:g}); "
                      "add samples to gate on it", highlight=False)
        for w in c.worst if c.status == "fail" else ():
            err.print(f"  worst {w.sample_id} (−{w.worse_by:.4g}): gold {w.gold[:80]!r}; baseline {w.baseline_completion[:80]!r}; "
                      f"candidate {w.candidate_completion[:80]!r}", highlight=False)
    for p in report.problems + report.notes:
        err.print(f"[yellow]note:[/] {p}", highlight=False)
    colour = {"pass": "green", "fail": "red", "undecided": "yellow"}[report.verdict]
    out.print(f"[bold {colour}]{report.verdict.upper()}[/] (exit {report.exit_code})")
