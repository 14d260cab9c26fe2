"""`harness study --quick`: the fine-tuning study end to end on the tiny model (what CI can afford)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.finetune import records
from harness.store import Store


@pytest.mark.slow
def test_quick_study_runs_end_to_end_and_is_stored(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'study.db'}"
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["study", "--quick", "--out", str(out), "--threads", "1", "--no-progress", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    search, efficiency, rag = report["search"], report["efficiency"], report["rag"]
    # 1. calibration sweep: a 2 x 2 grid, every trial judged at step 2 (20% of 10) and trained to the end
    assert len(search["trials"]) == 4 and all(t["state"] == "complete" for t in search["trials"])
    assert {(t["params"]["learning_rate"], t["params"]["batch_size"]) for t in search["trials"]} == {
        (1e-3, 2), (1e-3, 4), (1e-2, 2), (1e-2, 4)}
    assert set(search["report"]["early_steps"].values()) == {2}
    assert search["report"]["steps_full_budget"] == 40 and search["report"]["steps_with_cut"] == 2 * 10 + 2 * 2
    # the tiny random model scores 0 everywhere: the agreement must say undefined, not perfect
    assert search["report"]["spearman_early_final"] is None and search["report"]["top_k_overlap"] is None
    # 2. curve: base + three sizes, and the reason there is no fit
    assert [p["n"] for p in efficiency["report"]["points"]] == [0, 8, 16, 32]
    assert efficiency["report"]["fit"] is None and efficiency["report"]["notes"]
    # 3. RAG check through the monitor, stored as a monitor run
    assert rag["kind"] == "rag" and rag["command"].startswith("harness monitor rag --baseline")
    for name in ("study.json", "study.md", "early_vs_final.png", "loss_curves.png", "data_efficiency.png"):
        assert (out / name).is_file() and (out / name).stat().st_size < 200_000
    text = (out / "study.md").read_text()
    assert "Spearman early vs final | undefined" in text and "| 32 |" in text
    store = Store(db)
    try:
        kinds = sorted(s["kind"] for s in records.list_sweeps(store))
        assert kinds == ["data-efficiency", "search"]
        monitor_runs = store.engine.connect().exec_driver_sql("select count(*) from monitor_runs").scalar_one()
        assert monitor_runs == 1
    finally:
        store.close()
    listed = CliRunner().invoke(app, ["train", "sweeps", "--db", db])
    assert listed.exit_code == 0 and "undefined" in listed.output


def test_study_needs_a_model_or_quick(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["study", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--model" in result.output
