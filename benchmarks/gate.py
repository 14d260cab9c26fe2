"""Paired bootstrap speed: harness.stats.paired_bootstrap vs a naive per-resample loop and scipy.

The work: a 95% percentile interval of mean(candidate - baseline) over 100,000 paired samples with
10,000 bootstrap resamples (what the gate computes per metric). The peers are run on a slice of the
resamples and extrapolated linearly (both cost exactly proportional to the number of resamples),
because at full size they take minutes; the output says so.

    python benchmarks/gate.py [--n 100000] [--resamples 10000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from scipy import stats as sps

from harness.stats import paired_bootstrap


def data(kind: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "0/1 accuracy":
        difficulty = rng.beta(2, 1, n)
        return (rng.uniform(size=n) < difficulty).astype(float), (rng.uniform(size=n) < difficulty).astype(float)
    if kind == "graded 1-10":
        quality = rng.uniform(3, 8, n)
        return np.clip(np.round(quality + rng.normal(0, 1, n)), 1, 10), np.clip(np.round(quality + rng.normal(0, 1, n)), 1, 10)
    base = rng.uniform(size=n)  # continuous: every difference distinct (the worst case)
    return base, np.clip(base + rng.normal(0, 0.1, n), 0, 1)


def naive_loop(a: np.ndarray, b: np.ndarray, resamples: int) -> np.ndarray:
    """What people write first: one resample per Python iteration."""
    rng = np.random.default_rng(0)
    n = a.size
    means = np.empty(resamples)
    for k in range(resamples):
        idx = rng.integers(0, n, n)
        means[k] = b[idx].mean() - a[idx].mean()
    return means


def scipy_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int) -> object:
    return sps.bootstrap(
        (a, b), lambda x, y, axis=-1: np.mean(y, axis=axis) - np.mean(x, axis=axis),
        paired=True, vectorized=True, n_resamples=resamples, method="percentile", random_state=0,
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--peer-slice", type=int, default=200, help="resamples actually run for each peer")
    args = parser.parse_args()
    n, resamples, part = args.n, args.resamples, min(args.peer_slice, args.resamples)
    scale = resamples / part
    print(f"paired bootstrap, {n:,} pairs x {resamples:,} resamples (95% percentile interval of the mean difference)")
    print(f"peers timed on {part:,} resamples and extrapolated x{scale:g} (their cost is linear in resamples)\n")
    print(f"{'scores':<14} {'harness':>9} {'naive loop':>12} {'ratio':>7} {'scipy':>10} {'ratio':>7}")
    for kind in ("0/1 accuracy", "graded 1-10", "continuous"):
        a, b = data(kind, n)
        ours = min(timed(lambda a=a, b=b: paired_bootstrap(a, b, n_resamples=resamples)) for _ in range(3))
        naive = timed(lambda a=a, b=b: naive_loop(a, b, part)) * scale
        peer = timed(lambda a=a, b=b: scipy_bootstrap(a, b, part)) * scale
        verdict = "" if ours < 2.0 else "  (over the 2 s target)"
        print(f"{kind:<14} {ours:>8.3f}s {naive:>11.1f}s {naive / ours:>6.0f}x {peer:>9.1f}s {peer / ours:>6.0f}x{verdict}")
    ci = paired_bootstrap(*data("0/1 accuracy", n), n_resamples=resamples)
    print(f"\n0/1 accuracy interval: {ci.estimate:+.5f} [{ci.low:+.5f}, {ci.high:+.5f}]")


if __name__ == "__main__":
    main()
