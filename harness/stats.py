"""Paired statistics for comparing two runs over the same samples (the gate, `compare`, monitors).

Every comparison here is *paired*: element i of `baseline` and element i of `candidate` are the
scores of the same sample in two runs (callers align them by sample id). Paired tests are far more
sensitive than unpaired ones on eval data, because most samples are easy or hard for both models;
an unpaired test on paired items (lm-eval #3831) both misses real regressions and misreads noise.

Conventions shared by every function:
- differences are `candidate - baseline`;
- `alternative` follows scipy: "two-sided", "less" (candidate lower than baseline) or "greater";
- bootstraps are seeded (`seed`), so a report printed twice shows the same interval;
- everything is vectorised numpy: 100,000 pairs x 10,000 resamples take well under two seconds
  (see `bootstrap_means` for how, and `benchmarks/gate.py`).

Public API: `Interval`, `TestResult`, `bootstrap_means`, `bootstrap_mean_ci`, `paired_bootstrap`,
`mcnemar_exact`, `mcnemar_from_counts`, `sign_test`, `wilcoxon_signed_rank`, `paired_test`,
`holm`, `minimum_detectable_effect`, `paired_sd`, `is_binary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as _sps

__all__ = [
    "Alternative",
    "Interval",
    "PairedMethod",
    "TestResult",
    "bootstrap_mean_ci",
    "bootstrap_means",
    "holm",
    "is_binary",
    "mcnemar_exact",
    "mcnemar_from_counts",
    "minimum_detectable_effect",
    "paired_bootstrap",
    "paired_sd",
    "paired_test",
    "sign_test",
    "signed_rank_null",
    "wilcoxon_signed_rank",
]

Alternative = Literal["two-sided", "less", "greater"]
PairedMethod = Literal["auto", "mcnemar", "wilcoxon", "sign"]

#: Data with at most this many distinct values are resampled exactly through a multinomial over them.
_EXACT_DISTINCT = 64
#: Up to this many (samples x resamples), indices are drawn exactly; beyond it the binned method runs.
_EXACT_WORK = 50_000_000
#: Quantile bins of the binned method (each holds n / _BINS samples).
_BINS = 64
#: Elements of the index matrix drawn at once on the index-resampling path (bounds memory to ~64 MB).
_CHUNK = 1 << 24


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float

    def to_json(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence}


@dataclass(frozen=True)
class TestResult:
    """A hypothesis test's outcome. `n` is the number of pairs that carried information (for
    McNemar and the sign test: the discordant pairs; for Wilcoxon: the non-zero differences)."""

    __test__ = False  # not a pytest test class

    method: str
    statistic: float
    p_value: float
    n: int
    alternative: str

    def to_json(self) -> dict[str, float | int | str]:
        return {
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "n": self.n,
            "alternative": self.alternative,
        }


def _vector(values: ArrayLike, name: str) -> NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError(f"{name}: no values")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or infinite values (drop unscored samples before testing)")
    return x


def _pair(baseline: ArrayLike, candidate: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a, b = _vector(baseline, "baseline"), _vector(candidate, "candidate")
    if a.shape != b.shape:
        raise ValueError(f"paired data must have equal lengths (baseline {a.size}, candidate {b.size})")
    return a, b


# ---- bootstrap ----------------------------------------------------------------------------------


def bootstrap_means(values: ArrayLike, n_resamples: int = 10_000, seed: int = 0) -> NDArray[np.float64]:
    """Means of `n_resamples` bootstrap resamples (n draws with replacement) of `values`.

    Three ways, picked by the data, so 100,000 samples x 10,000 resamples stay well under 2 s:
    - at most 64 distinct values (0/1 accuracy, graded 1-10 scores and their paired differences):
      exact. A resample's count of each distinct value is Multinomial(n, frequencies), costing
      O(resamples x distinct values) instead of O(resamples x n);
    - small data (n x resamples <= 5e7): exact index resampling, in memory-bounded chunks;
    - large data with many distinct values (token F1, log-probabilities): binned. The sorted values
      are cut into 64 equal-count bins; how many draws land in each bin is drawn exactly
      (multinomial), and the sum of the m draws inside a bin, whose spread is a tiny part of the
      total, from its normal approximation N(m * bin mean, m * bin variance). Each bin holds
      n / 64 >= 780 samples here, so that approximation is tight; tests check it against exact
      index resampling.
    """
    x = _vector(values, "values")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    rng = np.random.default_rng(seed)
    distinct, counts = np.unique(x, return_counts=True)
    if distinct.size <= _EXACT_DISTINCT:
        return _multinomial_means(distinct, counts, n_resamples, rng)
    if x.size * n_resamples <= _EXACT_WORK:
        return _index_means(x, n_resamples, rng)
    return _binned_means(x, n_resamples, rng)


def _multinomial_means(
    distinct: NDArray[np.float64], counts: NDArray[np.int64], n_resamples: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    n = int(counts.sum())
    draws = rng.multinomial(n, counts / n, size=n_resamples)
    means: NDArray[np.float64] = (draws @ distinct) / n
    return means


def _binned_means(x: NDArray[np.float64], n_resamples: int, rng: np.random.Generator, bins: int = _BINS) -> NDArray[np.float64]:
    n = x.size
    chunks = np.array_split(np.sort(x), min(bins, n))
    sizes = np.array([c.size for c in chunks], dtype=np.int64)
    bin_means = np.array([c.mean() for c in chunks])
    bin_vars = np.array([c.var() for c in chunks])
    draws = rng.multinomial(n, sizes / n, size=n_resamples)
    within = np.sqrt(draws @ bin_vars) * rng.standard_normal(n_resamples)
    means: NDArray[np.float64] = (draws @ bin_means + within) / n
    return means


def _index_means(x: NDArray[np.float64], n_resamples: int, rng: np.random.Generator) -> NDArray[np.float64]:
    n = x.size
    out = np.empty(n_resamples, dtype=np.float64)
    rows = max(1, _CHUNK // n)
    index_type = np.int32 if n < 2**31 else np.int64
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=index_type)
        out[start:stop] = np.take(x, idx).mean(axis=1)
    return out


def _percentile_interval(estimate: float, means: NDArray[np.float64], confidence: float) -> Interval:
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high), confidence)


def bootstrap_mean_ci(
    values: ArrayLike, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> Interval:
    """Percentile bootstrap confidence interval of the mean of one run's scores."""
    x = _vector(values, "values")
    return _percentile_interval(float(x.mean()), bootstrap_means(x, n_resamples, seed), confidence)


def paired_bootstrap(
    baseline: ArrayLike, candidate: ArrayLike, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of mean(candidate) - mean(baseline), resampling *pairs*.

    Resampling the per-sample differences keeps each sample's two scores together, so the
    interval reflects the correlation between runs (much narrower than two independent CIs).
    """
    a, b = _pair(baseline, candidate)
    d = b - a
    return _percentile_interval(float(d.mean()), bootstrap_means(d, n_resamples, seed), confidence)


# ---- tests --------------------------------------------------------------------------------------


def is_binary(values: ArrayLike) -> bool:
    """True when every value is 0 or 1 (accuracy-like scores: McNemar applies)."""
    x = np.asarray(values, dtype=np.float64)
    return bool(np.all((x == 0.0) | (x == 1.0)))


def _binomial_p(k: int, n: int, alternative: Alternative) -> float:
    """P-value for k successes in n fair coin flips ("greater": more successes than n/2)."""
    if n == 0:
        return 1.0
    return float(_sps.binomtest(k, n, 0.5, alternative=alternative).pvalue)


def mcnemar_from_counts(losses: int, wins: int, alternative: Alternative = "two-sided") -> TestResult:
    """Exact (binomial) McNemar test from the discordant pairs.

    `losses`: samples right in the baseline and wrong in the candidate; `wins`: the reverse.
    Under no difference each discordant pair is a loss or a win with probability 1/2. "less" asks
    whether the candidate is worse (more losses than wins), "greater" whether it is better.
    """
    if losses < 0 or wins < 0:
        raise ValueError("counts must be non-negative")
    n = losses + wins
    flipped: Alternative = {"two-sided": "two-sided", "less": "greater", "greater": "less"}[alternative]  # type: ignore[assignment]
    return TestResult("mcnemar-exact", float(min(losses, wins)), _binomial_p(losses, n, flipped), n, alternative)


def mcnemar_exact(baseline: ArrayLike, candidate: ArrayLike, alternative: Alternative = "two-sided") -> TestResult:
    """Exact McNemar test on paired 0/1 scores."""
    a, b = _pair(baseline, candidate)
    if not (is_binary(a) and is_binary(b)):
        raise ValueError("McNemar's test needs 0/1 scores; use wilcoxon_signed_rank or sign_test for graded scores")
    losses = int(np.count_nonzero((a == 1.0) & (b == 0.0)))
    wins = int(np.count_nonzero((a == 0.0) & (b == 1.0)))
    return mcnemar_from_counts(losses, wins, alternative)


def sign_test(baseline: ArrayLike, candidate: ArrayLike, alternative: Alternative = "two-sided") -> TestResult:
    """Sign test on paired scores: counts samples that got better vs worse, ignoring by how much.

    Robust for graded scores whose steps are not comparable (a judge's 3 -> 4 vs 9 -> 10); ties drop out.
    """
    a, b = _pair(baseline, candidate)
    d = b - a
    up, down = int(np.count_nonzero(d > 0)), int(np.count_nonzero(d < 0))
    return TestResult("sign", float(min(up, down)), _binomial_p(up, up + down, alternative), up + down, alternative)


#: Up to this many non-zero differences the signed-rank p-value comes from the exact permutation
#: distribution (ties included); above it, from the normal approximation with tie and continuity
#: corrections, whose error is then far below the Monte Carlo error of any calibration check.
EXACT_SIGNED_RANK_MAX = 300


def signed_rank_null(ranks: ArrayLike) -> tuple[NDArray[np.float64], float]:
    """Exact null distribution of the signed-rank statistic given the |difference| ranks.

    Under no difference every non-zero difference is positive or negative with probability 1/2,
    independently, whatever the ranks (ties get midranks). Doubled midranks are integers, so the
    distribution of T+ (sum of positive ranks) is a convolution over 2 * max(T+) + 1 cells:
    O(n^3) for n differences, a few milliseconds at n = 300. Returns (probabilities of 2 * T+, scale=2).
    """
    doubled = np.rint(2.0 * np.asarray(ranks, dtype=np.float64)).astype(np.int64)
    dist = np.zeros(int(doubled.sum()) + 1, dtype=np.float64)
    dist[0] = 1.0
    top = 0
    for r in np.sort(doubled):
        shifted = dist[: top + 1].copy()
        dist[: top + 1] *= 0.5
        dist[r : r + top + 1] += 0.5 * shifted
        top += int(r)
    return dist, 2.0


def wilcoxon_signed_rank(
    baseline: ArrayLike, candidate: ArrayLike, alternative: Alternative = "two-sided"
) -> TestResult:
    """Wilcoxon signed-rank test on paired graded scores; zero differences are dropped.

    The decision rule (docs/gating.md): with at most `EXACT_SIGNED_RANK_MAX` non-zero differences
    the p-value is exact, from the permutation distribution of T+ given the midranks of |d| (so
    ties are handled exactly: when every |d| is equal, e.g. answers that went from fully right to
    fully wrong, this *is* the exact sign test and 3 of 3 losses give p = 1/8). scipy's default
    falls back to the normal approximation without continuity correction as soon as there are
    ties, which failed clean candidates 6-12% of the time at alpha 0.05 with a few flips. Above
    the limit: the normal approximation with tie and continuity corrections. All-zero gives p = 1.
    """
    a, b = _pair(baseline, candidate)
    d = b - a
    d = d[d != 0.0]
    n = int(d.size)
    if n == 0:
        return TestResult("wilcoxon-exact", 0.0, 1.0, 0, alternative)
    ranks = _sps.rankdata(np.abs(d))
    t_plus = float(ranks[d > 0].sum())
    # scipy's convention: min(T+, T-) for the two-sided test, T+ for one-sided ones.
    statistic = min(t_plus, float(ranks.sum()) - t_plus) if alternative == "two-sided" else t_plus
    if n > EXACT_SIGNED_RANK_MAX:
        res = _sps.wilcoxon(d, zero_method="wilcox", correction=True, alternative=alternative, method="approx")
        return TestResult("wilcoxon-normal", statistic, float(res.pvalue), n, alternative)
    dist, scale = signed_rank_null(ranks)
    k = round(t_plus * scale)
    lower = float(dist[: k + 1].sum())
    upper = float(dist[k:].sum())
    p = {"less": lower, "greater": upper, "two-sided": 2.0 * min(lower, upper)}[alternative]
    method = "sign-exact" if np.all(ranks == ranks[0]) else "wilcoxon-exact"
    return TestResult(method, statistic, min(1.0, p), n, alternative)


def paired_test(
    baseline: ArrayLike, candidate: ArrayLike, alternative: Alternative = "two-sided", method: PairedMethod = "auto"
) -> TestResult:
    """The paired test suited to the scores: exact McNemar for 0/1 scores, Wilcoxon otherwise."""
    if method == "auto":
        method = "mcnemar" if is_binary(baseline) and is_binary(candidate) else "wilcoxon"
    if method == "mcnemar":
        return mcnemar_exact(baseline, candidate, alternative)
    if method == "sign":
        return sign_test(baseline, candidate, alternative)
    if method == "wilcoxon":
        return wilcoxon_signed_rank(baseline, candidate, alternative)
    raise ValueError(f"unknown paired test '{method}' (auto, mcnemar, wilcoxon, sign)")


# ---- multiplicity and power ---------------------------------------------------------------------


def holm(p_values: ArrayLike) -> NDArray[np.float64]:
    """Holm-Bonferroni adjusted p-values (step-down; controls the family-wise error rate).

    Compare each adjusted value with alpha: the gate tests several metrics at once, and without
    this correction a gate over 10 metrics would fail clean candidates about 40% of the time.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size == 0:
        return p
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def minimum_detectable_effect(
    n: int, sd: float, alpha: float = 0.05, power: float = 0.8, two_sided: bool = False
) -> float:
    """Smallest true mean difference a test at `alpha` detects with probability `power` on n pairs.

    The textbook normal-approximation formula (z_(1-alpha) + z_power) * sd / sqrt(n), where `sd` is
    the standard deviation of the per-sample differences. A drop smaller than this usually passes
    the gate unnoticed: when it exceeds the tolerance you care about, the suite is too small to gate on.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError("alpha and power must lie strictly between 0 and 1")
    z_alpha = float(_sps.norm.ppf(1.0 - (alpha / 2.0 if two_sided else alpha)))
    z_power = float(_sps.norm.ppf(power))
    return (z_alpha + z_power) * float(sd) / math.sqrt(n)


def paired_sd(baseline: ArrayLike, candidate: ArrayLike) -> float:
    """Standard deviation of the paired differences, for `minimum_detectable_effect`.

    When the runs agree on every sample (sd 0: two runs of one deterministic model), it falls back
    to the unpaired sd sqrt(var_a + var_b), an upper bound for positively correlated runs, so the
    reported detectable effect is never a misleading 0. Returns 0 only when every score is constant.
    """
    a, b = _pair(baseline, candidate)
    if a.size < 2:
        return 0.0
    sd = float(np.std(b - a, ddof=1))
    if sd > 0.0:
        return sd
    return float(math.sqrt(np.var(a, ddof=1) + np.var(b, ddof=1)))


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (good coverage near 0 and 1, where refusal rates live)."""
    if n == 0:
        return (float("nan"), float("nan"))
    ci = _sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))
