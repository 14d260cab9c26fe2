"""One metric across two paired runs: the difference, its interval, a p-value, flips and the MDE.

Two kinds of metric, compared the way they are computed:
- `mean` metrics (accuracy, F1, judge scores): the mean of per-sample scores. Paired test on the
  per-sample values (`stats.paired_test`: exact McNemar for 0/1, exact or normal signed-rank
  otherwise), paired bootstrap interval of the mean difference.
- `corpus` metrics (BLEU, chrF, chrF++, TER): a statistic of sums over all segments, not a mean.
  Paired bootstrap resampling of segments, re-scoring the summed statistics of both runs on the
  same resample (Koehn 2004; what `sacrebleu --paired-bs` does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from harness import stats

_EPS = 1e-12
#: Rows of the resample-count matrix drawn at once (bounds memory for long test sets).
_ROWS = 512


@dataclass(frozen=True)
class MetricComparison:
    """One metric across two runs. `delta` is candidate - baseline; `worse_by` is the drop in the
    harmful direction (positive = the candidate is worse, whatever way the metric points).
    `se` is the standard error of `delta`; `mde` the minimum detectable effect at `alpha`."""

    metric: str
    kind: Literal["mean", "corpus"]
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
    se: float
    power: float
    alpha: float
    flips_of: str | None = None

    @property
    def worse_by(self) -> float:
        return -self.delta if self.higher_is_better else self.delta

    def mde_at(self, alpha: float) -> float | None:
        """The true drop a one-sided test at `alpha` catches with probability `power` (normal
        approximation: (z_(1-alpha) + z_power) * se). None when the runs do not vary at all."""
        if self.se <= 0:
            return None
        two_sided = self.test.alternative == "two-sided"
        return stats.minimum_detectable_effect(1, self.se, alpha, self.power, two_sided=two_sided)

    @property
    def mde(self) -> float | None:
        return self.mde_at(self.alpha)

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "kind": self.kind,
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
            "flips_of": self.flips_of or self.metric,
            "se": self.se,
            "mde": self.mde,
            "mde_alpha": self.alpha,
        }


def _flips(baseline: NDArray[np.float64], candidate: NDArray[np.float64], higher_is_better: bool,
           directions: NDArray[np.float64] | None = None) -> tuple[int, int, int]:
    """(improved, regressed, unchanged); `directions` (+1/-1 per sample) overrides the metric's."""
    d = candidate - baseline
    oriented = d * directions if directions is not None else (d if higher_is_better else -d)
    return (int(np.count_nonzero(oriented > _EPS)), int(np.count_nonzero(oriented < -_EPS)),
            int(np.count_nonzero(np.abs(oriented) <= _EPS)))


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
    directions: NDArray[np.float64] | None = None,
) -> MetricComparison:
    """Compare paired values of a mean metric. `alternative` is in terms of candidate - baseline;
    `directions` orient the flip counts per sample (see `pairing.sample_directions`)."""
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    n = int(a.size)
    if n == 0:
        raise ValueError(f"metric '{metric}': no paired samples")
    sd = stats.paired_sd(a, b)
    improved, regressed, unchanged = _flips(a, b, higher_is_better, directions)
    return MetricComparison(
        metric, "mean", higher_is_better, n, n_unscored, float(a.mean()), float(b.mean()), float((b - a).mean()),
        stats.paired_bootstrap(a, b, confidence, n_resamples, seed), stats.paired_test(a, b, alternative, method),
        improved, regressed, unchanged, sd / np.sqrt(n), power, alpha,
    )


def bootstrap_corpus_deltas(
    stats_a: NDArray[np.float64], stats_b: NDArray[np.float64], score_a: Callable[[NDArray[np.float64]], float],
    score_b: Callable[[NDArray[np.float64]], float], n_resamples: int, seed: int,
) -> NDArray[np.float64]:
    """score_b(resample) - score_a(resample) over `n_resamples` resamples of segments with
    replacement, the *same* resample for both runs (that is what makes it paired)."""
    n = stats_a.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples, dtype=np.float64)
    p = np.full(n, 1.0 / n)
    for start in range(0, n_resamples, _ROWS):
        stop = min(n_resamples, start + _ROWS)
        counts = rng.multinomial(n, p, size=stop - start).astype(np.float64)
        ta, tb = counts @ stats_a, counts @ stats_b
        out[start:stop] = [score_b(tb[i]) - score_a(ta[i]) for i in range(stop - start)]
    return out


def corpus_p_value(deltas: NDArray[np.float64], observed: float, alternative: stats.Alternative) -> float:
    """p-value of the observed corpus difference from its paired bootstrap.

    The null distribution is the bootstrap distribution shifted to mean 0 (Koehn 2004). One-sided:
    the share of centred resampled deltas at least as extreme as `observed` in that direction.
    Two-sided: exactly `sacrebleu --paired-bs` (and Moses' bootstrap-hypothesis-difference-
    significance.pl): |delta*| centred on its mean, compared with |observed|. All with the +1
    correction, so p is never 0 and the test never rejects more often than alpha by construction.
    """
    r = deltas.size
    if alternative == "two-sided":
        absd = np.abs(deltas)
        return float((np.count_nonzero(absd - absd.mean() > abs(observed)) + 1) / (r + 1))
    centred = deltas - deltas.mean()
    hits = centred <= observed if alternative == "less" else centred >= observed
    return float((np.count_nonzero(hits) + 1) / (r + 1))


def compare_corpus(
    metric: str,
    corpus: Any,
    details_a: Sequence[Any],
    details_b: Sequence[Any],
    *,
    alternative: stats.Alternative = "two-sided",
    alpha: float = 0.05,
    power: float = 0.8,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    sample_scores: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
) -> MetricComparison:
    """Compare a corpus metric (see `Suite.corpus_metric`) over aligned segments of two runs."""
    keep = [i for i, d in enumerate(details_a) if corpus.includes(d)]
    if not keep:
        raise ValueError(f"metric '{metric}': no paired segments")
    stats_a, m_a = corpus.statistics([details_a[i] for i in keep])
    stats_b, m_b = corpus.statistics([details_b[i] for i in keep])
    value_a, value_b = corpus.score(m_a, stats_a.sum(0)), corpus.score(m_b, stats_b.sum(0))
    deltas = bootstrap_corpus_deltas(stats_a, stats_b, lambda t: corpus.score(m_a, t), lambda t: corpus.score(m_b, t),
                                     n_resamples, seed)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(deltas, [tail, 1.0 - tail])
    delta = value_b - value_a
    test = stats.TestResult("paired-bootstrap", delta, corpus_p_value(deltas, delta, alternative), len(keep), alternative)
    flips = (0, 0, len(keep))
    if sample_scores is not None:
        flips = _flips(sample_scores[0][keep], sample_scores[1][keep], corpus.higher_is_better)
    return MetricComparison(
        metric, "corpus", corpus.higher_is_better, len(keep), 0, value_a, value_b, delta,
        stats.Interval(delta, float(low), float(high), confidence), test, *flips, float(np.std(deltas, ddof=1)),
        power, alpha, corpus.sample_score if sample_scores is not None else None,
    )
