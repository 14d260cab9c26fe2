"""End to end through the `harness` CLI on the tiny local model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.cli import app

cli = CliRunner()


@pytest.fixture(scope="module")
def finished(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    db = tmp_path_factory.mktemp("cli") / "h.db"
    result = cli.invoke(app, ["run", "rag-extraction", "--model", str(tiny_model), "--db", str(db), "--limit", "6",
                              "--max-new-tokens", "8", "--tag", "base", "--run-name", "tiny-base", "--json"])
    assert result.exit_code == 0, result.output
    return db, json.loads(result.stdout)


def test_run_json_contract(finished: tuple[Path, dict]) -> None:
    _, payload = finished
    [run] = payload["runs"]
    assert set(run) == {"run_id", "suite", "metrics", "n_samples", "status"}
    assert run["suite"] == "rag-extraction" and run["status"] == "complete" and run["n_samples"] == 6
    assert {"exact_match", "f1", "abstained", "answerable/f1", "unanswerable/exact_match"} <= set(run["metrics"])


def test_runs_list_and_show(finished: tuple[Path, dict]) -> None:
    db, payload = finished
    run_id = payload["runs"][0]["run_id"]
    listed = json.loads(cli.invoke(app, ["runs", "list", "--db", str(db), "--tag", "base", "--json"]).stdout)
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
    assert listed["runs"][0]["name"] == "tiny-base"
    shown = cli.invoke(app, ["runs", "show", run_id[:8], "--db", str(db), "--samples", "2"])
    assert shown.exit_code == 0 and "provenance" in shown.stdout and "config_hash" in shown.stdout
    detail = json.loads(cli.invoke(app, ["runs", "show", run_id, "--db", str(db), "--samples", "2", "--json"]).stdout)
    assert len(detail["samples"]) == 2 and detail["run"]["versions"]["transformers"]


def test_export_jsonl_and_parquet(finished: tuple[Path, dict], tmp_path: Path) -> None:
    db, payload = finished
    run_id = payload["runs"][0]["run_id"]
    jl, pq = tmp_path / "s.jsonl", tmp_path / "s.parquet"
    assert cli.invoke(app, ["export", run_id, "--format", "jsonl", "-o", str(jl), "--db", str(db)]).exit_code == 0
    rows = [json.loads(line) for line in jl.read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["completions"][0][0]["text"] is not None
    assert cli.invoke(app, ["export", run_id, "--format", "parquet", "-o", str(pq), "--db", str(db)]).exit_code == 0
    frame = pd.read_parquet(pq)
    assert len(frame) == 6 and list(frame["sample_id"]) == [r["sample_id"] for r in rows]
    bad = cli.invoke(app, ["export", run_id, "--format", "xml", "--db", str(db)])
    assert bad.exit_code == 2


def test_rescore_stored_run_without_model(finished: tuple[Path, dict]) -> None:
    db, payload = finished
    run = payload["runs"][0]
    result = cli.invoke(app, ["run", "rag-extraction", "--backend", "file", "--completions", f"run:{run['run_id']}",
                              "--limit", "6", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"][0]["metrics"] == run["metrics"]


def test_same_command_again_uses_cache(finished: tuple[Path, dict], tiny_model: Path) -> None:
    db, payload = finished
    again = cli.invoke(app, ["run", "rag-extraction", "--model", str(tiny_model), "--db", str(db), "--limit", "6",
                             "--max-new-tokens", "8", "--json"])
    assert again.exit_code == 0
    assert json.loads(again.stdout)["runs"][0]["metrics"] == payload["runs"][0]["metrics"]


def test_yaml_config(tiny_model: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"suites: [{{name: rag-extraction, limit: 2}}]\nmodel: {{path: '{tiny_model}', batch_size: 2}}\n"
        "generation: {max_new_tokens: 4}\ntags: [yaml]\n"
    )
    result = cli.invoke(app, ["run", "--config", str(cfg), "--db", str(tmp_path / "h.db"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"][0]["n_samples"] == 2


def test_make_tiny_cli(tmp_path: Path) -> None:
    result = cli.invoke(app, ["models", "make-tiny", str(tmp_path / "m")])
    assert result.exit_code == 0 and (tmp_path / "m" / "tokenizer.json").is_file()
    bad = cli.invoke(app, ["models", "make-tiny", str(tmp_path / "n"), "--hidden-size", "64", "--heads", "4"])
    assert bad.exit_code == 2 and "head_dim 16" in bad.output
