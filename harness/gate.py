"""The release gate: policy -> a verdict per suite and metric -> one exit code.

A metric fails only when its drop is *both* beyond the policy's tolerance *and* statistically
significant on paired samples (one-sided test in the harmful direction, Holm-corrected across
every metric the gate checks). Anything the gate cannot judge — a missing suite, a failed or
partial run, too few samples, another data file, sample sets or inputs that differ, a changed
suite version — makes it undecided (exit 2): it fails closed and never passes on missing data.
The numbers come from the comparison engine (`harness/comparison/`); policies live in
`harness/gate_policy.py`, the text/markdown/JUnit reports in `harness/gate_report.py`.

Exit codes: 0 pass, 1 regression (takes precedence), 2 cannot decide.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from harness import stats
from harness.comparison import MetricComparison, SampleChange, compare_metric, compare_one, load_pairing, primary_metric, worst_regressions
from harness.errors import UserError
from harness.gate_policy import Defaults, GatePolicy, Rule, SuiteRule, load_policy, merge_rule
from harness.refs import Selection, resolve_ref
from harness.store import Store
from suites import SUITES

__all__ = ["Check", "GatePolicy", "GateReport", "decide", "judge_metric", "load_policy", "run_gate"]

Status = Literal["pass", "fail", "undecided", "skipped"]
EXIT_CODES = {"pass": 0, "fail": 1, "undecided": 2}


@dataclass(frozen=True)
class Check:
    """The verdict on one suite/metric. `p_adjusted` is the Holm-adjusted one-sided p-value;
    `decision_alpha` the smallest level Holm may compare a p-value with (alpha / number of checks)."""

    suite: str
    metric: str
    status: Status
    reason: str
    rule: Rule
    comparison: MetricComparison | None = None
    p_adjusted: float | None = None
    worst: tuple[SampleChange, ...] = ()
    decision_alpha: float | None = None

    @property
    def mde(self) -> float | None:
        """Minimum detectable effect at the Holm-adjusted level (alpha / m): the drop this check
        catches with the policy's power whatever the other checks' p-values are."""
        c = self.comparison
        return c.mde_at(self.decision_alpha or self.rule.alpha) if c is not None else None

    @property
    def underpowered(self) -> bool:
        """The observed drop is beyond tolerance yet not significant: it passed for lack of evidence."""
        c = self.comparison
        return bool(c is not None and self.status == "pass" and c.worse_by > self.rule.max_drop)

    @property
    def too_small(self) -> bool:
        """The minimum detectable effect exceeds a non-zero tolerance: drops the policy means to
        catch would usually pass. The suite is too small to gate on at this tolerance."""
        mde = self.mde
        return bool(mde is not None and self.rule.max_drop > 0 and mde > self.rule.max_drop)

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
            out |= {"comparison": self.comparison.to_json(), "drop": self.comparison.worse_by, "mde": self.mde,
                    "mde_alpha": self.decision_alpha, "mde_unadjusted": self.comparison.mde_at(self.rule.alpha)}
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
            "aggregate": "mean metrics: mean over paired samples (micro average), group metrics over the group's "
                         "samples; corpus metrics (BLEU, chrF, TER): the corpus statistic over the paired segments",
            "checks": [c.to_json() for c in self.checks],
            "problems": self.problems,
            "notes": self.notes,
        }


def decide(checks: Sequence[Check]) -> list[Check]:
    """Holm-correct the one-sided p-values of every judged check, then pass or fail each.

    A check fails when its drop exceeds `max_drop` and its adjusted p-value is below its alpha.
    The MDE is reported at alpha / m (m judged checks: the first Holm step), the level a lone
    significant drop must reach, so it is never more optimistic than the decision.
    """
    judged = [i for i, c in enumerate(checks) if c.comparison is not None and c.status != "undecided"]
    adjusted = stats.holm([checks[i].comparison.test.p_value for i in judged])  # type: ignore[union-attr]
    out = list(checks)
    for i, p_adj in zip(judged, adjusted, strict=True):
        c = replace(checks[i], p_adjusted=float(p_adj), decision_alpha=checks[i].rule.alpha / len(judged))
        comp = c.comparison
        assert comp is not None
        drop, tol = comp.worse_by, c.rule.max_drop
        significant = float(p_adj) < c.rule.alpha
        mde = f"; minimum detectable effect {c.mde:.4g} at Holm alpha {c.decision_alpha:.3g}" if c.mde is not None else ""
        direction = "higher" if comp.higher_is_better else "lower"
        if drop > tol and significant:
            status: Status = "fail"
            reason = f"dropped {drop:.4g} (> tolerance {tol:g}), significant (Holm p={p_adj:.3g} < {c.rule.alpha:g})"
        elif drop > tol:
            status = "pass"
            reason = f"underpowered: dropped {drop:.4g} (> tolerance {tol:g}) but not significant (Holm p={p_adj:.3g}){mde}"
        elif drop > 0:
            status = "pass"
            reason = f"dropped {drop:.4g}, within tolerance {tol:g}{mde}"
        else:
            status = "pass"
            reason = f"no drop (Δ {comp.delta:+.4g}; {direction} is better){mde}"
        out[i] = replace(c, status=status, reason=reason)
    return out


def judge_metric(
    rule: Rule,
    baseline: Sequence[float] | Any,
    candidate: Sequence[float] | Any,
    higher_is_better: bool,
    defaults: Defaults | None = None,
    n_unscored: int = 0,
) -> Check:
    """One mean metric's paired comparison under its rule, before the Holm step (see `decide`)."""
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
    pairing = load_pairing(store, base_run, cand_run)
    base = pairing.baseline
    wanted = list(rule.metrics) if rule and rule.metrics else []
    if not wanted:
        head = primary_metric(suite, list(base.metric_rows))
        wanted = [head] if head else []
    problems = _run_problems("baseline", base_run, len(base.ids))
    problems += _run_problems("candidate", cand_run, len(pairing.candidate.ids)) + pairing.problems()
    if not wanted:
        return [Check(suite, "(none)", "undecided", "the baseline reports no metrics", merge_rule(policy, suite, "", rule))]
    checks = []
    d = policy.defaults
    for metric in wanted:
        r = merge_rule(policy, suite, metric, rule)
        if problems:
            checks.append(Check(suite, metric, "undecided", "; ".join(problems), r))
            continue
        hib = bool((base.metric_rows.get(metric) or {}).get("higher_is_better", True))
        outcome = compare_one(pairing, metric, alternative="less" if hib else "greater", method=r.test, alpha=r.alpha,
                              power=d.power, confidence=d.confidence, n_resamples=d.resamples)
        comp = outcome.comparison
        if comp is None:
            checks.append(Check(suite, metric, "undecided", str(outcome.problem), r))
            continue
        if comp.n < r.min_samples:
            checks.append(Check(suite, metric, "undecided", f"too few paired samples: {comp.n} < min_samples {r.min_samples}", r))
            continue
        worst = worst_regressions(store, outcome.pairs, hib, pairing, top) if outcome.pairs is not None and top > 0 else []
        checks.append(Check(suite, metric, "pass", "", r, comp, None, tuple(worst)))
    return checks


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def run_gate(store: Store, baseline_ref: str, candidate_ref: str, policy: GatePolicy | None = None, top: int = 3) -> GateReport:
    """Resolve both REFs, check every gated suite and metric, and return the report.

    A reference that selects nothing is a usage error (`UserError`, exit 2 with one line)."""
    policy = policy or GatePolicy()
    base_sel = _resolve(store, "baseline", baseline_ref)
    cand_sel = _resolve(store, "candidate", candidate_ref)
    suites = list(policy.suites) or sorted(base_sel.runs)
    problems: list[str] = []
    notes = []
    known = sorted(set(SUITES) | set(base_sel.runs) | set(cand_sel.runs))
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
                checks.append(Check(suite, metric, status, f"suite missing from the {' and '.join(missing)}"
                                    + _did_you_mean(suite, [k for k in known if k != suite]),
                                    merge_rule(policy, suite, metric, rule)))
            continue
        suite_checks = _suite_checks(store, policy, suite, rule, base_sel.runs[suite], cand_sel.runs[suite], top)
        if not required:
            suite_checks = [replace(c, status="skipped", reason=f"not required: {c.reason}", comparison=None)
                            if c.status == "undecided" else c for c in suite_checks]
        checks.extend(suite_checks)
    return GateReport(base_sel, cand_sel, baseline_ref, candidate_ref, decide(checks), problems, notes)


def _resolve(store: Store, role: str, ref: str) -> Selection:
    try:
        return resolve_ref(store, ref)
    except UserError as exc:
        raise UserError(f"{role} '{ref}': {exc}") from None
