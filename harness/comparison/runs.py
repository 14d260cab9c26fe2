"""Whole runs: every metric of one suite across two paired runs, and the one "primary metric" rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import stats
from harness.comparison.metric import MetricComparison, compare_corpus, compare_metric
from harness.comparison.pairing import (
    MetricPairs,
    Pairing,
    RunSamples,
    load_run_samples,
    metric_pairs,
    pair_runs,
    paired_details,
    sample_directions,
)
from harness.comparison.worst import SampleChange, worst_regressions
from harness.store import Store


def _suite_class(suite: str) -> Any:
    from harness.errors import ConfigError

    try:
        from suites import suite_class

        return suite_class(suite)
    except (ConfigError, ImportError):  # an unregistered suite (a plugin, a newer store) still compares
        return None


def primary_metric(suite: str, available: Sequence[str] | None = None) -> str | None:
    """The metric the gate, `compare`, the monitors and the board lead with: the suite's declared
    primary metric when it is available (or when `available` is None), else the first overall
    (ungrouped) metric available, else the first available one."""
    cls = _suite_class(suite)
    declared = getattr(cls, "primary_metric", None) if cls is not None else None
    if available is None:
        return declared
    if declared in available:
        return declared
    overall = [m for m in available if "/" not in m] or list(available)
    return overall[0] if overall else None


def corpus_metric(run: Mapping[str, Any], metric: str) -> Any:
    """The suite's corpus statistic for `metric` under the run's options, or None for a mean metric."""
    cls = _suite_class(str(run["suite"]))
    if cls is None:
        return None
    options = ((run.get("config") or {}).get("suite") or {}).get("options") or {}
    return cls.corpus_metric(metric, options)


@dataclass(frozen=True)
class MetricOutcome:
    """A metric compared (`comparison`, with the per-sample `pairs` behind its flips) or why not (`problem`)."""

    comparison: MetricComparison | None = None
    pairs: MetricPairs | None = None
    problem: str | None = None


def compare_one(
    pairing: Pairing, metric: str, *, alternative: stats.Alternative = "two-sided", method: stats.PairedMethod = "auto",
    alpha: float = 0.05, power: float = 0.8, confidence: float = 0.95, n_resamples: int = 10_000,
) -> MetricOutcome:
    """Compare one stored metric of two paired runs: as a corpus statistic when the suite declares it
    one (bootstrap over segments), else as the mean of per-sample scores (paired test)."""
    row_b, row_c = pairing.baseline.metric_rows.get(metric), pairing.candidate.metric_rows.get(metric)
    if row_b is None or row_c is None:
        missing = "either run" if row_b is None and row_c is None else ("the baseline run" if row_b is None else "the candidate run")
        return MetricOutcome(problem=f"metric '{metric}' not reported by {missing}")
    hib = bool(row_b["higher_is_better"])
    if hib != bool(row_c["higher_is_better"]):
        return MetricOutcome(problem=f"metric '{metric}': the runs disagree on whether higher is better")
    kw: dict[str, Any] = {"alternative": alternative, "alpha": alpha, "power": power, "confidence": confidence,
                          "n_resamples": n_resamples}
    corpus = corpus_metric(pairing.baseline.run, metric)
    if corpus is not None:
        details_a, details_b, ids = paired_details(pairing)
        if not ids:
            return MetricOutcome(problem=f"metric '{metric}': no segment in both runs")
        pairs = metric_pairs(pairing, corpus.sample_score)
        scores = (pairs.baseline, pairs.candidate) if pairs.ids == tuple(ids) else None
        try:
            comparison = compare_corpus(metric, corpus, details_a, details_b, sample_scores=scores, **kw)
        except (KeyError, ValueError) as exc:
            return MetricOutcome(problem=f"metric '{metric}': cannot re-score the corpus ({exc})")
        return MetricOutcome(comparison, pairs if scores is not None else None)
    pairs = metric_pairs(pairing, metric)
    if pairs.baseline.size == 0:
        return MetricOutcome(problem=f"metric '{metric}' has no per-sample scores to pair (an aggregate such as a macro "
                                     "average cannot be compared sample by sample; use its per-sample metric)")
    comparison = compare_metric(metric, pairs.baseline, pairs.candidate, hib, method=method, n_unscored=pairs.n_unscored,
                                directions=sample_directions(pairing, pairs, hib), **kw)
    return MetricOutcome(comparison, pairs)


@dataclass(frozen=True)
class RunComparison:
    """Every metric of one suite across two runs, plus the samples that regressed most."""

    suite: str
    pairing: Pairing
    metrics: list[MetricComparison]
    worst_metric: str | None
    worst: list[SampleChange]
    problems: list[str] = field(default_factory=list)

    @property
    def baseline_run(self) -> str:
        return self.pairing.baseline.run_id

    @property
    def candidate_run(self) -> str:
        return self.pairing.candidate.run_id

    def metric(self, name: str) -> MetricComparison | None:
        return next((m for m in self.metrics if m.metric == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "baseline_run": self.baseline_run,
            "candidate_run": self.candidate_run,
            "pairing": self.pairing.to_json(),
            "metrics": [m.to_json() for m in self.metrics],
            "worst_metric": self.worst_metric,
            "worst_regressions": [w.to_json() for w in self.worst],
            "problems": self.problems,
        }


def load_pairing(store: Store, baseline: Mapping[str, Any], candidate: Mapping[str, Any]) -> Pairing:
    base: RunSamples = load_run_samples(store, baseline)
    return pair_runs(base, load_run_samples(store, candidate))


def compare_runs(
    store: Store,
    baseline: Mapping[str, Any],
    candidate: Mapping[str, Any],
    metric_names: Sequence[str] | None = None,
    top: int = 5,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
) -> RunComparison:
    """Compare two runs of one suite on every metric both declare (or on `metric_names`), two-sided."""
    pairing = load_pairing(store, baseline, candidate)
    problems = pairing.problems()
    for role, run in (("baseline", baseline), ("candidate", candidate)):
        if run.get("status") != "complete":
            problems.append(f"{role} run {run['id']} is {run.get('status')}")
    base, cand = pairing.baseline, pairing.candidate
    names = list(metric_names) if metric_names else [m for m in base.metric_rows if m in cand.metric_rows]
    results: list[MetricComparison] = []
    pairs_of: dict[str, MetricPairs] = {}
    for name in names:
        outcome = compare_one(pairing, name, confidence=confidence, n_resamples=n_resamples)
        if outcome.comparison is None:
            problems.append(str(outcome.problem))
            continue
        results.append(outcome.comparison)
        if outcome.pairs is not None:
            pairs_of[name] = outcome.pairs
    head = primary_metric(str(baseline["suite"]), [m.metric for m in results])
    worst: list[SampleChange] = []
    if head in pairs_of:
        hib = next(m.higher_is_better for m in results if m.metric == head)
        worst = worst_regressions(store, pairs_of[head], hib, pairing, top)
    return RunComparison(str(baseline["suite"]), pairing, results, head, worst, problems)
