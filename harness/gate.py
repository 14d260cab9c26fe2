"""The release gate: policy -> a verdict per suite and metric -> one exit code, with CI reports.

A metric fails only when its drop is *both* beyond the policy's tolerance *and* statistically
significant on paired samples (one-sided test in the harmful direction, Holm-corrected across
every metric the gate checks). Anything the gate cannot judge — a missing suite, a failed or
partial run, too few samples, sample sets or inputs that differ, a changed suite version — makes
it undecided (exit 2): it fails closed and never passes on missing data.

Exit codes: 0 pass, 1 regression (takes precedence), 2 cannot decide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness import stats
from harness.compare import (
    MetricComparison,
    Pairing,
    SampleChange,
    compare_metric,
    load_run_samples,
    metric_pairs,
    pair_runs,
    primary_metric,
    shorten,
    worst_regressions,
)
from harness.errors import ConfigError, UserError
from harness.refs import Selection, resolve_ref
from harness.store import Store

Status = Literal["pass", "fail", "undecided", "skipped"]
EXIT_CODES = {"pass": 0, "fail": 1, "undecided": 2}


# ---- policy -------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricRule(_Strict):
    """Overrides for one metric (or, on a suite, for all its metrics); unset fields inherit."""

    max_drop: float | None = Field(
        None, ge=0.0, description="Largest tolerated drop in the metric's own units (0.02 = 2 points of accuracy)."
    )
    alpha: float | None = Field(
        None, gt=0.0, lt=1.0, description="Significance level, compared with the Holm-adjusted one-sided p-value."
    )
    min_samples: int | None = Field(None, ge=1, description="Fewer paired samples than this: the gate cannot decide.")
    test: stats.PairedMethod | None = Field(
        None, description="auto (exact McNemar for 0/1 scores, else Wilcoxon signed-rank), mcnemar, wilcoxon or sign."
    )


class Defaults(_Strict):
    """What every metric gets unless its suite or its own entry says otherwise."""

    max_drop: float = Field(0.0, ge=0.0, description="Largest tolerated drop; 0 fails any significant drop.")
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Family-wise significance level (Holm).")
    min_samples: int = Field(30, ge=1, description="Minimum paired samples per metric.")
    test: stats.PairedMethod = Field("auto", description="Paired test; auto picks McNemar for 0/1 scores, else Wilcoxon.")
    power: float = Field(0.8, gt=0.0, lt=1.0, description="Power at which the minimum detectable effect is reported.")
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Level of the bootstrap interval of each difference.")
    resamples: int = Field(10_000, ge=100, description="Bootstrap resamples per interval.")


class SuiteRule(MetricRule):
    """One suite: whether it must be present, suite-wide overrides, and the metrics to gate."""

    required: bool = Field(True, description="A required suite missing or unusable makes the gate undecided (exit 2).")
    metrics: dict[str, MetricRule] | None = Field(
        None, description="Metrics to gate (name or group/name) with overrides; unset = the suite's primary metric."
    )


class GatePolicy(_Strict):
    """A gate policy (YAML). Without `suites`, every suite of the baseline is gated on its primary metric."""

    defaults: Defaults = Field(default_factory=lambda: Defaults(), description="Settings every metric inherits.")
    suites: dict[str, SuiteRule] = Field(default_factory=dict, description="Suites to gate; empty = all baseline suites.")


@dataclass(frozen=True)
class Rule:
    """A metric's settings after defaults, suite and metric overrides are merged."""

    suite: str
    metric: str
    max_drop: float
    alpha: float
    min_samples: int
    test: stats.PairedMethod
    required: bool

    def to_json(self) -> dict[str, Any]:
        return {"max_drop": self.max_drop, "alpha": self.alpha, "min_samples": self.min_samples,
                "test": self.test, "required": self.required}


def merge_rule(policy: GatePolicy, suite: str, metric: str, suite_rule: SuiteRule | None) -> Rule:
    layers: list[MetricRule] = [r for r in (suite_rule, (suite_rule.metrics or {}).get(metric) if suite_rule else None) if r]
    values: dict[str, Any] = {k: getattr(policy.defaults, k) for k in ("max_drop", "alpha", "min_samples", "test")}
    for layer in layers:
        for key in values:
            if getattr(layer, key) is not None:
                values[key] = getattr(layer, key)
    return Rule(suite, metric, required=suite_rule.required if suite_rule else True, **values)


def _yaml_line(text: str, loc: Sequence[Any]) -> int | None:
    """Line (1-based) of the YAML node at `loc`, or of its deepest existing parent."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next((v for k, v in node.value if k.value == str(key)), None)
        if match is None:
            key_node = next((k for k, _ in node.value if k.value == str(key)), None)
            return key_node.start_mark.line + 1 if key_node is not None else line
        node = match
        line = node.start_mark.line + 1
    return line


def load_policy(path: str | Path) -> GatePolicy:
    """Parse a policy file with a safe loader; a mistake names the file, line and field (exit 2)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: policy file not found")
    try:
        text = file.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}, line 1: expected a mapping at the top level")
    try:
        return GatePolicy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        line = _yaml_line(text, loc)
        where = f", line {line}" if line else ""
        field_name = ".".join(str(p) for p in loc) or "(top level)"
        more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{file}{where}, field '{field_name}': {first['msg']}{more}") from None


# ---- verdicts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """The verdict on one suite/metric. `p_adjusted` is the Holm-adjusted one-sided p-value."""

    suite: str
    metric: str
    status: Status
    reason: str
    rule: Rule
    comparison: MetricComparison | None = None
    p_adjusted: float | None = None
    worst: tuple[SampleChange, ...] = ()

    @property
    def underpowered(self) -> bool:
        """The observed drop is beyond tolerance yet not significant: it passed for lack of evidence,
        and the suite is too small to confirm drops below the minimum detectable effect."""
        c = self.comparison
        return bool(c is not None and self.status == "pass" and c.worse_by > self.rule.max_drop)

    @property
    def too_small(self) -> bool:
        """The minimum detectable effect exceeds a non-zero tolerance: drops the policy means to
        catch would usually pass. The suite is too small to gate on at this tolerance."""
        c = self.comparison
        return bool(c is not None and c.mde is not None and self.rule.max_drop > 0 and c.mde > self.rule.max_drop)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "suite": self.suite,
            "metric": self.metric,
            "status": self.status,
            "reason": self.reason,
            "rule": self.rule.to_json(),
            "p_adjusted": self.p_adjusted,
            "underpowered": self.underpowered,
            "too_small": self.too_small,
        }
        if self.comparison:
            out |= {"comparison": self.comparison.to_json(), "drop": self.comparison.worse_by}
        if self.worst:
            out["worst_regressions"] = [w.to_json() for w in self.worst]
        return out


@dataclass(frozen=True)
class GateReport:
    """Everything the gate decided, ready to print as text, markdown, JSON or JUnit XML."""

    baseline: Selection | None
    candidate: Selection | None
    baseline_ref: str
    candidate_ref: str
    checks: list[Check]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Literal["pass", "fail", "undecided"]:
        statuses = {c.status for c in self.checks}
        if "fail" in statuses:
            return "fail"
        if "undecided" in statuses or self.problems or not any(c.status == "pass" for c in self.checks):
            return "undecided"
        return "pass"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "baseline": self.baseline.to_json() if self.baseline else {"ref": self.baseline_ref, "runs": {}},
            "candidate": self.candidate.to_json() if self.candidate else {"ref": self.candidate_ref, "runs": {}},
            "aggregate": "mean over paired samples (micro average); group metrics over the group's samples",
            "checks": [c.to_json() for c in self.checks],
            "problems": self.problems,
            "notes": self.notes,
        }


def decide(checks: Sequence[Check]) -> list[Check]:
    """Holm-correct the one-sided p-values of every judged check, then pass or fail each.

    A check fails when its drop exceeds `max_drop` and its adjusted p-value is below its alpha.
    """
    judged = [i for i, c in enumerate(checks) if c.comparison is not None and c.status != "undecided"]
    adjusted = stats.holm([checks[i].comparison.test.p_value for i in judged])  # type: ignore[union-attr]
    out = list(checks)
    for i, p_adj in zip(judged, adjusted, strict=True):
        c = checks[i]
        comp = c.comparison
        assert comp is not None
        drop, tol = comp.worse_by, c.rule.max_drop
        significant = float(p_adj) < c.rule.alpha
        mde = f"; minimum detectable effect {comp.mde:.4g}" if comp.mde is not None else ""
        if drop > tol and significant:
            status: Status = "fail"
            reason = f"dropped {drop:.4g} (> tolerance {tol:g}), significant (Holm p={p_adj:.3g} < {c.rule.alpha:g})"
        elif drop > tol:
            status = "pass"
            reason = f"dropped {drop:.4g} (> tolerance {tol:g}) but not significant (Holm p={p_adj:.3g}){mde}"
        elif drop > 0:
            status = "pass"
            reason = f"dropped {drop:.4g}, within tolerance {tol:g}{mde}"
        else:
            status = "pass"
            reason = f"no drop ({-drop:+.4g}){mde}"
        out[i] = Check(c.suite, c.metric, status, reason, c.rule, comp, float(p_adj), c.worst)
    return out


def judge_metric(
    rule: Rule,
    baseline: Sequence[float] | Any,
    candidate: Sequence[float] | Any,
    higher_is_better: bool,
    defaults: Defaults | None = None,
    n_unscored: int = 0,
) -> Check:
    """One metric's paired comparison under its rule, before the Holm step (see `decide`)."""
    d = defaults or Defaults()
    n = len(baseline)
    if n < rule.min_samples:
        return Check(rule.suite, rule.metric, "undecided", f"too few paired samples: {n} < min_samples {rule.min_samples}", rule)
    comparison = compare_metric(
        rule.metric, baseline, candidate, higher_is_better,
        alternative="less" if higher_is_better else "greater", method=rule.test, alpha=rule.alpha,
        power=d.power, confidence=d.confidence, n_resamples=d.resamples, n_unscored=n_unscored,
    )
    return Check(rule.suite, rule.metric, "pass", "", rule, comparison)


def _run_problems(role: str, run: Mapping[str, Any], stored: int) -> list[str]:
    out = []
    if run["status"] != "complete":
        detail = f": {run['error']}" if run.get("error") else ""
        out.append(f"{role} run {run['id']} is {run['status']}{detail}")
    if stored != run["n_samples"]:
        out.append(f"{role} run {run['id']} is partial: {stored} of {run['n_samples']} samples stored")
    return out


def _suite_checks(store: Store, policy: GatePolicy, suite: str, rule: SuiteRule | None,
                  base_run: Mapping[str, Any], cand_run: Mapping[str, Any], top: int) -> list[Check]:
    base, cand = load_run_samples(store, base_run), load_run_samples(store, cand_run)
    pairing: Pairing = pair_runs(base, cand)
    wanted = list((rule.metrics or {}) if rule and rule.metrics else [])
    if not wanted:
        head = primary_metric(suite, list(base.metric_rows))
        wanted = [head] if head else []
    problems = _run_problems("baseline", base_run, len(base.ids)) + _run_problems("candidate", cand_run, len(cand.ids))
    if base_run["suite_version"] != cand_run["suite_version"]:
        problems.append(
            f"suite version differs (baseline {base_run['suite_version']}, candidate {cand_run['suite_version']}): "
            f"re-score the baseline with `harness run {suite} --backend file --completions run:{base_run['id']}`"
        )
    problems += pairing.problems()
    if not wanted:
        return [Check(suite, "(none)", "undecided", "the baseline reports no metrics", merge_rule(policy, suite, "", rule))]
    checks = []
    for metric in wanted:
        r = merge_rule(policy, suite, metric, rule)
        if problems:
            checks.append(Check(suite, metric, "undecided", "; ".join(problems), r))
            continue
        row_b, row_c = base.metric_rows.get(metric), cand.metric_rows.get(metric)
        if row_b is None or row_c is None:
            missing = "baseline" if row_b is None else "candidate"
            checks.append(Check(suite, metric, "undecided", f"metric '{metric}' not reported by the {missing} run", r))
            continue
        if bool(row_b["higher_is_better"]) != bool(row_c["higher_is_better"]):
            checks.append(Check(suite, metric, "undecided", "the runs disagree on whether higher is better", r))
            continue
        pairs = metric_pairs(pairing, metric)
        if pairs.baseline.size == 0 and pairs.n_unscored == 0:
            checks.append(Check(suite, metric, "undecided", f"metric '{metric}' has no per-sample scores to pair (an aggregate "
                                "such as a macro average cannot be gated; gate its per-sample metric)", r))
            continue
        hib = bool(row_b["higher_is_better"])
        check = judge_metric(r, pairs.baseline, pairs.candidate, hib, policy.defaults, pairs.n_unscored)
        if check.comparison is not None and top > 0:
            worst = worst_regressions(store, pairs, hib, pairing, top)
            check = Check(check.suite, check.metric, check.status, check.reason, check.rule, check.comparison, None, tuple(worst))
        checks.append(check)
    return checks


def run_gate(store: Store, baseline_ref: str, candidate_ref: str, policy: GatePolicy | None = None, top: int = 3) -> GateReport:
    """Resolve both REFs, check every gated suite and metric, and return the report."""
    policy = policy or GatePolicy()
    problems: list[str] = []
    selections: list[Selection | None] = []
    for role, ref in (("baseline", baseline_ref), ("candidate", candidate_ref)):
        try:
            selections.append(resolve_ref(store, ref))
        except UserError as exc:
            problems.append(f"{role}: {exc}")
            selections.append(None)
    base_sel, cand_sel = selections
    if base_sel is None or cand_sel is None:
        return GateReport(base_sel, cand_sel, baseline_ref, candidate_ref, [], problems)
    suites = list(policy.suites) or sorted(base_sel.runs)
    notes = []
    extra = sorted(set(cand_sel.runs) - set(suites))
    if extra:
        notes.append(f"not gated (no baseline or not in the policy): {', '.join(extra)}")
    checks: list[Check] = []
    for suite in suites:
        rule = policy.suites.get(suite)
        required = rule.required if rule else True
        missing = [role for role, sel in (("baseline", base_sel), ("candidate", cand_sel)) if suite not in sel.runs]
        if missing:
            status: Status = "undecided" if required else "skipped"
            metric_names = list(rule.metrics) if rule and rule.metrics else ["(primary)"]
            for metric in metric_names:
                checks.append(Check(suite, metric, status, f"suite missing from the {' and '.join(missing)}",
                                    merge_rule(policy, suite, metric, rule)))
            continue
        suite_checks = _suite_checks(store, policy, suite, rule, base_sel.runs[suite], cand_sel.runs[suite], top)
        if not required:
            suite_checks = [
                Check(c.suite, c.metric, "skipped", f"not required: {c.reason}", c.rule) if c.status == "undecided" else c
                for c in suite_checks
            ]
        checks.extend(suite_checks)
    return GateReport(base_sel, cand_sel, baseline_ref, candidate_ref, decide(checks), problems, notes)


# ---- reports ------------------------------------------------------------------------------------

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
        "Values are means over paired samples (micro average); drop = loss in the metric's better direction; "
        "p = one-sided paired test, Holm-adjusted across the checks below; MDE = minimum detectable effect "
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
                   f"{c.p_adjusted:.3g}" if c.p_adjusted is not None else "–", _fmt(comp.mde), str(comp.n),
                   f"{comp.improved}/{comp.regressed}"]
        else:
            row = [c.metric, "–", "–", "–", f"{c.rule.max_drop:g}", "–", "–", "–", "–"]
        lines.append("| " + " | ".join([_ICON[c.status], c.suite, *row, _cell(f"{c.status}: {c.reason}")]) + " |")
    for c in report.checks:
        if c.comparison is not None and c.comparison.mde is not None and (c.too_small or c.underpowered):
            lines.append(
                f"\n- ⚠️ {c.suite} / {c.metric}: with {c.comparison.n} samples only drops of about "
                f"{c.comparison.mde:.4g} or more are reliably detected (tolerance {c.rule.max_drop:g}); "
                "smaller real drops would usually pass. Add samples to gate on this suite."
            )
    for p in report.problems + report.notes:
        lines.append(f"\n- {_cell(p)}")
    for c in report.checks:
        if c.status == "fail" and c.worst:
            lines += ["", f"### Worst regressions: {c.suite} / {c.metric}", ""]
            for w in c.worst:
                lines.append(f"- `{w.sample_id}` worse by {w.worse_by:.4g}: prompt {_quote(w.prompt)}; "
                             f"baseline {_quote(w.baseline_completion)} → candidate {_quote(w.candidate_completion)}")
    return "\n".join(lines) + "\n"


def _quote(text: str, limit: int = 200) -> str:
    return "`" + shorten(text, limit).replace("`", "'") + "`"


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
                f"ci=[{comp.ci.low:+.6f}, {comp.ci.high:+.6f}] p_holm={c.p_adjusted} mde={comp.mde} n={comp.n} "
                f"improved={comp.improved} regressed={comp.regressed} | {c.reason}"
            )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
