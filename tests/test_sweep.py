"""Sweeps: the report's statistics against scipy, the saturation fit, and small real sweeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError
from harness.finetune import records
from harness.finetune.efficiency import FLAT, data_efficiency_report, fit_saturation, saturating
from harness.finetune.sweep import SweepConfig, check_config, run_sweep, search_report, select_survivors
from harness.store import Store
from tests.test_finetune import TRAIN, _one_thread  # noqa: F401  (the autouse one-thread fixture)


def _trial(number: int, early: float | None, final: float | None, state: str, steps: int, loss: float = 1.0) -> dict[str, Any]:
    return {"number": number, "early_score": early, "final_score": final, "state": state, "steps_trained": steps,
            "early_loss": loss, "early_grad_norm": loss * 2, "params": {"learning_rate": number}}


def test_search_report_matches_scipy() -> None:
    early = [0.1, 0.6, 0.3, 0.9, 0.5]
    final = [0.2, 0.3, 0.5, 0.8, 0.7]
    losses = [2.0, 1.5, 1.2, 0.4, 0.9]
    trials = [_trial(i, e, f, "complete", 10, loss) for i, (e, f, loss) in enumerate(zip(early, final, losses, strict=True))]
    trials.append(_trial(5, 0.0, None, "pruned", 2))
    report = search_report(trials, {i: 10 for i in range(6)}, {i: 2 for i in range(6)}, higher=True, top_k=2, keep=3)
    assert report["spearman_early_final"] == pytest.approx(stats.spearmanr(early, final).statistic)
    assert report["kendall_early_final"] == pytest.approx(stats.kendalltau(early, final).statistic)
    assert report["spearman_early_loss_final"] == pytest.approx(stats.spearmanr(losses, final).statistic)
    assert report["top_k_overlap"] == 0.5  # early top-2 {3, 1}, final top-2 {3, 4}
    assert report["steps_trained"] == 52 and report["steps_full_budget"] == 60
    assert report["steps_ratio"] == pytest.approx(52 / 60)
    assert (report["n_complete"], report["n_pruned"], report["best_trial"]) == (5, 1, 3)
    assert (report["early_winner"], report["final_winner"], report["early_winner_is_final_winner"]) == (3, 3, True)
    # the cut keeps the early top 3 {3, 1, 4}: 3 x 10 + 3 x 2 steps; trial 5 has no final score, so
    # whether the cut kept the final winner is unknown
    assert report["cut_kept_trials"] == [3, 1, 4] and report["steps_with_cut"] == 36 and report["steps_saved_by_cut"] == 24
    assert report["cut_kept_final_winner"] is None and report["cut_fell_in_tie"] is False


def test_tied_early_scores_are_undefined_not_perfect() -> None:
    """At a judging point where every trial scores the same, no agreement can be claimed."""
    trials = [_trial(i, 0.0, f, "complete", 10, loss) for i, (f, loss) in enumerate([(0.2, 3.0), (0.5, 2.0), (0.1, 1.0), (0.4, 4.0)])]
    report = search_report(trials, {i: 10 for i in range(4)}, {i: 2 for i in range(4)}, higher=True, top_k=2, keep=2)
    assert report["spearman_early_final"] is None and report["kendall_early_final"] is None
    assert report["top_k_overlap"] is None and report["early_winner"] is None
    assert report["early_winner_is_final_winner"] is None
    # the cut falls inside the tie and is decided by the stated rule: lower early loss first
    assert report["cut_fell_in_tie"] is True and report["cut_kept_trials"] == [2, 1]
    assert report["cut_kept_final_winner"] is True  # trial 1 (0.5) is the final winner and was kept
    assert report["cut_kept_a_final_best"] is True
    shared = [_trial(0, 0.9, 1.0, "complete", 10), _trial(1, 0.1, 1.0, "complete", 10), _trial(2, 0.5, 0.2, "complete", 10)]
    report = search_report(shared, {i: 10 for i in range(3)}, {i: 2 for i in range(3)}, higher=True, top_k=1, keep=1)
    assert report["final_winner"] is None and report["cut_kept_final_winner"] is None  # two trials share the best
    assert report["cut_kept_a_final_best"] is True and report["best_trial"] == 0


def test_survivors_follow_the_tie_rule() -> None:
    trials = [_trial(0, 0.5, None, "running", 2, 2.0), _trial(1, 0.5, None, "running", 2, 1.0), _trial(2, 0.5, None, "running", 2, 1.0),
              _trial(3, 0.9, None, "running", 2, 9.0)]
    assert select_survivors(trials, 2, higher=True) == ([3, 1], True)
    assert select_survivors(trials, 3, higher=True) == ([3, 1, 2], True)  # equal loss: lower trial number first
    assert select_survivors(trials, 1, higher=False) == ([1], True)  # lower is better: the 0.5s, by loss


def test_saturation_fit_recovers_a_known_curve() -> None:
    sizes = [0, 25, 50, 100, 200, 400]
    scores = saturating(sizes, 0.8, 0.7, 60.0)
    fit = fit_saturation(sizes, scores, target=0.95)
    assert fit is not None
    assert fit["tau"] == pytest.approx(60.0, rel=1e-3)
    assert fit["saturation_n"] == pytest.approx(60.0 * np.log(20), rel=1e-3)
    assert fit_saturation(sizes, [0.3] * 6, 0.95) is None  # a flat curve has no saturation point


def test_data_efficiency_report_flags_an_extrapolated_saturation_point() -> None:
    sizes = [0, 8, 16, 32]
    means = saturating(sizes, 1.0, 1.0, 30.0)  # 95% of the gain at 90 samples, beyond 32
    per_size = {s: {f"s{i}": float(m) + (0.01 if i % 2 else -0.01) for i in range(20)} for s, m in zip(sizes, means, strict=True)}
    report = data_efficiency_report(per_size, 0.95, 20, np.random.default_rng(0))
    assert report["saturation_n"] == pytest.approx(30.0 * np.log(20), rel=1e-2) and not report["saturated_within_sizes"]
    assert any("beyond the largest size (32)" in note for note in report["notes"])


def test_data_efficiency_report_explains_a_flat_curve() -> None:
    per_size = {s: {f"s{i}": 0.0 for i in range(5)} for s in (0, 8, 16)}
    report = data_efficiency_report(per_size, 0.95, 20, np.random.default_rng(0))
    assert report["fit"] is None and report["saturation_interval_90"] is None and report["bootstrap_failed"] == 20
    assert [p["n"] for p in report["points"]] == [0, 8, 16]
    assert any(FLAT in note for note in report["notes"]) and any(f"20 x {FLAT}" in note for note in report["notes"])


def test_data_efficiency_report_bootstrap_interval_brackets_the_fit() -> None:
    rng = np.random.default_rng(0)
    sizes = [0, 40, 80, 160, 320]
    means = saturating(sizes, 0.9, 0.8, 50.0)
    per_size = {s: {f"s{i}": float(rng.random() < m) for i in range(200)} for s, m in zip(sizes, means, strict=True)}
    report = data_efficiency_report(per_size, 0.95, 100, np.random.default_rng(1))
    low, high = report["saturation_interval_90"]
    assert low <= report["saturation_n"] <= high
    assert report["saturated_within_sizes"] is True
    assert [p["n"] for p in report["points"]] == sizes


def test_sweep_config_errors_name_the_field(tiny_model: Path) -> None:
    base = {"model": str(tiny_model), "train_data": TRAIN}
    bad = SweepConfig(base=base, space={"lora.rank": {"type": "int", "low": 2, "high": 8}}, validation={"name": "attribute-extraction"})
    with pytest.raises(ConfigError, match=r"space\.lora\.rank"):
        check_config(bad)
    with pytest.raises(ValueError, match="low <= high"):
        SweepConfig(base=base, space={"learning_rate": {"type": "float", "low": 1, "high": 0}}, validation={"name": "x"})


def _base(tiny_model: Path, tmp_path: Path) -> dict[str, Any]:
    return {"model": str(tiny_model), "method": "full", "train_data": TRAIN, "max_steps": 10, "batch_size": 4,
            "output_dir": str(tmp_path / "sweep")}


def _search(tiny_model: Path, tmp_path: Path, max_steps: int, **extra: Any) -> dict[str, Any]:
    base = _base(tiny_model, tmp_path) | {"max_steps": max_steps}
    return {"base": base, "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
            "n_trials": 4, "sampler": "random", "seed": 3, "pruner": "successive_halving", "reduction_factor": 2,
            "validation": {"name": "attribute-extraction", "limit": 2}, "early_metric": "value_recall",
            "generation": {"max_new_tokens": 4}, **extra}


@pytest.mark.slow
@pytest.mark.parametrize("max_steps", [5, 20])
def test_the_share_pruned_is_set_by_the_config_not_the_run_length(tiny_model: Path, tmp_path: Path, store: Store, max_steps: int) -> None:
    """4 trials, reduction factor 2: two continue, at 5 steps and at 20 (the old pruner stopped 0 of 4 at
    5 steps, where the early step was 1, and more the more rungs fit under the early step)."""
    result = run_sweep(SweepConfig.model_validate(_search(tiny_model, tmp_path, max_steps)), store, show_progress=False)
    trials = records.trials_of(store, result.sweep_id)
    assert sorted(t["state"] for t in trials) == ["complete", "complete", "pruned", "pruned"]
    early_step = max(2, round(0.2 * max_steps))  # judged after real updates, never at step 1
    assert all(t["steps_trained"] == (max_steps if t["state"] == "complete" else early_step) for t in trials)
    assert all(t["early_score"] is not None and t["early_loss"] is not None for t in trials)
    kept = {t["number"] for t in trials if t["state"] == "complete"}
    assert set(result.report["cut_kept_trials"]) == kept
    assert result.report["steps_trained"] == 2 * max_steps + 2 * early_step == result.report["steps_with_cut"]
    assert result.report["steps_full_budget"] == 4 * max_steps
    for t in trials:
        run = records.get_train_run(store, t["train_run_id"])
        assert run is not None and run["sweep_id"] == result.sweep_id and run["status"] == t["state"]


def test_a_run_too_short_to_judge_is_a_config_error(tiny_model: Path, tmp_path: Path, store: Store) -> None:
    cfg = SweepConfig.model_validate(_search(tiny_model, tmp_path, 2))
    with pytest.raises(ConfigError, match="early_fraction"):
        run_sweep(cfg, store, show_progress=False)


@pytest.mark.slow
def test_three_size_data_efficiency_run_through_the_cli(tiny_model: Path, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "de.yaml"
    path.write_text(yaml.safe_dump({
        "mode": "data-efficiency", "base": _base(tiny_model, tmp_path),
        "validation": {"name": "attribute-extraction", "limit": 3}, "generation": {"max_new_tokens": 6},
        "data_efficiency": {"sizes": [8, 16, 32], "bootstrap": 20},
    }))
    result = CliRunner().invoke(app, ["sweep", str(path), "--db", str(tmp_path / "de.db"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [p["n"] for p in payload["report"]["points"]] == [0, 8, 16, 32]
    assert [t["n_train_samples"] for t in payload["trials"]] == [0, 8, 16, 32]
    table = CliRunner().invoke(app, ["sweep", str(path), "--db", str(tmp_path / "de2.db"), "--no-progress"])
    assert table.exit_code == 0 and "saturation_n" in table.output and "curve points" in table.output
