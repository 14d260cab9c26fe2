"""Drift, reference vs current: scores along a sequence of runs, outputs between two sets of responses,
and inputs between two windows of production prompts.

Each check returns a `MonitorResult` whose findings carry the statistic, a p-value (Holm-adjusted
within the check) and the threshold that decided the alarm. A finding alarms only when it is both
significant and larger than a practical effect size (see monitors/config.py for the defaults and why).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from harness.errors import UserError
from monitors.config import EmbeddingConfig, MonitorConfig, OutputDriftConfig, ScoreDriftConfig
from monitors.embed import Embedder, MiniLMEmbedder, make_embedder, require_sklearn
from monitors.results import Finding, MonitorResult
from monitors.statistics import (
    bin_counts,
    holm,
    js_permutation_test,
    lower_cusum,
    mmd_permutation_test,
    psi,
    quantile_edges,
)

# ---- score drift along a sequence of runs --------------------------------------------------------


@dataclass(frozen=True)
class ScorePoint:
    """One run's value of one metric, with its standard error (None when the store has none)."""

    run_id: str
    label: str  # step number or creation time, for people reading the result
    value: float
    stderr: float | None


def score_drift(
    series: dict[str, list[ScorePoint]],
    higher_is_better: dict[str, bool],
    config: ScoreDriftConfig,
) -> MonitorResult:
    """CUSUM per metric on values standardised against the first `reference_runs` runs.

    Alarms while the accumulated drop exceeds h at the newest run (a drop that has since recovered
    decays by k per run and stops alarming). The Theil-Sen slope per run is reported as the trend.
    """
    findings = []
    run_ids: list[str] = []
    for metric, points in series.items():
        if len(points) < config.reference_runs + 1:
            raise UserError(
                f"metric '{metric}': {len(points)} runs, need at least {config.reference_runs + 1} "
                f"({config.reference_runs} reference runs + 1 to monitor)"
            )
        run_ids = [p.run_id for p in points]
        findings.append(_score_finding(metric, points, higher_is_better.get(metric, True), config))
    reference = ",".join(run_ids[: config.reference_runs])
    current = ",".join(run_ids[config.reference_runs :])
    return MonitorResult(
        "drift-score", reference, current, tuple(findings),
        summary={"metrics": list(series), "runs": run_ids}, config=config.model_dump(),
    )


def _score_finding(metric: str, points: list[ScorePoint], higher: bool, config: ScoreDriftConfig) -> Finding:
    ref = points[: config.reference_runs]
    ref_mean = float(np.mean([p.value for p in ref]))
    have_se = all(p.stderr is not None for p in points)
    if have_se:
        ref_se = math.sqrt(sum(float(p.stderr) ** 2 for p in ref if p.stderr is not None)) / len(ref)
        sigmas = [math.sqrt(float(p.stderr) ** 2 + ref_se**2) for p in points if p.stderr is not None]
        sigma_source = "run standard errors"
    else:
        if len(ref) < 2:
            raise UserError(f"metric '{metric}' has no standard errors; use --reference-runs 2 or more to estimate the noise")
        spread = float(np.std([p.value for p in ref], ddof=1))
        sigmas = [spread * math.sqrt(1 + 1 / len(ref))] * len(points)
        sigma_source = "spread of the reference runs"
    sign = 1.0 if higher else -1.0
    z = [sign * (p.value - ref_mean) / max(s, config.min_sigma) for p, s in zip(points, sigmas, strict=True)]
    monitored = z[config.reference_runs :]
    cusum = lower_cusum(monitored, config.k, config.h)
    last = cusum.statistic[-1]
    alarm = last > config.h
    offset = config.reference_runs
    values = [p.value for p in points]
    slope, _, lo, hi = sps.theilslopes(values, np.arange(len(values)))
    first = points[offset + cusum.alarm_index] if cusum.alarm_index is not None else None
    start = points[offset + cusum.change_index] if cusum.change_index is not None else None
    direction = "drop" if higher else "rise"
    if alarm and first is not None and start is not None:
        message = (f"{metric}: sustained {direction} since run {start.run_id} ({start.label}); now {values[-1]:.4f} "
                   f"vs reference {ref_mean:.4f} (CUSUM {last:.2f} > h={config.h})")
    else:
        message = f"{metric}: no sustained {direction} (CUSUM {last:.2f} <= h={config.h})"
    message += f"; trend {slope:+.3g} per run (Theil-Sen, 95% CI {lo:+.3g} .. {hi:+.3g})"
    return Finding(
        name=metric, statistic="cusum", value=last, p_value=None, threshold=config.h, alarm=alarm, message=message,
        details={
            "higher_is_better": higher,
            "reference_mean": ref_mean,
            "sigma_source": sigma_source,
            "runs": [p.run_id for p in points],
            "labels": [p.label for p in points],
            "values": values,
            "z": z,
            "cusum": [0.0] * offset + list(cusum.statistic),
            "max_cusum": cusum.maximum,
            "first_alarm_run": first.run_id if first else None,
            "change_run": start.run_id if start else None,
            "slope_per_run": float(slope),
            "slope_ci95": [float(lo), float(hi)],
        },
    )


# ---- output drift between two sets of responses --------------------------------------------------

_TOKEN = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def output_drift(
    reference: Sequence[str],
    current: Sequence[str],
    config: MonitorConfig,
    reference_label: str,
    current_label: str,
    kind: str = "drift-output",
) -> MonitorResult:
    """Response length (KS), refusal rate (chi-squared), token distribution (JS, permutation) and
    embeddings (MMD, permutation) between two sets of responses."""
    findings = output_findings(reference, current, config.output, config.embedding)
    return MonitorResult(
        kind, reference_label, current_label, tuple(findings),
        summary={"n_reference": len(reference), "n_current": len(current)},
        config={"output": config.output.model_dump(), "embedding": config.embedding.model_dump()},
    )


def output_findings(
    reference: Sequence[str], current: Sequence[str], cfg: OutputDriftConfig, emb: EmbeddingConfig, prefix: str = ""
) -> list[Finding]:
    require_sklearn()
    if len(reference) < 2 or len(current) < 2:
        raise UserError(f"output drift needs at least 2 responses per side (got {len(reference)} and {len(current)})")
    rng = np.random.default_rng(emb.seed)
    ref_s, cur_s = _subsample(reference, emb.max_samples, rng), _subsample(current, emb.max_samples, rng)
    raw: list[tuple[str, str, float, float, float, dict[str, Any]]] = []  # name, statistic, value, p, effect, details

    ref_len = [len(_words(t)) for t in reference]
    cur_len = [len(_words(t)) for t in current]
    ks = sps.ks_2samp(ref_len, cur_len)
    raw.append(("response_length", "ks", float(ks.statistic), float(ks.pvalue), float(ks.statistic),
                {"reference_mean": float(np.mean(ref_len)), "current_mean": float(np.mean(cur_len)),
                 "reference_median": float(np.median(ref_len)), "current_median": float(np.median(cur_len))}))

    patterns = [re.compile(p, re.IGNORECASE) for p in cfg.refusal_patterns]
    ref_ref = sum(1 for t in reference if any(p.search(t) for p in patterns))
    cur_ref = sum(1 for t in current if any(p.search(t) for p in patterns))
    table = np.array([[ref_ref, len(reference) - ref_ref], [cur_ref, len(current) - cur_ref]])
    if table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        chi2, p_ref = 0.0, 1.0
    else:
        res = sps.chi2_contingency(table, correction=True)
        chi2, p_ref = float(res.statistic), float(res.pvalue)
    r0, r1 = ref_ref / len(reference), cur_ref / len(current)
    raw.append(("refusal_rate", "rate change", abs(r1 - r0), p_ref, abs(r1 - r0),
                {"reference_rate": r0, "current_rate": r1, "reference_refusals": ref_ref, "current_refusals": cur_ref,
                 "chi2": chi2}))

    from sklearn.feature_extraction.text import CountVectorizer

    pooled = list(ref_s) + list(cur_s)
    is_ref = np.array([True] * len(ref_s) + [False] * len(cur_s))
    try:
        counts = CountVectorizer(token_pattern=r"(?u)\b\w+\b", lowercase=True).fit_transform(pooled)
        js = js_permutation_test(counts, is_ref, emb.permutations, rng)
        js_value, js_p, js_null = js.statistic, js.p_value, js.null_mean
    except ValueError:  # no tokens at all on either side (e.g. every response empty)
        js_value, js_p, js_null = 0.0, 1.0, 0.0
    raw.append(("token_distribution", "jensen-shannon", js_value, js_p, js_value - js_null,
                {"null_mean": js_null, "excess": js_value - js_null, "permutations": emb.permutations}))

    embedder = make_embedder(emb).fit(pooled)
    vectors = embedder.transform(pooled)
    mmd = mmd_permutation_test(vectors[is_ref], vectors[~is_ref], emb.permutations, rng)
    raw.append(("embedding", "mmd", mmd.statistic, mmd.p_value, mmd.statistic,
                {"embedder": embedder.name, "null_mean": mmd.null_mean, "permutations": emb.permutations,
                 "n_reference": len(ref_s), "n_current": len(cur_s)}))

    minimum = {"response_length": cfg.min_ks, "refusal_rate": cfg.min_refusal_delta,
               "token_distribution": cfg.min_js_excess, "embedding": 0.0}
    adjusted = holm([r[3] for r in raw])
    findings = []
    for (name, statistic, value, p, effect, details), p_adj in zip(raw, adjusted, strict=True):
        assert p_adj is not None
        alarm = p_adj < cfg.alpha and effect >= minimum[name] and (name != "embedding" or effect > 0)
        # the threshold in the statistic's own unit: JS alarms above its permutation-null mean plus the minimum
        threshold = minimum[name] + (details["null_mean"] if name == "token_distribution" else 0.0)
        verdict = "drift" if alarm else "no drift"
        label = name if name.startswith(prefix) else prefix + name  # response_length, not response_response_length
        message = (f"{label}: {verdict} ({statistic} {value:.4g} vs threshold {threshold:.4g}, "
                   f"Holm p={p_adj:.2g} vs alpha {cfg.alpha:g})")
        findings.append(Finding(label, statistic, value, p_adj, threshold, alarm, message,
                                {**details, "p_raw": p, "effect": effect, "min_effect": minimum[name], "alpha": cfg.alpha}))
    return findings


def _subsample(texts: Sequence[str], limit: int, rng: np.random.Generator) -> list[str]:
    if len(texts) <= limit:
        return list(texts)
    idx = np.sort(rng.choice(len(texts), size=limit, replace=False))
    return [texts[i] for i in idx]


# ---- input drift between two windows of prompt logs ----------------------------------------------


@dataclass(frozen=True)
class LogWindow:
    """Prompts (with stored features and optional responses) from one time window of one stream."""

    label: str
    prompts: tuple[str, ...]
    features: tuple[dict[str, Any], ...]
    responses: tuple[str | None, ...]


def input_drift(reference: LogWindow, current: LogWindow, config: MonitorConfig) -> MonitorResult:
    """PSI over prompt length, language and topic clusters, and prompt-embedding MMD; plus output
    drift on the responses when both windows carry enough of them."""
    require_sklearn()
    cfg, emb = config.input, config.embedding
    for window in (reference, current):
        if len(window.prompts) < cfg.min_samples:
            raise UserError(
                f"window {window.label} has {len(window.prompts)} prompts, fewer than input.min_samples="
                f"{cfg.min_samples}; widen the windows or lower the minimum"
            )
    rng = np.random.default_rng(emb.seed)
    raw: list[tuple[str, str, float, float, dict[str, Any]]] = []

    ref_len = [float(f["n_words"]) for f in reference.features]
    cur_len = [float(f["n_words"]) for f in current.features]
    edges = quantile_edges(ref_len, cfg.length_bins)
    raw.append(_psi_finding("prompt_length", bin_counts(ref_len, edges), bin_counts(cur_len, edges),
                            {"edges": edges.tolist()}))

    ref_lang = [str(f.get("language", "unknown")) for f in reference.features]
    cur_lang = [str(f.get("language", "unknown")) for f in current.features]
    keep = [lang for lang, _ in Counter(ref_lang).most_common(cfg.max_languages)]
    cats = [*keep, "other"]
    raw.append(_psi_finding("language", _category_counts(ref_lang, keep), _category_counts(cur_lang, keep),
                            {"categories": cats}))

    ref_s = _subsample(reference.prompts, emb.max_samples, rng)
    cur_s = _subsample(current.prompts, emb.max_samples, rng)
    from sklearn.cluster import KMeans

    topic_embedder = make_embedder(emb).fit(ref_s)
    ref_vec = topic_embedder.transform(ref_s)
    k = min(cfg.topic_clusters, len(ref_s))
    kmeans = KMeans(n_clusters=k, n_init=4, random_state=emb.seed).fit(ref_vec)
    cur_vec = topic_embedder.transform(cur_s)
    ref_topics = np.bincount(kmeans.labels_, minlength=k)
    cur_topics = np.bincount(kmeans.predict(cur_vec), minlength=k)
    raw.append(_psi_finding("topic", ref_topics, cur_topics, {"clusters": k, "embedder": topic_embedder.name}))

    if isinstance(topic_embedder, MiniLMEmbedder):  # not fitted to the data: reuse the vectors
        pooled_embedder: Embedder = topic_embedder
        vectors = np.vstack([ref_vec, cur_vec])
    else:  # fit on the pooled windows so the permutation test stays exchangeable
        pooled_embedder = make_embedder(emb).fit(ref_s + cur_s)
        vectors = pooled_embedder.transform(ref_s + cur_s)
    mmd = mmd_permutation_test(vectors[: len(ref_s)], vectors[len(ref_s) :], emb.permutations, rng)
    raw.append(("prompt_embedding", "mmd", mmd.statistic, mmd.p_value,
                {"embedder": pooled_embedder.name, "null_mean": mmd.null_mean, "permutations": emb.permutations}))

    adjusted = holm([r[3] for r in raw])
    findings = []
    for (name, statistic, value, p, details), p_adj in zip(raw, adjusted, strict=True):
        assert p_adj is not None
        if statistic == "psi":
            alarm = value >= cfg.psi_threshold and p_adj < cfg.alpha
            threshold = cfg.psi_threshold
            rule = f"PSI >= {cfg.psi_threshold:g} and Holm p < {cfg.alpha:g}"
        else:
            alarm = p_adj < cfg.alpha and value > cfg.min_mmd2
            threshold = cfg.min_mmd2
            rule = f"Holm p < {cfg.alpha:g} and MMD² > {cfg.min_mmd2:g}"
        message = f"{name}: {'drift' if alarm else 'no drift'} ({statistic}={value:.4g}, Holm p={p_adj:.2g}; alarm if {rule})"
        findings.append(Finding(name, statistic, value, p_adj, threshold, alarm, message,
                                {**details, "p_raw": p, "alpha": cfg.alpha}))

    summary: dict[str, Any] = {"n_reference": len(reference.prompts), "n_current": len(current.prompts)}
    ref_resp = [r for r in reference.responses if r is not None]
    cur_resp = [r for r in current.responses if r is not None]
    if len(ref_resp) >= cfg.min_samples and len(cur_resp) >= cfg.min_samples:
        findings.extend(output_findings(ref_resp, cur_resp, config.output, emb, prefix="response_"))
        summary["responses"] = {"n_reference": len(ref_resp), "n_current": len(cur_resp)}
    return MonitorResult(
        "drift-input", reference.label, current.label, tuple(findings), summary=summary,
        config={"input": cfg.model_dump(), "output": config.output.model_dump(), "embedding": emb.model_dump()},
    )


def _category_counts(values: Sequence[str], keep: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(keep)}
    counts = np.zeros(len(keep) + 1, dtype=np.int64)
    for v in values:
        counts[index.get(v, len(keep))] += 1
    return counts


def _psi_finding(name: str, ref: np.ndarray, cur: np.ndarray, details: dict[str, Any]) -> tuple[str, str, float, float, dict[str, Any]]:
    """PSI of two histograms and the chi-squared test of homogeneity on the same bins (empty bins dropped)."""
    value = psi(ref, cur)
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    p = 1.0 if table.shape[1] < 2 else float(sps.chi2_contingency(table, correction=False).pvalue)
    shares = {"reference": (ref / max(ref.sum(), 1)).tolist(), "current": (cur / max(cur.sum(), 1)).tolist()}
    return name, "psi", value, p, {**details, "shares": shares}
