"""Data-efficiency curves: the same configuration trained on nested subsets of the data.

A saturating curve `score(n) = a - b * exp(-n / tau)` is fitted to the mean validation score per
size; the saturation point (where `target` of the achievable gain b is reached) gets a paired
bootstrap interval over validation samples. When no point can be fitted the report says why (a flat
curve, a fit that did not converge) instead of only counting failures, and always lists the points.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from harness.config import ModelConfig, RunConfig
from harness.finetune import records
from harness.finetune.config import parse_finetune_config
from harness.finetune.sweep import SweepResult, _public
from harness.finetune.sweep_config import SweepConfig, check_config, metric_and_direction, trial_config
from harness.finetune.train import FinetuneJob
from harness.store import Store

FLAT = "flat: every size scores the same, so there is no gain to saturate"
NO_CONVERGENCE = "the curve fit did not converge"


def saturating(n: Any, a: float, b: float, tau: float) -> Any:
    import numpy as np

    return a - b * np.exp(-np.asarray(n, dtype=float) / tau)


def fit_saturation(sizes: Sequence[float], scores: Sequence[float], target: float) -> dict[str, float] | None:
    """Fit `a - b exp(-n/tau)`; the saturation point is where `target` of the gain b is reached."""
    fit, _ = fit_or_reason(sizes, scores, target)
    return fit


def fit_or_reason(sizes: Sequence[float], scores: Sequence[float], target: float) -> tuple[dict[str, float] | None, str | None]:
    """(fit, None) or (None, why no fit)."""
    import numpy as np
    from scipy.optimize import curve_fit

    x, y = np.asarray(sizes, dtype=float), np.asarray(scores, dtype=float)
    if np.ptp(y) == 0:
        return None, FLAT
    span = float(x.max() - x.min()) or 1.0
    p0 = (float(y.max()), float(y.max() - y.min()), span / 3)
    try:
        (a, b, tau), _ = curve_fit(
            saturating, x, y, p0=p0, bounds=([-np.inf, -np.inf, 1e-6], [np.inf, np.inf, 100 * max(x.max(), 1.0)]), maxfev=5000
        )
    except (RuntimeError, ValueError):
        return None, NO_CONVERGENCE
    return {"a": float(a), "b": float(b), "tau": float(tau), "saturation_n": float(tau * math.log(1 / (1 - target)))}, None


def run_data_efficiency(config: SweepConfig, store: Store, show_progress: bool = True) -> SweepResult:
    import numpy as np

    from harness.runner import Runner

    check_config(config)
    assert config.data_efficiency is not None
    de = config.data_efficiency
    metric, _ = metric_and_direction(config)
    suite = config.validation.name
    sweep_id = records.create_sweep(store, config.name or "data-efficiency", "data-efficiency", config.model_dump())
    per_size: dict[int, dict[str, float]] = {}
    number = 0
    try:
        if de.include_base:
            base = parse_finetune_config(config.base, "sweep: base")
            run = RunConfig(
                suites=[config.validation],
                model=ModelConfig(path=base.model, batch_size=base.eval_batch_size, trust_remote_code=base.trust_remote_code),
                generation=config.generation,
                run_name=f"{config.name or 'data-efficiency'}@base",
                step=0,
            )
            result = Runner(run, store, show_progress=False).run()[0]
            per_size[0] = _per_sample(store, result.run_id, metric)
            records.upsert_trial(store, sweep_id, number, params={"max_samples": 0}, state="complete",
                                 final_score=_mean(per_size[0]), steps_trained=0, n_train_samples=0)
            number += 1
        for size in sorted(set(de.sizes)):
            cfg = trial_config(config, {"max_samples": size}, [1.0])
            records.upsert_trial(store, sweep_id, number, params={"max_samples": size}, state="running", n_train_samples=size)
            job = FinetuneJob(cfg, store, sweep_id=sweep_id, trial_number=number, show_progress=show_progress)
            out = job.train()
            del job
            run_id = out.checkpoints[-1].run_ids[suite]
            per_size[size] = _per_sample(store, run_id, metric)
            records.upsert_trial(store, sweep_id, number, train_run_id=out.train_run_id, state="complete",
                                 final_score=_mean(per_size[size]), steps_trained=out.total_steps)
            number += 1
    except BaseException as exc:
        records.finish_sweep(store, sweep_id, "failed", {"error": f"{type(exc).__name__}: {exc}"})
        raise
    report = data_efficiency_report(per_size, de.target, de.bootstrap, np.random.default_rng(config.seed))
    report.update(metric=metric, suite=suite)
    records.finish_sweep(store, sweep_id, "complete", report)
    return SweepResult(sweep_id, "data-efficiency", report, [_public(t) for t in records.trials_of(store, sweep_id)])


def _per_sample(store: Store, run_id: str, metric: str) -> dict[str, float]:
    return {r["sample_id"]: float(r["scores"][metric]) for r in store.run_samples(run_id) if metric in r["scores"]}


def _mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values) if values else float("nan")


def data_efficiency_report(per_size: dict[int, dict[str, float]], target: float, n_boot: int, rng: Any) -> dict[str, Any]:
    """Curve fit on mean scores plus a paired bootstrap over validation samples for the interval."""
    import numpy as np

    sizes = sorted(per_size)
    ids = sorted(set.intersection(*(set(per_size[s]) for s in sizes)))
    matrix = np.array([[per_size[s][i] for i in ids] for s in sizes])  # sizes x samples
    means = matrix.mean(axis=1)
    stderr = matrix.std(axis=1, ddof=1) / math.sqrt(len(ids)) if len(ids) > 1 else np.zeros(len(sizes))
    fit, why = fit_or_reason(sizes, means, target)
    draws: list[float] = []
    reasons: Counter[str] = Counter()
    for _ in range(n_boot):
        pick = rng.integers(0, len(ids), len(ids))
        boot, boot_why = fit_or_reason(sizes, matrix[:, pick].mean(axis=1), target)
        if boot is None:
            reasons[boot_why or NO_CONVERGENCE] += 1
        else:
            draws.append(boot["saturation_n"])
    interval = [float(np.percentile(draws, 5)), float(np.percentile(draws, 95))] if len(draws) >= 0.5 * n_boot else None
    notes = []
    if why:
        notes.append(f"no fit on the mean scores: {why}")
    elif fit and fit["b"] <= 0:
        notes.append("the fitted gain is not positive: more data did not raise the score")
    elif fit and fit["saturation_n"] > max(sizes):
        notes.append(f"the saturation point lies beyond the largest size ({max(sizes)}): an extrapolation of the fit")
    if reasons:
        notes.append("bootstrap fits that failed: " + ", ".join(f"{n} x {r}" for r, n in reasons.most_common()))
    if interval is None and draws:
        notes.append(f"no interval: only {len(draws)} of {n_boot} bootstrap fits succeeded (need half)")
    return {
        "points": [{"n": s, "score": float(m), "stderr": float(e)} for s, m, e in zip(sizes, means, stderr, strict=True)],
        "fit": fit,
        "target": target,
        "saturation_n": fit["saturation_n"] if fit else None,
        "saturation_interval_90": interval,
        "bootstrap_failed": sum(reasons.values()),
        "saturated_within_sizes": bool(fit and fit["saturation_n"] <= max(sizes)),
        "notes": notes,
    }
