"""Sweeps: the report's statistics against scipy, the saturation fit, and small real sweeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError
from harness.finetune import records
from harness.finetune.sweep import (
    SweepConfig,
    check_config,
    data_efficiency_report,
    fit_saturation,
    run_sweep,
    saturating,
    search_report,
)
from harness.store import Store

REPO = Path(__file__).resolve().parent.parent
TRAIN = str(REPO / "harness" / "finetune" / "bundled" / "products_train.jsonl")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _trial(number: int, early: float | None, final: float | None, state: str, steps: int, loss: float = 1.0) -> dict[str, Any]:
    return {"number": number, "early_score": early, "final_score": final, "state": state, "steps_trained": steps,
            "early_loss": loss, "early_grad_norm": loss * 2, "params": {"learning_rate": number}}


def test_search_report_matches_scipy() -> None:
    early = [0.1, 0.6, 0.3, 0.9, 0.5]
    final = [0.2, 0.3, 0.5, 0.8, 0.7]
    losses = [2.0, 1.5, 1.2, 0.4, 0.9]
    trials = [_trial(i, e, f, "complete", 10, loss) for i, (e, f, loss) in enumerate(zip(early, final, losses, strict=True))]
    trials.append(_trial(5, 0.0, None, "pruned", 2))
    report = search_report(trials, {i: 10 for i in range(6)}, higher=True, top_k=2)
    assert report["spearman_early_final"] == pytest.approx(stats.spearmanr(early, final).statistic)
    assert report["kendall_early_final"] == pytest.approx(stats.kendalltau(early, final).statistic)
    assert report["spearman_early_loss_final"] == pytest.approx(stats.spearmanr(losses, final).statistic)
    assert report["top_k_overlap"] == 0.5  # early top-2 {3, 1}, final top-2 {3, 4}
    assert report["steps_trained"] == 52 and report["steps_full_budget"] == 60
    assert report["steps_ratio"] == pytest.approx(52 / 60)
    assert (report["n_complete"], report["n_pruned"], report["best_trial"]) == (5, 1, 3)


def test_saturation_fit_recovers_a_known_curve() -> None:
    sizes = [0, 25, 50, 100, 200, 400]
    scores = saturating(sizes, 0.8, 0.7, 60.0)
    fit = fit_saturation(sizes, scores, target=0.95)
    assert fit is not None
    assert fit["tau"] == pytest.approx(60.0, rel=1e-3)
    assert fit["saturation_n"] == pytest.approx(60.0 * np.log(20), rel=1e-3)
    assert fit_saturation(sizes, [0.3] * 6, 0.95) is None  # a flat curve has no saturation point


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


@pytest.mark.slow
def test_four_trial_sweep_finishes_and_is_stored(tiny_model: Path, tmp_path: Path, store: Store) -> None:
    cfg = SweepConfig(
        base=_base(tiny_model, tmp_path),
        space={"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        n_trials=4, pruner="successive_halving", reduction_factor=2,
        validation={"name": "attribute-extraction", "limit": 3}, early_metric="value_recall", generation={"max_new_tokens": 6},
    )
    result = run_sweep(cfg, store, show_progress=False)
    trials = records.trials_of(store, result.sweep_id)
    assert len(trials) == 4 and all(t["state"] in ("complete", "pruned") for t in trials)
    assert all(t["early_score"] is not None and t["early_loss"] is not None for t in trials)
    assert all(t["steps_trained"] == (10 if t["state"] == "complete" else 2) for t in trials)
    assert result.report["steps_trained"] == sum(t["steps_trained"] for t in trials)
    assert result.report["steps_full_budget"] == 40 and result.report["n_complete"] >= 1
    for t in trials:
        run = records.get_train_run(store, t["train_run_id"])
        assert run is not None and run["sweep_id"] == result.sweep_id and run["status"] == t["state"]


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
    assert table.exit_code == 0 and "saturation_n" in table.output
