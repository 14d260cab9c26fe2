"""The few statistics the monitors need beyond scipy: CUSUM, PSI, MMD and JS permutation tests, Holm.

Everything here is a pure function of arrays (no store, no config objects), so it is checked against
textbook numbers in the tests and can later move to `harness/stats.py` next to the gate's statistics.
scipy provides KS, chi-squared, the exact binomial (McNemar) and Wilcoxon tests; they are called
directly where used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.distance import jensenshannon

from harness.stats import holm as stats_holm

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class CusumResult:
    """One-sided lower CUSUM of standardised values: `statistic[t]` accumulates drops below k."""

    statistic: tuple[float, ...]
    alarm_index: int | None  # first index where the statistic exceeds h
    change_index: int | None  # estimated start of the drop (last index where the statistic was 0, + 1)

    @property
    def maximum(self) -> float:
        return max(self.statistic, default=0.0)


def lower_cusum(z: Sequence[float], k: float, h: float) -> CusumResult:
    """Tabular CUSUM for a decrease: S_t = max(0, S_{t-1} - z_t - k); alarm when S_t > h.

    `z` are standardised deviations from the reference level (negative = worse).
    """
    s, stats = 0.0, []
    alarm = change = None
    last_zero = -1
    for t, value in enumerate(z):
        s = max(0.0, s - float(value) - k)
        stats.append(s)
        if s == 0.0:
            last_zero = t
        if alarm is None and s > h:
            alarm, change = t, last_zero + 1
    return CusumResult(tuple(stats), alarm, change)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (harness.stats.holm) where None entries (tests not run) stay None."""
    present = [i for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    for i, value in zip(present, stats_holm([float(p_values[i] or 0.0) for i in present]), strict=True):
        adjusted[i] = float(value)
    return adjusted


def psi(reference_counts: ArrayLike, current_counts: ArrayLike, smoothing: float = 0.5) -> float:
    """Population stability index: sum (q - p) ln(q / p) over bins, with additive smoothing of empty bins."""
    ref = np.asarray(reference_counts, dtype=float) + smoothing
    cur = np.asarray(current_counts, dtype=float) + smoothing
    p, q = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def quantile_edges(values: Sequence[float], bins: int) -> FloatArray:
    """Inner bin edges at the reference quantiles (duplicates removed, so ties do not make empty bins)."""
    qs = np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def bin_counts(values: Sequence[float], edges: FloatArray) -> NDArray[np.int64]:
    """Counts per bin for the given inner edges: (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    idx = np.searchsorted(edges, np.asarray(values, dtype=float), side="left")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)


def squared_distances(x: Any) -> FloatArray:
    """Pairwise squared Euclidean distances of the rows of `x`, dense or scipy-sparse (clipped at 0 against rounding)."""
    gram = (x @ x.T).toarray() if sp.issparse(x) else np.asarray(x @ x.T)
    gram = gram.astype(np.float64)
    norms = np.diag(gram).copy()
    d2 = norms[:, None] + norms[None, :] - 2.0 * gram
    np.maximum(d2, 0.0, out=d2)
    return d2


@dataclass(frozen=True)
class PermutationResult:
    statistic: float
    p_value: float
    null_mean: float
    permutations: int


def mmd_permutation_test(x: Any, y: Any, permutations: int, rng: np.random.Generator) -> PermutationResult:
    """Unbiased MMD² with a Gaussian kernel (bandwidth: median pairwise distance of the pooled sample)
    and a permutation p-value, (1 + #{null >= observed}) / (1 + permutations).

    All permutations are evaluated at once: with indicator columns A, sum_{i,j in X} K_ij = colsum(A * KA).
    """
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("MMD needs at least two samples on each side")
    z = sp.vstack([x, y]).tocsr() if sp.issparse(x) else np.vstack([x, y]).astype(np.float64)
    d2 = squared_distances(z)
    upper = d2[np.triu_indices(n + m, k=1)]
    positive = upper[upper > 0]
    bandwidth2 = float(np.median(positive)) if len(positive) else 1.0
    kernel = np.exp(-d2 / bandwidth2)
    labels = np.zeros((n + m, permutations + 1))
    labels[:n, 0] = 1.0
    for j in range(1, permutations + 1):
        labels[rng.permutation(n + m)[:n], j] = 1.0
    ka = kernel @ labels
    total = kernel.sum()
    sum_xx = np.einsum("ij,ij->j", labels, ka)
    row_x = ka.sum(axis=0)  # sum over all j of K_ij for i in X  == sum_xx + sum_xy
    sum_xy = row_x - sum_xx
    sum_yy = total - sum_xx - 2.0 * sum_xy
    diag = np.diag(kernel)
    diag_x = labels.T @ diag  # the i == j terms the unbiased estimator leaves out
    diag_y = float(diag.sum()) - diag_x
    mmd2 = (sum_xx - diag_x) / (n * (n - 1)) + (sum_yy - diag_y) / (m * (m - 1)) - 2.0 * sum_xy / (n * m)
    observed, null = float(mmd2[0]), mmd2[1:]
    p = (1.0 + float(np.sum(null >= observed))) / (1.0 + permutations)
    return PermutationResult(observed, p, float(null.mean()), permutations)


def js_permutation_test(counts: Any, is_x: NDArray[np.bool_], permutations: int,
                        rng: np.random.Generator) -> PermutationResult:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the pooled token distributions of two groups
    of documents, with a permutation p-value over document labels. `counts` is documents x vocabulary.
    """
    n = int(is_x.sum())
    labels = np.zeros((len(is_x), permutations + 1))
    labels[is_x, 0] = 1.0
    for j in range(1, permutations + 1):
        labels[rng.permutation(len(is_x))[:n], j] = 1.0
    total = np.asarray(counts.sum(axis=0)).ravel()
    x_sums = np.asarray(counts.T @ labels)  # vocabulary x (permutations + 1)
    values = np.empty(permutations + 1)
    for j in range(permutations + 1):
        px = x_sums[:, j]
        py = total - px
        values[j] = _js(px, py)
    observed, null = float(values[0]), values[1:]
    p = (1.0 + float(np.sum(null >= observed))) / (1.0 + permutations)
    return PermutationResult(observed, p, float(null.mean()), permutations)


def _js(px: FloatArray, py: FloatArray) -> float:
    if px.sum() == 0 or py.sum() == 0:
        return 0.0
    value = float(jensenshannon(px / px.sum(), py / py.sum(), base=2))
    return 0.0 if np.isnan(value) else value
