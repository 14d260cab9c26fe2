"""harness.stats against textbook values, brute-force definitions and scipy's reference implementations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness import stats

# ---- McNemar --------------------------------------------------------------------------------------

# (losses b, wins c, alternative, expected p). Textbook: Wikipedia's McNemar example (b=6, c=16,
# exact two-sided p = 2 * sum_{k<=6} C(22,k) / 2^22 = 0.05248); the rest are closed-form binomials.
MCNEMAR_CASES = [
    (6, 16, "two-sided", 2 * sum(math.comb(22, k) for k in range(7)) / 2**22),
    (6, 16, "greater", sum(math.comb(22, k) for k in range(7)) / 2**22),  # candidate better
    (16, 6, "less", sum(math.comb(22, k) for k in range(7)) / 2**22),  # candidate worse
    (0, 0, "two-sided", 1.0),
    (5, 0, "less", 1 / 32),
    (5, 0, "greater", 1.0),
    (10, 10, "two-sided", 1.0),
]


@pytest.mark.parametrize(("losses", "wins", "alternative", "expected"), MCNEMAR_CASES)
def test_mcnemar_counts_textbook(losses: int, wins: int, alternative: stats.Alternative, expected: float) -> None:
    res = stats.mcnemar_from_counts(losses, wins, alternative)
    assert res.p_value == pytest.approx(expected, rel=1e-9)
    assert res.n == losses + wins


def test_mcnemar_wikipedia_example_value() -> None:
    assert stats.mcnemar_from_counts(6, 16).p_value == pytest.approx(0.0525, abs=5e-5)


def test_mcnemar_from_arrays_counts_discordant_pairs() -> None:
    base = np.array([1] * 59 + [1] * 6 + [0] * 16 + [0] * 80)
    cand = np.array([1] * 59 + [0] * 6 + [1] * 16 + [0] * 80)
    res = stats.mcnemar_exact(base, cand)
    assert res.n == 22
    assert res.p_value == pytest.approx(sps.binomtest(6, 22, 0.5).pvalue)
    with pytest.raises(ValueError, match="0/1"):
        stats.mcnemar_exact([0.5, 1.0], [1.0, 1.0])


# ---- sign test and Wilcoxon -----------------------------------------------------------------------


def test_sign_test_textbook() -> None:
    # 8 of 10 non-tied pairs improve: two-sided p = 2 * (C(10,0)+C(10,1)+C(10,2)) / 2^10 = 0.109375
    base = np.zeros(12)
    cand = np.array([1, 2, 3, 1, 1, 2, 5, 1, -1, -2, 0, 0], dtype=float)
    res = stats.sign_test(base, cand)
    assert res.n == 10
    assert res.p_value == pytest.approx(0.109375)
    assert stats.sign_test(base, cand, "greater").p_value == pytest.approx(56 / 1024)


# Darwin's Zea mays data (Fisher, The Design of Experiments): cross- minus self-fertilised heights.
DARWIN = np.array([6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75], dtype=float)


def _exact_signed_rank_p(d: np.ndarray, alternative: str) -> float:
    """Brute force: enumerate all 2^n sign patterns of the ranks (the definition of the exact test)."""
    ranks = sps.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    sums = np.array([sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in itertools.product([0, 1], repeat=d.size)])
    if alternative == "greater":
        return float(np.mean(sums >= observed))
    if alternative == "less":
        return float(np.mean(sums <= observed))
    return float(min(1.0, 2 * min(np.mean(sums >= observed), np.mean(sums <= observed))))


DARWIN_CASES = [("two-sided", 24.0, 0.041259765625), ("greater", 96.0, 0.0206298828125)]


@pytest.mark.parametrize(("alternative", "statistic", "textbook_p"), DARWIN_CASES)
def test_wilcoxon_darwin(alternative: stats.Alternative, statistic: float, textbook_p: float) -> None:
    res = stats.wilcoxon_signed_rank(np.zeros_like(DARWIN), DARWIN, alternative)
    assert res.statistic == statistic
    assert res.p_value == pytest.approx(textbook_p)
    assert res.p_value == pytest.approx(_exact_signed_rank_p(DARWIN, alternative))


def test_wilcoxon_large_sample_matches_scipy_and_handles_ties() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(1, 11, 500).astype(float)
    cand = np.clip(base + rng.integers(-2, 2, 500), 1, 10)
    res = stats.wilcoxon_signed_rank(base, cand, "less")
    assert res.n > stats.EXACT_SIGNED_RANK_MAX  # the normal approximation, with tie and continuity corrections
    ref = sps.wilcoxon(cand - base, zero_method="wilcox", alternative="less", correction=True, method="approx")
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.n == int(np.count_nonzero(cand - base))
    same = stats.wilcoxon_signed_rank(base, base)
    assert (same.p_value, same.n) == (1.0, 0)


def test_paired_test_picks_mcnemar_for_binary_and_wilcoxon_otherwise() -> None:
    assert stats.paired_test([0, 1, 1], [1, 1, 0]).method == "mcnemar-exact"
    assert stats.paired_test([0.5, 1, 1], [1, 1, 0]).method == "wilcoxon-exact"
    assert stats.paired_test([0, 1, 1], [1, 1, 0], method="sign").method == "sign"


# ---- Holm -----------------------------------------------------------------------------------------

HOLM_CASES = [
    # hand-worked: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, max(0.06, 0.04)
    ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
    ([0.5], [0.5]),
    ([0.3, 0.6, 0.9], [0.9, 1.0, 1.0]),
    ([0.001, 0.001, 0.2], [0.003, 0.003, 0.2]),
]


@pytest.mark.parametrize(("p", "expected"), HOLM_CASES)
def test_holm_textbook(p: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(stats.holm(p), expected)


def _holm_by_definition(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def test_holm_matches_definition_on_random_inputs() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        p = list(rng.uniform(0, 0.2, rng.integers(1, 12)))
        np.testing.assert_allclose(stats.holm(p), _holm_by_definition(p))


# ---- minimum detectable effect --------------------------------------------------------------------

MDE_CASES = [
    # (n, sd, alpha, power, two_sided, expected): (z_{1-a} + z_power) * sd / sqrt(n)
    (100, 1.0, 0.05, 0.8, True, (1.959964 + 0.841621) / 10),
    (100, 0.5, 0.05, 0.8, False, (1.644854 + 0.841621) * 0.05),
    (1000, 0.3, 0.01, 0.9, False, (2.326348 + 1.281552) * 0.3 / math.sqrt(1000)),
]


@pytest.mark.parametrize(("n", "sd", "alpha", "power", "two_sided", "expected"), MDE_CASES)
def test_minimum_detectable_effect(n: int, sd: float, alpha: float, power: float, two_sided: bool, expected: float) -> None:
    assert stats.minimum_detectable_effect(n, sd, alpha, power, two_sided) == pytest.approx(expected, rel=1e-5)


def test_mde_sample_size_textbook() -> None:
    # Textbook sample size for delta = 0.5 sd, two-sided 5%, 80% power: n = 31.4, so 0.5 sd is
    # detectable at n = 32 but not at n = 31.
    assert stats.minimum_detectable_effect(32, 1.0, two_sided=True) < 0.5 < stats.minimum_detectable_effect(31, 1.0, two_sided=True)


def test_paired_sd_falls_back_when_runs_agree() -> None:
    a = np.array([0, 1, 1, 0, 1], dtype=float)
    assert stats.paired_sd(a, a) == pytest.approx(math.sqrt(2 * np.var(a, ddof=1)))
    assert stats.paired_sd(np.ones(5), np.ones(5)) == 0.0


# ---- bootstrap ------------------------------------------------------------------------------------


def test_bootstrap_ci_matches_scipy_percentile() -> None:
    rng = np.random.default_rng(3)
    x = (rng.uniform(size=400) < 0.7).astype(float)
    ours = stats.bootstrap_mean_ci(x, n_resamples=10_000)
    ref = sps.bootstrap((x,), np.mean, n_resamples=10_000, method="percentile", random_state=1).confidence_interval
    assert ours.estimate == pytest.approx(x.mean())
    assert ours.low == pytest.approx(ref.low, abs=0.006)
    assert ours.high == pytest.approx(ref.high, abs=0.006)


def test_paired_bootstrap_matches_scipy_paired_and_is_narrower_than_unpaired() -> None:
    rng = np.random.default_rng(4)
    base = rng.uniform(size=300)
    cand = np.clip(base + rng.normal(-0.02, 0.05, 300), 0, 1)
    ours = stats.paired_bootstrap(base, cand, n_resamples=10_000)
    ref = sps.bootstrap(
        (base, cand), lambda a, b, axis=-1: np.mean(b, axis=axis) - np.mean(a, axis=axis),
        paired=True, n_resamples=10_000, method="percentile", random_state=2,
    ).confidence_interval
    assert ours.estimate == pytest.approx(cand.mean() - base.mean())
    assert ours.low == pytest.approx(ref.low, abs=0.0015)
    assert ours.high == pytest.approx(ref.high, abs=0.0015)
    unpaired_halfwidth = 1.96 * math.sqrt(base.var(ddof=1) / 300 + cand.var(ddof=1) / 300)
    assert (ours.high - ours.low) / 2 < unpaired_halfwidth / 3


def test_multinomial_and_index_paths_draw_the_same_distribution() -> None:
    rng = np.random.default_rng(5)
    d = rng.choice([-1.0, 0.0, 1.0], p=[0.1, 0.8, 0.1], size=1000)
    distinct, counts = np.unique(d, return_counts=True)
    fast = stats._multinomial_means(distinct, counts, 10_000, np.random.default_rng(0))
    slow = stats._index_means(d, 10_000, np.random.default_rng(0))
    assert fast.mean() == pytest.approx(slow.mean(), abs=1e-3)
    assert fast.std() == pytest.approx(slow.std(), rel=0.04)
    np.testing.assert_allclose(np.quantile(fast, [0.025, 0.5, 0.975]), np.quantile(slow, [0.025, 0.5, 0.975]), atol=3e-3)


def test_bootstrap_is_seeded_and_validates_input() -> None:
    x = np.arange(50, dtype=float)
    assert stats.bootstrap_mean_ci(x, seed=9) == stats.bootstrap_mean_ci(x, seed=9)
    with pytest.raises(ValueError, match="NaN"):
        stats.bootstrap_mean_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_bootstrap([1.0, 2.0], [1.0])


@pytest.mark.parametrize("kind", ["uniform", "skewed", "f1-like"])
def test_binned_path_agrees_with_exact_index_resampling(kind: str) -> None:
    """The large-data method (exact multinomial over 64 quantile bins + normal within-bin sums)
    gives the same interval as exact index resampling, including on skewed data."""
    rng = np.random.default_rng(6)
    x = {
        "uniform": rng.uniform(size=3000) - rng.uniform(size=3000),
        "skewed": rng.exponential(size=3000),
        "f1-like": np.round(rng.beta(2, 5, 3000) * 40) / 40 - np.round(rng.beta(2, 5, 3000) * 50) / 50,
    }[kind]
    binned = stats._binned_means(x, 5_000, np.random.default_rng(0))
    exact = stats._index_means(x, 5_000, np.random.default_rng(1))
    assert binned.std() == pytest.approx(x.std() / math.sqrt(x.size), rel=0.03)
    assert binned.std() == pytest.approx(exact.std(), rel=0.04)
    half = 1.96 * x.std() / math.sqrt(x.size)
    np.testing.assert_allclose(np.quantile(binned, [0.025, 0.975]), np.quantile(exact, [0.025, 0.975]), atol=0.08 * half)


@pytest.mark.parametrize("seed", range(6))
def test_exact_signed_rank_with_ties_matches_brute_force(seed: int) -> None:
    """Few non-zero differences with ties (graded scores): the exact permutation distribution."""
    rng = np.random.default_rng(seed)
    d = rng.choice([-1.0, -0.5, -0.25, 0.25, 0.5, 1.0], size=int(rng.integers(3, 12)))
    for alternative in ("less", "greater", "two-sided"):
        res = stats.wilcoxon_signed_rank(np.zeros_like(d), d, alternative)  # type: ignore[arg-type]
        assert res.p_value == pytest.approx(_exact_signed_rank_p(d, alternative))


@pytest.mark.parametrize(("lost", "expected"), [(3, 1 / 8), (6, 1 / 64)])
def test_answers_lost_outright_give_the_exact_sign_test_p(lost: int, expected: float) -> None:
    """k fully right answers made wrong among graded F1 scores: every |d| = 1, so p = 2^-k exactly
    (scipy's normal approximation gave 0.0416 for 3 of 3 and failed a clean candidate)."""
    base = np.r_[np.ones(200), np.full(60, 0.5), np.zeros(40)]
    cand = base.copy()
    cand[:lost] = 0.0
    res = stats.wilcoxon_signed_rank(base, cand, "less")
    assert res.p_value == pytest.approx(expected)
    assert res.method == "sign-exact"
    assert stats.paired_test(base, cand, "less").p_value == pytest.approx(expected)


@pytest.mark.parametrize("flips", [1, 2, 3, 4, 6, 8, 12])
def test_random_flips_without_true_difference_fail_at_most_alpha(flips: int) -> None:
    """No true difference: k answers flip +-1 at random. The false-fail rate at alpha 0.05 stays
    within 0.05 plus its Monte Carlo error (3 standard errors over 2,000 seeded simulations)."""
    rng = np.random.default_rng(flips)
    sims, alpha = 2_000, 0.05
    base = np.r_[np.ones(150), np.full(100, 0.5), np.zeros(50)]
    fails = 0
    for _ in range(sims):
        d = np.zeros(300)
        d[rng.choice(300, flips, replace=False)] = rng.choice([-1.0, 1.0], flips)
        fails += stats.wilcoxon_signed_rank(base, base + d, "less").p_value < alpha
    assert fails / sims <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / sims)
