"""Paired comparison of two runs of one suite: per metric, both values, the difference with its
confidence interval, a p-value, per-sample flips and the samples that regressed most.

Samples are paired by `sample_id`, always (never by position, never with an unpaired test): a
sample scored in only one run is counted and reported, not silently mixed in. The gate
(`harness/gate.py`) builds its verdicts on these comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from harness import stats
from harness.store import Store, metrics, samples
from harness.types import canonical_json, sha256_text

_EPS = 1e-12


@dataclass(frozen=True)
class RunSamples:
    """One run's per-sample scores, in stored order, with what pairing and the gate need."""

    run: Mapping[str, Any]
    ids: tuple[str, ...]
    scores: tuple[Mapping[str, Any], ...]
    groups: tuple[tuple[str, ...], ...]
    input_digests: tuple[str, ...]
    metric_rows: Mapping[str, Mapping[str, Any]]

    @property
    def run_id(self) -> str:
        return str(self.run["id"])


def load_run_samples(store: Store, run: Mapping[str, Any]) -> RunSamples:
    """Read a run's scores (not its completions, which can be large) and its declared metrics."""
    run_id = str(run["id"])
    query = (
        select(samples.c.sample_id, samples.c.scores, samples.c.groups, samples.c.input)
        .where(samples.c.run_id == run_id)
        .order_by(samples.c.position)
    )
    ids, scores, groups, digests = [], [], [], []
    with store.engine.connect() as conn:
        for sid, sc, gr, inp in conn.execute(query):
            ids.append(str(sid))
            scores.append(sc or {})
            groups.append(tuple(gr or ()))
            digests.append(sha256_text(canonical_json(inp)))
        rows = {str(r["name"]): dict(r) for r in conn.execute(select(metrics).where(metrics.c.run_id == run_id)).mappings()}
    return RunSamples(dict(run), tuple(ids), tuple(scores), tuple(groups), tuple(digests), rows)


@dataclass(frozen=True)
class Pairing:
    """Which samples two runs share. `complete` means identical sample sets with identical inputs."""

    baseline: RunSamples
    candidate: RunSamples
    common: tuple[str, ...]
    only_baseline: tuple[str, ...]
    only_candidate: tuple[str, ...]
    input_mismatch: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not (self.only_baseline or self.only_candidate or self.input_mismatch)

    def problems(self) -> list[str]:
        out = []
        if self.only_baseline:
            out.append(f"{len(self.only_baseline)} sample(s) only in the baseline (e.g. {_examples(self.only_baseline)})")
        if self.only_candidate:
            out.append(f"{len(self.only_candidate)} sample(s) only in the candidate (e.g. {_examples(self.only_candidate)})")
        if self.input_mismatch:
            out.append(
                f"{len(self.input_mismatch)} sample id(s) have different inputs in the two runs "
                f"(e.g. {_examples(self.input_mismatch)}): not the same data"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "paired": len(self.common),
            "only_baseline": list(self.only_baseline),
            "only_candidate": list(self.only_candidate),
            "input_mismatch": list(self.input_mismatch),
        }


def _examples(ids: Sequence[str], k: int = 3) -> str:
    return ", ".join(repr(i) for i in ids[:k]) + (", ..." if len(ids) > k else "")


def pair_runs(baseline: RunSamples, candidate: RunSamples) -> Pairing:
    cand_index = {sid: i for i, sid in enumerate(candidate.ids)}
    base_set = set(baseline.ids)
    common, mismatch = [], []
    for i, sid in enumerate(baseline.ids):
        j = cand_index.get(sid)
        if j is None:
            continue
        common.append(sid)
        if baseline.input_digests[i] != candidate.input_digests[j]:
            mismatch.append(sid)
    return Pairing(
        baseline,
        candidate,
        tuple(common),
        tuple(s for s in baseline.ids if s not in cand_index),
        tuple(s for s in candidate.ids if s not in base_set),
        tuple(mismatch),
    )


def _value(scores: Mapping[str, Any], groups: tuple[str, ...], metric: str) -> float | None:
    group, _, name = metric.rpartition("/")
    if group and group not in groups:
        return None
    raw = scores.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class MetricPairs:
    """Aligned per-sample values of one metric; `n_unscored` pairs lacked a value in one run."""

    metric: str
    ids: tuple[str, ...]
    baseline: NDArray[np.float64]
    candidate: NDArray[np.float64]
    n_unscored: int


def metric_pairs(pairing: Pairing, metric: str) -> MetricPairs:
    """Values of `metric` (`name` or `group/name`) for samples scored in both runs, by sample id.

    Samples outside the group are not counted; samples scored in one run only (a metric defined
    conditionally, like `supported` on non-abstentions) are counted in `n_unscored`.
    """
    bi = {sid: i for i, sid in enumerate(pairing.baseline.ids)}
    ci = {sid: i for i, sid in enumerate(pairing.candidate.ids)}
    ids, a, b, unscored = [], [], [], 0
    base, cand = pairing.baseline, pairing.candidate
    for sid in pairing.common:
        i, j = bi[sid], ci[sid]
        va = _value(base.scores[i], base.groups[i], metric)
        vb = _value(cand.scores[j], cand.groups[j], metric)
        if va is None and vb is None:
            continue
        if va is None or vb is None:
            unscored += 1
            continue
        ids.append(sid)
        a.append(va)
        b.append(vb)
    return MetricPairs(metric, tuple(ids), np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), unscored)


@dataclass(frozen=True)
class MetricComparison:
    """One metric across two runs. `delta` is candidate - baseline; `worse_by` is the drop in the
    harmful direction (positive = the candidate is worse, whatever way the metric points)."""

    metric: str
    higher_is_better: bool
    n: int
    n_unscored: int
    baseline: float
    candidate: float
    delta: float
    ci: stats.Interval
    test: stats.TestResult
    improved: int
    regressed: int
    unchanged: int
    sd: float
    mde: float | None
    alpha: float

    @property
    def worse_by(self) -> float:
        return -self.delta if self.higher_is_better else self.delta

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "n": self.n,
            "n_unscored": self.n_unscored,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "delta": self.delta,
            "ci": self.ci.to_json(),
            "test": self.test.to_json(),
            "p_value": self.test.p_value,
            "flips": {"improved": self.improved, "regressed": self.regressed, "unchanged": self.unchanged},
            "mde": self.mde,
            "mde_alpha": self.alpha,
        }


def compare_metric(
    metric: str,
    baseline: Sequence[float] | NDArray[np.float64],
    candidate: Sequence[float] | NDArray[np.float64],
    higher_is_better: bool,
    *,
    alternative: stats.Alternative = "two-sided",
    method: stats.PairedMethod = "auto",
    alpha: float = 0.05,
    power: float = 0.8,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    n_unscored: int = 0,
) -> MetricComparison:
    """Compare paired values of one metric. `alternative` is in terms of candidate - baseline."""
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    n = int(a.size)
    if n == 0:
        raise ValueError(f"metric '{metric}': no paired samples")
    d = b - a
    oriented = d if higher_is_better else -d
    sd = stats.paired_sd(a, b)
    mde = stats.minimum_detectable_effect(n, sd, alpha, power, two_sided=alternative == "two-sided") if sd > 0 else None
    return MetricComparison(
        metric=metric,
        higher_is_better=higher_is_better,
        n=n,
        n_unscored=n_unscored,
        baseline=float(a.mean()),
        candidate=float(b.mean()),
        delta=float(d.mean()),
        ci=stats.paired_bootstrap(a, b, confidence, n_resamples, seed),
        test=stats.paired_test(a, b, alternative, method),
        improved=int(np.count_nonzero(oriented > _EPS)),
        regressed=int(np.count_nonzero(oriented < -_EPS)),
        unchanged=int(np.count_nonzero(np.abs(oriented) <= _EPS)),
        sd=sd,
        mde=mde,
        alpha=alpha,
    )


# ---- worst regressions --------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleChange:
    """A sample that got worse, with what a person needs to see why."""

    sample_id: str
    metric: str
    worse_by: float
    prompt: str
    baseline_completion: str
    candidate_completion: str
    baseline_scores: Mapping[str, Any]
    candidate_scores: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "sample_id": self.sample_id,
            "metric": self.metric,
            "worse_by": self.worse_by,
            "prompt": self.prompt,
            "baseline_completion": self.baseline_completion,
            "candidate_completion": self.candidate_completion,
            "baseline_scores": dict(self.baseline_scores),
            "candidate_scores": dict(self.candidate_scores),
        }


def _prompt(requests: Any) -> str:
    """The last user turn (or raw prompt) of the sample's first model request."""
    for stage in requests or []:
        for req in stage:
            if req.get("role", "model") != "model":
                continue
            if req.get("messages"):
                users = [content for role, content in req["messages"] if role == "user"]
                return str(users[-1] if users else req["messages"][-1][1])
            return str(req.get("prompt") or "")
    return ""


def _model_text(requests: Any, completions: Any) -> str:
    """The text of every model answer of a sample (judge answers left out), stage by stage."""
    texts = []
    for stage_reqs, stage_answers in zip(requests or [], completions or [], strict=False):
        for req, answer in zip(stage_reqs, stage_answers, strict=False):
            if req.get("role", "model") == "model":
                texts.append(str(answer.get("text", "")))
    return "\n---\n".join(texts)


def worst_regressions(store: Store, pairs: MetricPairs, higher_is_better: bool, pairing: Pairing, top: int = 5) -> list[SampleChange]:
    """The `top` samples whose `pairs.metric` got worst, with prompt, both completions and scores."""
    if top <= 0 or pairs.baseline.size == 0:
        return []
    d = pairs.candidate - pairs.baseline
    worse = -d if higher_is_better else d
    order = [int(i) for i in np.argsort(-worse, kind="stable")[:top] if worse[i] > _EPS]
    if not order:
        return []
    chosen = [pairs.ids[i] for i in order]
    base_rows = _sample_rows(store, pairing.baseline.run_id, chosen)
    cand_rows = _sample_rows(store, pairing.candidate.run_id, chosen)
    out = []
    for i, sid in zip(order, chosen, strict=True):
        b, c = base_rows[sid], cand_rows[sid]
        out.append(
            SampleChange(
                sid,
                pairs.metric,
                float(worse[i]),
                _prompt(b["requests"]),
                _model_text(b["requests"], b["completions"]),
                _model_text(c["requests"], c["completions"]),
                b["scores"],
                c["scores"],
            )
        )
    return out


def _sample_rows(store: Store, run_id: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    query = select(samples.c.sample_id, samples.c.requests, samples.c.completions, samples.c.scores).where(
        samples.c.run_id == run_id, samples.c.sample_id.in_(list(ids))
    )
    with store.engine.connect() as conn:
        return {str(r["sample_id"]): dict(r) for r in conn.execute(query).mappings()}


# ---- whole runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunComparison:
    """Every metric of one suite across two runs, plus the samples that regressed most."""

    suite: str
    baseline_run: str
    candidate_run: str
    pairing: Pairing
    metrics: list[MetricComparison]
    worst_metric: str | None
    worst: list[SampleChange]
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "baseline_run": self.baseline_run,
            "candidate_run": self.candidate_run,
            "pairing": {
                "paired": len(self.pairing.common),
                "only_baseline": len(self.pairing.only_baseline),
                "only_candidate": len(self.pairing.only_candidate),
                "input_mismatch": len(self.pairing.input_mismatch),
            },
            "metrics": [m.to_json() for m in self.metrics],
            "worst_metric": self.worst_metric,
            "worst_regressions": [w.to_json() for w in self.worst],
            "problems": self.problems,
        }


def primary_metric(suite: str, available: Sequence[str]) -> str | None:
    """The suite's declared headline metric when it is available, else the first available one."""
    from harness.errors import ConfigError

    try:
        from suites import suite_class

        primary = suite_class(suite).primary_metric
    except (ConfigError, ImportError, AttributeError):  # an unregistered suite still compares on its stored metrics
        primary = None
    if primary in available:
        return primary
    return available[0] if available else None


def compare_runs(
    store: Store,
    baseline: Mapping[str, Any],
    candidate: Mapping[str, Any],
    metric_names: Sequence[str] | None = None,
    top: int = 5,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
) -> RunComparison:
    """Compare two runs of one suite on every metric both declare (or on `metric_names`)."""
    base = load_run_samples(store, baseline)
    cand = load_run_samples(store, candidate)
    pairing = pair_runs(base, cand)
    problems = pairing.problems()
    if baseline.get("status") != "complete":
        problems.append(f"baseline run {base.run_id} is {baseline.get('status')}")
    if candidate.get("status") != "complete":
        problems.append(f"candidate run {cand.run_id} is {candidate.get('status')}")
    names = list(metric_names) if metric_names else [m for m in base.metric_rows if m in cand.metric_rows]
    results: list[MetricComparison] = []
    all_pairs: dict[str, MetricPairs] = {}
    for name in names:
        row = base.metric_rows.get(name) or cand.metric_rows.get(name)
        if row is None:
            problems.append(f"metric '{name}' is not reported by either run")
            continue
        pairs = metric_pairs(pairing, name)
        if pairs.baseline.size == 0:
            problems.append(f"metric '{name}': no sample scored in both runs")
            continue
        all_pairs[name] = pairs
        results.append(
            compare_metric(name, pairs.baseline, pairs.candidate, bool(row["higher_is_better"]),
                           confidence=confidence, n_resamples=n_resamples, n_unscored=pairs.n_unscored)
        )
    head = primary_metric(str(baseline["suite"]), list(all_pairs))
    worst = (
        worst_regressions(store, all_pairs[head], next(m.higher_is_better for m in results if m.metric == head), pairing, top)
        if head
        else []
    )
    return RunComparison(str(baseline["suite"]), base.run_id, cand.run_id, pairing, results, head, worst, problems)


# ---- markdown -----------------------------------------------------------------------------------


def to_markdown(comparisons: Sequence[RunComparison], problems: Sequence[str] = ()) -> str:
    """Markdown tables of every compared suite (for PR comments and step summaries)."""
    lines = ["## harness compare", ""]
    for comp in comparisons:
        lines += [
            f"### {comp.suite}: `{comp.baseline_run}` → `{comp.candidate_run}` ({len(comp.pairing.common)} paired samples)",
            "",
            "| metric | baseline | candidate | Δ (95% CI) | p (two-sided) | test | improved | regressed | unchanged | n |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m in comp.metrics:
            arrow = "↑" if m.higher_is_better else "↓"
            lines.append(
                f"| {m.metric} {arrow} | {m.baseline:.4f} | {m.candidate:.4f} | {m.delta:+.4f} [{m.ci.low:+.4f}, {m.ci.high:+.4f}] "
                f"| {m.test.p_value:.3g} | {m.test.method} | {m.improved} | {m.regressed} | {m.unchanged} | {m.n} |"
            )
        for p in comp.problems:
            lines.append(f"\n- ⚠️ {p}")
        if comp.worst:
            lines += ["", f"Worst regressions on `{comp.worst_metric}`:", ""]
            for w in comp.worst:
                lines.append(
                    f"- `{w.sample_id}` (worse by {w.worse_by:.4g}) prompt: {_md_quote(w.prompt)}; "
                    f"baseline: {_md_quote(w.baseline_completion)}; candidate: {_md_quote(w.candidate_completion)}"
                )
        lines.append("")
    for p in problems:
        lines.append(f"- ⚠️ {p}")
    return "\n".join(lines).rstrip() + "\n"


def shorten(text: str, limit: int = 200) -> str:
    """One line of at most `limit` characters keeping both ends: prompts put the instructions first
    and the question last, and a reader needs the question."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = limit // 3
    return text[:head] + " … " + text[-(limit - head - 3) :]


def _md_quote(text: str, limit: int = 200) -> str:
    return "`" + shorten(text, limit).replace("`", "'") + "`"
