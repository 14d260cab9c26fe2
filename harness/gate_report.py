"""The gate's reports: a GitHub-flavoured markdown summary and JUnit XML (one test case per
suite/metric). The terminal table is printed by `harness/commands/gate.py`."""

from __future__ import annotations

import math
from xml.etree import ElementTree as ET

from harness.compare import md_quote
from harness.gate import Check, GateReport
from harness.gate_policy import Rule

_BADGE = {"pass": "PASS", "fail": "FAIL (regression)", "undecided": "CANNOT DECIDE"}
_ICON = {"pass": "✅", "fail": "❌", "undecided": "⚠️", "skipped": "⏭️"}


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: GateReport) -> str:
    """A GitHub-flavoured markdown report (the CI step summary)."""
    lines = [f"## harness gate: {_ICON[report.verdict]} {_BADGE[report.verdict]} (exit {report.exit_code})", ""]
    for label, sel, ref in (("baseline", report.baseline, report.baseline_ref), ("candidate", report.candidate, report.candidate_ref)):
        runs = ", ".join(f"{s}: `{r}`" for s, r in sel.run_ids().items()) if sel else "nothing selected"
        lines.append(f"- **{label}** `{ref}` → {runs}")
    lines += [
        "",
        "Values are means over paired samples (micro average), or the corpus statistic over paired segments for "
        "BLEU/chrF/TER; drop = loss in the metric's better direction; p = one-sided paired test (bootstrap over "
        "segments for corpus metrics), Holm-adjusted across the checks below; MDE = minimum detectable effect at the "
        "Holm level alpha/m "
        "(80% power): smaller drops usually go unnoticed.",
        "",
        "| | suite | metric | baseline | candidate | Δ (95% CI) | tolerance | p (Holm) | MDE | n | flips +/− | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report.checks:
        comp = c.comparison
        if comp:
            arrow = "↑" if comp.higher_is_better else "↓"
            delta = f"{comp.delta:+.4f} [{comp.ci.low:+.4f}, {comp.ci.high:+.4f}]"
            row = [f"{c.metric} {arrow}", _fmt(comp.baseline), _fmt(comp.candidate), delta, f"{c.rule.max_drop:g}",
                   f"{c.p_adjusted:.3g}" if c.p_adjusted is not None else "–", _fmt(c.mde), str(comp.n),
                   f"{comp.improved}/{comp.regressed}"]
        else:
            row = [c.metric, "–", "–", "–", f"{c.rule.max_drop:g}", "–", "–", "–", "–"]
        lines.append("| " + " | ".join([_ICON[c.status], c.suite, *row, _cell(f"{c.status}: {c.reason}")]) + " |")
    for c in report.checks:
        if c.comparison is not None and c.mde is not None and (c.too_small or c.underpowered):
            lines.append(
                f"\n- ⚠️ {c.suite} / {c.metric}: with {c.comparison.n} samples only drops of about "
                f"{c.mde:.4g} or more are reliably detected (tolerance {c.rule.max_drop:g}); "
                "smaller real drops would usually pass. Add samples to gate on this suite."
            )
    for p in report.problems + report.notes:
        lines.append(f"\n- {_cell(p)}")
    for c in report.checks:
        if c.status == "fail" and c.worst:
            lines += ["", f"### Worst regressions: {c.suite} / {c.metric}", ""]
            for w in c.worst:
                lines.append(f"- `{w.sample_id}` worse by {w.worse_by:.4g}: prompt {md_quote(w.prompt)}; gold {md_quote(w.gold)}; "
                             f"baseline {md_quote(w.baseline_completion)} → candidate {md_quote(w.candidate_completion)}")
    return "\n".join(lines) + "\n"


def to_junit(report: GateReport) -> str:
    """JUnit XML: one test case per suite/metric (failure = regression, error = cannot decide)."""
    cases = report.checks or [
        Check("gate", "selection", "undecided", "; ".join(report.problems) or "nothing to gate",
              Rule("gate", "selection", 0.0, 0.05, 1, "auto", True))
    ]
    failures = sum(c.status == "fail" for c in cases)
    errors = sum(c.status == "undecided" for c in cases)
    skipped = sum(c.status == "skipped" for c in cases)
    root = ET.Element("testsuites", name="harness gate", tests=str(len(cases)), failures=str(failures), errors=str(errors))
    suite_el = ET.SubElement(root, "testsuite", name="harness-gate", tests=str(len(cases)), failures=str(failures),
                             errors=str(errors), skipped=str(skipped))
    for c in cases:
        case = ET.SubElement(suite_el, "testcase", classname=f"gate.{c.suite}", name=c.metric)
        if c.status == "fail":
            ET.SubElement(case, "failure", message=c.reason, type="regression").text = c.reason
        elif c.status == "undecided":
            ET.SubElement(case, "error", message=f"cannot decide: {c.reason}", type="undecided").text = c.reason
        elif c.status == "skipped":
            ET.SubElement(case, "skipped", message=c.reason)
        if c.comparison:
            comp = c.comparison
            ET.SubElement(case, "system-out").text = (
                f"baseline={comp.baseline:.6f} candidate={comp.candidate:.6f} delta={comp.delta:+.6f} "
                f"ci=[{comp.ci.low:+.6f}, {comp.ci.high:+.6f}] p_holm={c.p_adjusted} mde={c.mde} n={comp.n} "
                f"improved={comp.improved} regressed={comp.regressed} | {c.reason}"
            )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
