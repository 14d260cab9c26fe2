"""Sweeps that judge trials early (search mode); data-efficiency curves live in efficiency.py.

Every trial the sampler proposes trains to its early point (see sweep_config.py for the rule) and
is scored on the validation suite through the runner; then the configured share of trials is kept,
ranked by early score (ties: lower early training loss, then lower trial number), and the survivors
continue from their early checkpoint to the end. The sampler learns from the early scores, the
judgement this search trusts. The report says how far that trust held: Spearman and Kendall of early
vs final scores and the top-k overlap (None when ties leave them undefined), whether the early winner
is the final winner, how early loss and gradient norm relate to the final score, and the steps saved
against a full-budget search (with `pruner: none`: the steps the cut would have saved, and whether it
would have kept the final winner).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness import ranking
from harness.errors import ConfigError
from harness.finetune import records
from harness.finetune.sweep_config import (  # noqa: F401  (re-exported: the public sweep API)
    SweepConfig,
    check_config,
    load_sweep_config,
    metric_and_direction,
    trial_config,
    with_overrides,
)
from harness.finetune.train import FinetuneJob, TrainResult
from harness.store import Store

TIE_RULE = "equal early scores: lower early training loss first, then lower trial number"


@dataclass
class SweepResult:
    sweep_id: str
    kind: str
    report: dict[str, Any]
    trials: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"sweep_id": self.sweep_id, "kind": self.kind, "report": self.report, "trials": self.trials}


def score_of(result: TrainResult, step: int, suite: str, metric: str) -> float:
    for ck in result.checkpoints:
        if ck.step == step:
            value = ck.scores.get(suite, {}).get(metric)
            if value is None:
                raise ConfigError(f"suite '{suite}' reported no metric '{metric}'")
            return float(value)
    raise RuntimeError(f"no checkpoint at step {step}")


def _dynamics(store: Store, train_run_id: str, upto: int) -> tuple[float | None, float | None]:
    """Mean loss and gradient norm over the last half of the steps up to `upto` (the early signal).

    The loss logged at step 1 is computed before any update, so it is never part of the window."""
    steps = [s for s in records.train_steps_of(store, train_run_id) if 1 < s["step"] <= upto]
    window = steps[-max(1, len(steps) // 2) :]
    losses = [s["loss"] for s in window if s["loss"] is not None]
    norms = [s["grad_norm"] for s in window if s["grad_norm"] is not None]
    return (sum(losses) / len(losses) if losses else None, sum(norms) / len(norms) if norms else None)


def _sampler(config: SweepConfig) -> Any:
    import optuna

    if config.sampler in ("random", "grid"):  # grid: every combination is enqueued (run_search)
        return optuna.samplers.RandomSampler(seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=min(4, config.n_trials))


def _suggest(trial: Any, config: SweepConfig) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, p in config.space.items():
        if p.type == "categorical":
            params[name] = trial.suggest_categorical(name, p.choices)
        elif p.type == "int":
            params[name] = trial.suggest_int(name, int(p.low or 0), int(p.high or 0), log=p.log)
        else:
            params[name] = trial.suggest_float(name, float(p.low or 0), float(p.high or 0), log=p.log)
    return params


def select_survivors(trials: Sequence[dict[str, Any]], keep: int, higher: bool) -> tuple[list[int], bool]:
    """(trial numbers that continue, whether the cut fell between equal early scores), by TIE_RULE."""
    sign = -1.0 if higher else 1.0
    inf = float("inf")
    ordered = sorted(trials, key=lambda t: (sign * t["early_score"], inf if t["early_loss"] is None else t["early_loss"], t["number"]))
    tie = 0 < keep < len(ordered) and ordered[keep - 1]["early_score"] == ordered[keep]["early_score"]
    return [t["number"] for t in ordered[:keep]], tie


def run_search(config: SweepConfig, store: Store, show_progress: bool = True) -> SweepResult:
    import optuna

    check_config(config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric, higher = metric_and_direction(config)
    early_metric = config.early_metric or metric
    suite = config.validation.name
    sweep_id = records.create_sweep(store, config.name or "sweep", "search", config.model_dump())
    study = optuna.create_study(direction="maximize" if higher else "minimize", sampler=_sampler(config))
    if config.sampler == "grid":
        names = list(config.space)
        for combo in itertools.product(*(config.space[n].choices or [] for n in names)):
            study.enqueue_trial(dict(zip(names, combo, strict=True)))
    budgets: dict[int, int] = {}
    early_steps: dict[int, int] = {}
    configs: dict[int, Any] = {}

    def job_for(number: int, params: dict[str, Any]) -> FinetuneJob:
        cfg = configs.setdefault(number, trial_config(config, params, [config.early_fraction, 1.0]))
        job = FinetuneJob(cfg, store, sweep_id=sweep_id, trial_number=number, show_progress=show_progress)
        early = config.early_step(job.total_steps, f"sweep trial {number}")
        job.checkpoint_steps = {early: early / job.total_steps, job.total_steps: 1.0}  # score only these two
        budgets[number], early_steps[number] = job.total_steps, early
        return job

    try:
        for _ in range(config.n_trials):  # phase 1: every trial to its early point
            trial = study.ask()
            params = _suggest(trial, config)
            records.upsert_trial(store, sweep_id, trial.number, params=params, state="running")
            job = job_for(trial.number, params)
            try:
                early = job.train(until_step=early_steps[trial.number])
            except Exception:
                records.upsert_trial(store, sweep_id, trial.number, state="failed", steps_trained=job.step)
                raise
            score = score_of(early, early_steps[trial.number], suite, early_metric)
            loss, norm = _dynamics(store, early.train_run_id, early_steps[trial.number])
            records.upsert_trial(store, sweep_id, trial.number, train_run_id=early.train_run_id, early_score=score, early_loss=loss,
                                 early_grad_norm=norm, steps_trained=early_steps[trial.number], n_train_samples=early.n_rows)
            study.tell(trial, score)
            del job
        judged = records.trials_of(store, sweep_id)
        kept, _ = select_survivors(judged, config.keep_count(len(judged)), higher)
        for t in judged:  # phase 2: survivors continue from their early checkpoint
            if t["number"] not in kept:
                records.set_train_run_status(store, t["train_run_id"], "pruned")
                records.upsert_trial(store, sweep_id, t["number"], state="pruned")
                continue
            job = job_for(t["number"], t["params"])
            job.attach(t["train_run_id"])
            try:
                final = job.train()
            except Exception:
                records.upsert_trial(store, sweep_id, t["number"], state="failed", steps_trained=job.step)
                raise
            records.upsert_trial(store, sweep_id, t["number"], state="complete", steps_trained=job.total_steps,
                                 final_score=score_of(final, job.total_steps, suite, metric))
            del job
    except BaseException as exc:
        records.finish_sweep(store, sweep_id, "failed", {"error": f"{type(exc).__name__}: {exc}"})
        raise
    trials = records.trials_of(store, sweep_id)
    report = search_report(trials, budgets, early_steps, higher, config.top_k, config.keep_count(len(trials), "successive_halving"))
    report.update(metric=metric, early_metric=early_metric, suite=suite, pruner=config.pruner, early_fraction=config.early_fraction,
                  kept_by_pruner=config.keep_count(len(trials)))
    records.finish_sweep(store, sweep_id, "complete", report)
    return SweepResult(sweep_id, "search", report, [_public(t) for t in trials])


def _public(trial: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in trial.items() if k not in ("sweep_id", "created_at")}


def search_report(trials: Sequence[dict[str, Any]], budgets: dict[int, int], early_steps: dict[int, int], higher: bool, top_k: int,
                  keep: int) -> dict[str, Any]:
    """Early-vs-final agreement, the cut's effect and compute saved (pure; tested directly).

    `keep` is the successive-halving cut (ceil(n / reduction_factor)); with every final score known
    (pruner none) the report also says what that cut would have saved and whether it kept the winner
    (or, when several trials share the best final score, one of them). `best_trial` is the trial with
    the best final score, the lower trial number among equals."""
    both = [t for t in trials if t["early_score"] is not None and t["final_score"] is not None]
    early = {t["number"]: t["early_score"] for t in both}
    final = {t["number"]: t["final_score"] for t in both}
    k = min(top_k, max(len(both) - 1, 1))
    sign = 1.0 if higher else -1.0
    complete = [t for t in trials if t["state"] == "complete"]
    best = max(complete, key=lambda t: sign * t["final_score"]) if complete else None
    early_winner, final_winner = ranking.winner(early, higher), ranking.winner(final, higher)
    judged = [t for t in trials if t["early_score"] is not None]
    kept, tie_at_cut = select_survivors(judged, keep, higher)
    all_final = len(both) == len(trials) and bool(trials)
    trained = sum(t["steps_trained"] or 0 for t in trials)
    full = sum(budgets.get(t["number"], 0) for t in trials)
    cut_steps = sum(budgets.get(t["number"], 0) if t["number"] in kept else early_steps.get(t["number"], 0) for t in judged)

    def corr(xs: list[float | None], ys: list[float]) -> float | None:
        pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None]
        return ranking.spearman([p[0] for p in pairs], [p[1] for p in pairs])

    return {
        "n_trials": len(trials),
        "n_complete": len(complete),
        "n_pruned": sum(t["state"] == "pruned" for t in trials),
        "n_with_both_scores": len(both),
        "early_steps": {str(n): s for n, s in sorted(early_steps.items())},
        "spearman_early_final": ranking.spearman(list(early.values()), list(final.values())),
        "kendall_early_final": ranking.kendall(list(early.values()), list(final.values())),
        "top_k": k,
        "top_k_overlap": ranking.top_k_overlap(early, final, k, higher) if both else None,
        "early_winner": early_winner,
        "final_winner": final_winner,
        "early_winner_is_final_winner": (early_winner == final_winner) if early_winner is not None and final_winner is not None else None,
        "cut_keeps": keep,
        "cut_kept_trials": kept,
        "cut_fell_in_tie": tie_at_cut,
        "tie_rule": TIE_RULE,
        "cut_kept_final_winner": (final_winner in kept) if all_final and final_winner is not None else None,
        "cut_kept_a_final_best": bool(set(kept) & _best_set(final, higher)) if all_final else None,
        "spearman_early_loss_final": corr([t["early_loss"] for t in both], list(final.values())),
        "spearman_early_grad_norm_final": corr([t["early_grad_norm"] for t in both], list(final.values())),
        "steps_trained": trained,
        "steps_full_budget": full,
        "steps_ratio": trained / full if full else None,
        "steps_with_cut": cut_steps,
        "steps_saved_by_cut": full - cut_steps,
        "best_trial": best["number"] if best else None,
        "best_params": best["params"] if best else None,
        "best_final_score": best["final_score"] if best else None,
    }


def _best_set(scores: dict[int, float], higher: bool) -> set[int]:
    if not scores:
        return set()
    best = max(scores.values()) if higher else min(scores.values())
    return {n for n, v in scores.items() if v == best}


def run_sweep(config: SweepConfig, store: Store, show_progress: bool = True) -> SweepResult:
    from harness.finetune.efficiency import run_data_efficiency

    runner: Callable[[SweepConfig, Store, bool], SweepResult] = run_search if config.mode == "search" else run_data_efficiency
    return runner(config, store, show_progress)
