"""Calibration of the gate's paired tests: false-fail rate under no true difference, and power.

Simulates pairs of runs with *no* true difference in the shapes CI meets and counts how often the
gate's one-sided test (`harness.stats.paired_test`, or the corpus paired bootstrap of
`harness.comparison.metric`) says "significant drop" at alpha 0.05. Goal: every false-fail rate
<= 0.05 + its Monte Carlo error (3 standard errors). It also prints the power at a stated true drop.

This measures rates, not time. Bounded: about a minute or two on a loaded 2-core machine.

    python benchmarks/calibration.py [--sims 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import stats
from harness.comparison.metric import bootstrap_corpus_deltas, corpus_p_value

ALPHA = 0.05
N = 300
WMT22 = Path("/work/shared/data/translation/wmt22-de-en")
Pair = tuple[np.ndarray, np.ndarray]


def _redraw(rng: np.random.Generator, base: np.ndarray, draw: Callable[[int], np.ndarray], share: float) -> np.ndarray:
    """A candidate with the same quality: a random `share` of samples re-drawn from the same distribution."""
    cand = base.copy()
    idx = np.flatnonzero(rng.random(base.size) < share)
    cand[idx] = draw(idx.size)
    return cand


def _same_quality(rng: np.random.Generator, draw: Callable[[int], np.ndarray], drop: float) -> Pair:
    """Baseline from `draw`, candidate re-drawn on 15% of samples; under a drop, `drop * N` right answers then lost."""
    base = draw(N)
    cand = _redraw(rng, base, draw, 0.15)
    if drop:
        right = np.flatnonzero(cand == 1.0)
        cand[rng.choice(right, round(drop * N), replace=False)] = 0.0
    return base, cand


def binary(rng: np.random.Generator, drop: float) -> Pair:
    return _same_quality(rng, lambda k: (rng.random(k) < 0.7).astype(float), drop)


GRADED = np.array([0.0, 0.0, 0.25, 0.4, 0.5, 0.5, 0.67, 0.8, 1.0, 1.0, 1.0, 1.0])


def graded(rng: np.random.Generator, drop: float) -> Pair:
    """F1-like scores with many ties (0, 1 and a few partial values)."""
    return _same_quality(rng, lambda k: rng.choice(GRADED, k), drop)


def flips(k: int) -> Callable[[np.random.Generator, float], Pair]:
    """k of 300 graded answers flip fully right <-> fully wrong, each way with probability 1/2
    (under a drop: each flip is a loss with probability 1/2 + drop)."""

    def make(rng: np.random.Generator, drop: float) -> Pair:
        base = rng.choice(GRADED, N)
        d = np.zeros(N)
        d[rng.choice(N, k, replace=False)] = np.where(rng.random(k) < 0.5 + drop, -1.0, 1.0)
        return base, base + d

    return make


def continuous(rng: np.random.Generator, drop: float) -> Pair:
    """Log-probability-like scores: every sample moves a little."""
    quality = rng.normal(0, 1, N)
    base = quality + rng.normal(0, 0.3, N)
    return base, quality + rng.normal(0, 0.3, N) - drop


def _bleu_segments() -> tuple[np.ndarray, np.ndarray, object] | None:
    if not WMT22.is_dir():
        return None
    from sacrebleu.metrics import BLEU

    prefix = "generaltest2022.de-en"
    refs = (WMT22 / f"{prefix}.ref.A.en").read_text(encoding="utf-8").splitlines()
    a = (WMT22 / f"{prefix}.hyp.Lan-Bridge.en").read_text(encoding="utf-8").splitlines()
    b = (WMT22 / f"{prefix}.hyp.PROMT.en").read_text(encoding="utf-8").splitlines()
    metric = BLEU()
    sa = np.asarray(metric._extract_corpus_statistics(a, [refs]), dtype=float)
    sb = np.asarray(metric._extract_corpus_statistics(b, [refs]), dtype=float)
    return sa, sb, metric


def bleu_rate(rng: np.random.Generator, sims: int, resamples: int, real_gap: bool) -> float:
    """Corpus BLEU over 300 real WMT22 segments. No difference: each segment's two system outputs are
    assigned to baseline/candidate by a coin flip. Power: baseline Lan-Bridge, candidate PROMT."""
    data = _bleu_segments()
    if data is None:
        return math.nan
    sa, sb, metric = data
    score = lambda t: float(metric._compute_score_from_stats(list(t)).score)  # noqa: E731
    fails = 0
    for i in range(sims):
        idx = rng.choice(sa.shape[0], N, replace=False)
        if real_gap:
            base, cand = sa[idx], sb[idx]
        else:
            swap = rng.random(N) < 0.5
            base = np.where(swap[:, None], sb[idx], sa[idx])
            cand = np.where(swap[:, None], sa[idx], sb[idx])
        deltas = bootstrap_corpus_deltas(base, cand, score, score, resamples, seed=i)
        observed = score(cand.sum(0)) - score(base.sum(0))
        fails += corpus_p_value(deltas, observed, "less") < ALPHA
    return fails / sims


def rate(make: Callable[[np.random.Generator, float], Pair], drop: float, sims: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    fails = 0
    for _ in range(sims):
        base, cand = make(rng, drop)
        fails += stats.paired_test(base, cand, "less").p_value < ALPHA
    return fails / sims


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=2000, help="simulations per row (corpus BLEU: a tenth)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows: list[tuple[str, Callable[[np.random.Generator, float], Pair], float, str, int]] = [
        ("0/1 scores (McNemar)", binary, 0.05, "5 points of accuracy", args.sims),
        ("graded with ties (signed-rank)", graded, 0.05, "5% of answers lose all credit", args.sims),
        *[(f"{k} flips among 300", flips(k), 0.35, "each flip a loss w.p. 0.85", args.sims) for k in (1, 2, 3, 4, 6, 8, 12)],
        ("continuous (signed-rank)", continuous, 0.05, "0.05 (sd of difference 0.42)", max(200, args.sims // 4)),
    ]
    print(f"alpha {ALPHA}, {N} paired samples per run; goal: false-fail <= alpha + 3 MC standard errors")
    print(f"{'shape':34} {'sims':>5} {'false-fail':>10} {'MC se':>7} {'ok':>3}   power at true drop")
    ok = True
    for i, (name, make, drop, label, sims) in enumerate(rows):
        ff = rate(make, 0.0, sims, args.seed + i)
        power = rate(make, drop, sims, args.seed + 100 + i)
        se = math.sqrt(ALPHA * (1 - ALPHA) / sims)
        good = ff <= ALPHA + 3 * se
        ok &= good
        print(f"{name:34} {sims:5d} {ff:10.4f} {se:7.4f} {'yes' if good else 'NO':>3}   {power:.3f} ({label})")
    sims = max(100, args.sims // 10)
    rng = np.random.default_rng(args.seed + 50)
    ff = bleu_rate(rng, sims, 1000, real_gap=False)
    if math.isnan(ff):
        print("corpus BLEU: skipped (WMT22 data not found)")
    else:
        power = bleu_rate(rng, sims, 1000, real_gap=True)
        se = math.sqrt(ALPHA * (1 - ALPHA) / sims)
        good = ff <= ALPHA + 3 * se
        ok &= good
        print(f"{'corpus BLEU (paired bootstrap)':34} {sims:5d} {ff:10.4f} {se:7.4f} {'yes' if good else 'NO':>3}   "
              f"{power:.3f} (Lan-Bridge -> PROMT on WMT22 de-en, 300 random segments)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
