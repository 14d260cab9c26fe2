"""Sweeps that judge trials early, and data-efficiency curves.

Search mode: optuna (TPE by default) proposes a configuration; the trial trains to an early fraction
of its budget (default 20%), its checkpoint is scored on the validation suite through the runner,
and a pruner (median or successive halving) stops the bad ones; survivors continue from that
checkpoint to the end. The report says how far early judging can be trusted: rank correlation of
early and final scores (over trials that have both: run `pruner: none` once to calibrate), overlap of
the early and final top-k, how early loss and gradient norm relate to the final score, and the steps
saved against a full-budget search.

Data-efficiency mode: the same configuration trains on nested subsets of the data; a saturating
curve `score(n) = a - b * exp(-n / tau)` is fitted and the saturation point (where `target` of the
achievable gain is reached) is reported with a paired bootstrap interval over validation samples.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig, format_validation_error, load_yaml_mapping
from harness.errors import ConfigError
from harness.finetune import records
from harness.finetune.config import FinetuneConfig, parse_finetune_config
from harness.finetune.train import FinetuneJob, TrainResult
from harness.store import Store


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamSpace(_Strict):
    """One searched field: a float or int range (optionally log-scaled) or a list of choices."""

    type: Literal["float", "int", "categorical"] = Field(description="Kind of distribution.")
    low: float | None = Field(None, description="Lower bound (float, int).")
    high: float | None = Field(None, description="Upper bound, inclusive (float, int).")
    log: bool = Field(False, description="Sample on a log scale (learning rates).")
    choices: list[Any] | None = Field(None, description="Values to choose from (categorical).")

    @model_validator(mode="after")
    def _complete(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty `choices` list")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"{self.type} needs low <= high")
        return self


class DataEfficiency(_Strict):
    """Nested training subsets and how the saturation point is estimated."""

    sizes: list[int] = Field(min_length=2, description="Training-set sizes (nested subsets), e.g. [50, 100, 200, 400].")
    target: float = Field(0.95, gt=0, lt=1, description="Share of the achievable gain that counts as saturated.")
    bootstrap: int = Field(200, ge=20, description="Bootstrap resamples of validation samples for the interval.")
    include_base: bool = Field(True, description="Score the untrained base model as size 0 (anchors the curve).")


class SweepConfig(_Strict):
    """A search (or data-efficiency study) over a base fine-tuning configuration."""

    name: str | None = Field(None, description="Label of the sweep.")
    mode: Literal["search", "data-efficiency"] = Field("search", description="Hyper-parameter search or data-efficiency curve.")
    base: dict[str, Any] = Field(description="A fine-tuning configuration (the keys of a finetune YAML); trials override fields.")
    space: dict[str, ParamSpace] = Field(default_factory=dict, description="Dotted field path -> distribution, e.g. learning_rate, lora.r.")
    n_trials: int = Field(8, ge=1, description="Trials to run (search mode).")
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna sampler.")
    seed: int = Field(0, description="Sampler seed.")
    early_fraction: float = Field(0.2, gt=0, lt=1, description="Share of the budget after which a trial is judged.")
    pruner: Literal["successive_halving", "median", "none"] = Field(
        "successive_halving", description="How trials are stopped at the early checkpoint; none trains all to the end."
    )
    reduction_factor: int = Field(4, ge=2, description="Successive halving keeps about 1 / reduction_factor of trials.")
    min_trials: int = Field(2, ge=0, description="Median pruner: trials completed before any is pruned.")
    validation: SuiteConfig = Field(description="Suite (and data) that scores trials.")
    metric: str | None = Field(None, description="Metric that ranks trials; default the suite's primary metric.")
    early_metric: str | None = Field(
        None, description="Metric that judges a trial at the early checkpoint (a smoother proxy); default `metric`."
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="Decoding for validation.")
    top_k: int = Field(3, ge=1, description="k of the early-vs-final top-k overlap.")
    data_efficiency: DataEfficiency | None = Field(None, description="Settings of data-efficiency mode.")

    @model_validator(mode="after")
    def _mode(self) -> SweepConfig:
        if self.mode == "data-efficiency" and self.data_efficiency is None:
            raise ValueError("mode data-efficiency needs a `data_efficiency:` section with sizes")
        if self.mode == "search" and not self.space:
            raise ValueError("mode search needs a `space:` with at least one field")
        return self


def load_sweep_config(path: str) -> SweepConfig:
    raw = load_yaml_mapping(path)
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from None
    check_config(config, path)
    return config


def check_config(config: SweepConfig, where: str = "sweep") -> None:
    """Fail before training: the base must validate and every searched path must name a field."""
    parse_finetune_config(config.base, f"{where}: base")
    for dotted in config.space:
        _check_path(dotted, where)


def _check_path(dotted: str, where: str) -> None:
    model: Any = FinetuneConfig
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            raise ConfigError(f"{where}: field 'space.{dotted}': no such fine-tuning field")
        annotation = fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def with_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


# ---- shared helpers --------------------------------------------------------------------------------


def _metric_and_direction(config: SweepConfig) -> tuple[str, bool]:
    from suites import suite_class

    cls = suite_class(config.validation.name)
    metric = config.metric or cls.primary_metric
    spec = cls(config.validation.options).spec(metric)
    return metric, spec.higher_is_better


def _trial_config(config: SweepConfig, overrides: dict[str, Any], checkpoints: list[float]) -> FinetuneConfig:
    raw = with_overrides(config.base, overrides)
    raw.update(
        checkpoints=checkpoints,
        eval_suites=[config.validation.model_dump()],
        eval_base=False,
        eval_generation=config.generation.model_dump(),
    )
    return parse_finetune_config(raw, "sweep trial")


def _score_of(result: TrainResult, step: int, suite: str, metric: str) -> float:
    for ck in result.checkpoints:
        if ck.step == step:
            value = ck.scores.get(suite, {}).get(metric)
            if value is None:
                raise ConfigError(f"suite '{suite}' reported no metric '{metric}'")
            return float(value)
    raise RuntimeError(f"no checkpoint at step {step}")


def _dynamics(store: Store, train_run_id: str, upto: int) -> tuple[float | None, float | None]:
    """Mean loss and gradient norm over the last fifth of the steps up to `upto` (the early signal)."""
    steps = [s for s in records.train_steps_of(store, train_run_id) if s["step"] <= upto]
    window = steps[-max(1, len(steps) // 5) :]
    losses = [s["loss"] for s in window if s["loss"] is not None]
    norms = [s["grad_norm"] for s in window if s["grad_norm"] is not None]
    return (sum(losses) / len(losses) if losses else None, sum(norms) / len(norms) if norms else None)


# ---- search ----------------------------------------------------------------------------------------

_TIE_WEIGHT = 1e-6  # far below any score difference a suite can report on a realistic sample count


@dataclass
class SweepResult:
    sweep_id: str
    kind: str
    report: dict[str, Any]
    trials: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"sweep_id": self.sweep_id, "kind": self.kind, "report": self.report, "trials": self.trials}


def _sampler(config: SweepConfig) -> Any:
    import optuna

    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=min(4, config.n_trials))


def _pruner(config: SweepConfig) -> Any:
    import optuna

    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=config.min_trials, n_warmup_steps=0)
    if config.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=config.reduction_factor)
    return optuna.pruners.NopPruner()


def _suggest(trial: Any, space: dict[str, ParamSpace]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.type == "categorical":
            params[name] = trial.suggest_categorical(name, p.choices)
        elif p.type == "int":
            params[name] = trial.suggest_int(name, int(p.low or 0), int(p.high or 0), log=p.log)
        else:
            params[name] = trial.suggest_float(name, float(p.low or 0), float(p.high or 0), log=p.log)
    return params


def run_search(config: SweepConfig, store: Store, show_progress: bool = True) -> SweepResult:
    import optuna

    check_config(config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric, higher = _metric_and_direction(config)
    early_metric = config.early_metric or metric
    suite = config.validation.name
    sweep_id = records.create_sweep(store, config.name or "sweep", "search", config.model_dump())
    budgets: dict[int, int] = {}

    def objective(trial: Any) -> float:
        params = _suggest(trial, config.space)
        cfg = _trial_config(config, params, [config.early_fraction, 1.0])
        records.upsert_trial(store, sweep_id, trial.number, params=params, state="running")
        job = FinetuneJob(cfg, store, sweep_id=sweep_id, trial_number=trial.number, show_progress=show_progress)
        early_step = max(1, round(config.early_fraction * job.total_steps))
        budgets[trial.number] = job.total_steps
        try:
            early = job.train(until_step=early_step)
            early_score = _score_of(early, early_step, suite, early_metric)
            loss, norm = _dynamics(store, early.train_run_id, early_step)
            records.upsert_trial(
                store, sweep_id, trial.number, train_run_id=early.train_run_id, early_score=early_score,
                early_loss=loss, early_grad_norm=norm, steps_trained=early_step, n_train_samples=early.n_rows,
            )
            # Early in training many trials score the same (often 0); the pruner breaks such ties by
            # the lower training loss instead of promoting them all. The stored early score stays exact.
            tie_break = -_TIE_WEIGHT * loss if loss is not None else 0.0
            trial.report(early_score + (tie_break if higher else -tie_break), step=early_step)
            if trial.should_prune():
                job.mark("pruned")
                records.upsert_trial(store, sweep_id, trial.number, state="pruned")
                raise optuna.TrialPruned()
            final = job.train()
            final_score = _score_of(final, job.total_steps, suite, metric)
        except optuna.TrialPruned:
            raise
        except Exception:
            records.upsert_trial(store, sweep_id, trial.number, state="failed", steps_trained=job.step)
            raise
        records.upsert_trial(store, sweep_id, trial.number, state="complete", final_score=final_score, steps_trained=job.total_steps)
        return final_score

    study = optuna.create_study(direction="maximize" if higher else "minimize", sampler=_sampler(config), pruner=_pruner(config))
    try:
        study.optimize(objective, n_trials=config.n_trials, catch=())
    except BaseException as exc:
        records.finish_sweep(store, sweep_id, "failed", {"error": f"{type(exc).__name__}: {exc}"})
        raise
    trials = records.trials_of(store, sweep_id)
    report = search_report(trials, budgets, higher, config.top_k)
    report.update(metric=metric, early_metric=early_metric, suite=suite, pruner=config.pruner, early_fraction=config.early_fraction)
    records.finish_sweep(store, sweep_id, "complete", report)
    return SweepResult(sweep_id, "search", report, [_public(t) for t in trials])


def _public(trial: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in trial.items() if k not in ("sweep_id", "created_at")}


def _rank_corr(x: Sequence[float], y: Sequence[float], kind: str) -> float | None:
    from scipy import stats

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    value = stats.spearmanr(x, y).statistic if kind == "spearman" else stats.kendalltau(x, y).statistic
    return None if value is None or math.isnan(value) else float(value)


def search_report(trials: Sequence[dict[str, Any]], budgets: dict[int, int], higher: bool, top_k: int) -> dict[str, Any]:
    """Early-vs-final agreement, dynamics-vs-final correlation and compute saved (pure; tested directly)."""
    both = [t for t in trials if t["early_score"] is not None and t["final_score"] is not None]
    early = [t["early_score"] for t in both]
    final = [t["final_score"] for t in both]
    sign = 1.0 if higher else -1.0
    k = min(top_k, len(both))
    top_early = {t["number"] for t in sorted(both, key=lambda t: -sign * t["early_score"])[:k]}
    top_final = {t["number"] for t in sorted(both, key=lambda t: -sign * t["final_score"])[:k]}
    with_loss = [t for t in both if t["early_loss"] is not None]
    with_norm = [t for t in both if t["early_grad_norm"] is not None]
    complete = [t for t in trials if t["state"] == "complete"]
    best = max(complete, key=lambda t: sign * t["final_score"]) if complete else None
    trained = sum(t["steps_trained"] or 0 for t in trials)
    full = sum(budgets.get(t["number"], 0) for t in trials)
    return {
        "n_trials": len(trials),
        "n_complete": len(complete),
        "n_pruned": sum(t["state"] == "pruned" for t in trials),
        "n_with_both_scores": len(both),
        "spearman_early_final": _rank_corr(early, final, "spearman"),
        "kendall_early_final": _rank_corr(early, final, "kendall"),
        "top_k": k,
        "top_k_overlap": (len(top_early & top_final) / k) if k else None,
        "spearman_early_loss_final": _rank_corr([t["early_loss"] for t in with_loss], [t["final_score"] for t in with_loss], "spearman"),
        "spearman_early_grad_norm_final": _rank_corr(
            [t["early_grad_norm"] for t in with_norm], [t["final_score"] for t in with_norm], "spearman"
        ),
        "steps_trained": trained,
        "steps_full_budget": full,
        "steps_ratio": trained / full if full else None,
        "best_trial": best["number"] if best else None,
        "best_params": best["params"] if best else None,
        "best_final_score": best["final_score"] if best else None,
    }


# ---- data efficiency -------------------------------------------------------------------------------


def saturating(n: Any, a: float, b: float, tau: float) -> Any:
    import numpy as np

    return a - b * np.exp(-np.asarray(n, dtype=float) / tau)


def fit_saturation(sizes: Sequence[float], scores: Sequence[float], target: float) -> dict[str, float] | None:
    """Fit `a - b exp(-n/tau)`; the saturation point is where `target` of the gain b is reached."""
    import numpy as np
    from scipy.optimize import curve_fit

    x, y = np.asarray(sizes, dtype=float), np.asarray(scores, dtype=float)
    if np.ptp(y) == 0:
        return None
    span = float(x.max() - x.min()) or 1.0
    p0 = (float(y.max()), float(y.max() - y.min()), span / 3)
    try:
        (a, b, tau), _ = curve_fit(
            saturating, x, y, p0=p0, bounds=([-np.inf, -np.inf, 1e-6], [np.inf, np.inf, 100 * max(x.max(), 1.0)]), maxfev=5000
        )
    except (RuntimeError, ValueError):
        return None
    return {"a": float(a), "b": float(b), "tau": float(tau), "saturation_n": float(tau * math.log(1 / (1 - target)))}


def run_data_efficiency(config: SweepConfig, store: Store, show_progress: bool = True) -> SweepResult:
    import numpy as np

    from harness.runner import Runner

    check_config(config)
    assert config.data_efficiency is not None
    de = config.data_efficiency
    metric, _ = _metric_and_direction(config)
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
            cfg = _trial_config(config, {"max_samples": size}, [1.0])
            records.upsert_trial(store, sweep_id, number, params={"max_samples": size}, state="running", n_train_samples=size)
            job = FinetuneJob(cfg, store, sweep_id=sweep_id, trial_number=number, show_progress=show_progress)
            out = job.train()
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
    fit = fit_saturation(sizes, means, target)
    draws: list[float] = []
    failed = 0
    for _ in range(n_boot):
        pick = rng.integers(0, len(ids), len(ids))
        boot = fit_saturation(sizes, matrix[:, pick].mean(axis=1), target)
        if boot is None:
            failed += 1
        else:
            draws.append(boot["saturation_n"])
    interval = [float(np.percentile(draws, 5)), float(np.percentile(draws, 95))] if draws else None
    return {
        "points": [{"n": s, "score": float(m), "stderr": float(e)} for s, m, e in zip(sizes, means, stderr, strict=True)],
        "fit": fit,
        "target": target,
        "saturation_n": fit["saturation_n"] if fit else None,
        "saturation_interval_90": interval,
        "bootstrap_failed": failed,
        "saturated_within_sizes": bool(fit and fit["saturation_n"] <= max(sizes)),
    }


def run_sweep(config: SweepConfig, store: Store, show_progress: bool = True) -> SweepResult:
    runner: Callable[[SweepConfig, Store, bool], SweepResult] = run_search if config.mode == "search" else run_data_efficiency
    return runner(config, store, show_progress)
