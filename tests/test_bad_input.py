"""Bad input: one clear message naming file, line and field; exit code 2; no partial run stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import Store

runner = CliRunner()

GOOD = {"id": "a", "question": "Q?", "context": "C.", "answers": ["C"]}


def _write(path: Path, lines: list[str] | bytes) -> Path:
    if isinstance(lines, bytes):
        path.write_bytes(lines)
    else:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


CASES = [
    ("bad_json", [json.dumps(GOOD), "{not json"], "line 2", "not valid JSON"),
    ("missing_field", [json.dumps(GOOD), json.dumps({k: v for k, v in GOOD.items() if k != "context"} | {"id": "b"})],
     "line 2, field 'context'", "missing"),
    ("wrong_type", [json.dumps(GOOD | {"answers": "C"})], "line 1, field 'answers'", "expected list"),
    ("answer_type", [json.dumps(GOOD | {"answers": [3]})], "line 1, field 'answers[0]'", "expected a string"),
    ("not_object", ["[1, 2]"], "line 1", "expected a JSON object"),
    ("duplicate_id", [json.dumps(GOOD), json.dumps(GOOD)], "field 'id'", "duplicate id"),
    ("empty", [""], "", "file is empty"),
]


@pytest.mark.parametrize(("name", "lines", "where", "problem"), CASES, ids=[c[0] for c in CASES])
def test_malformed_rag_data(tmp_path: Path, name: str, lines: list[str], where: str, problem: str) -> None:
    data = _write(tmp_path / f"{name}.jsonl", lines)
    db = tmp_path / "h.db"
    result = runner.invoke(app, ["run", "rag-extraction", "--model", "unused-model", "--data", str(data), "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert str(data) in result.output and where in result.output and problem in result.output
    assert "Traceback" not in result.output
    assert Store(f"sqlite:///{db}").list_runs() == []


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    data = _write(tmp_path / "latin1.jsonl", json.dumps(GOOD).encode() + b"\n" + '{"id": "é"}'.encode("latin-1"))
    result = runner.invoke(app, ["run", "rag-extraction", "--model", "m", "--data", str(data), "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 2
    assert "line 2" in result.output and "not valid UTF-8" in result.output


def test_squad_json_errors_name_the_path(tmp_path: Path) -> None:
    doc = {"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "answers": []}]}]}]}
    data = tmp_path / "squad.json"
    data.write_text(json.dumps(doc))
    result = runner.invoke(app, ["run", "rag-extraction", "--model", "m", "--data", str(data), "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 2
    assert "data[0].paragraphs[0].qas[0].question" in result.output


def test_missing_data_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "rag-extraction", "--model", "m", "--data", str(tmp_path / "nope.jsonl"),
                                 "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 2 and "file not found" in result.output


def test_missing_model_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "rag-extraction", "--model", str(tmp_path / "no-such-model"), "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "no-such-model" in result.output
    assert Store(f"sqlite:///{tmp_path / 'h.db'}").list_runs() == []


def test_unknown_suite_suggests(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "rag-extration", "--model", "m", "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 2 and "Did you mean: rag-extraction" in result.output


def test_unknown_suite_option(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "rag-extraction", "--model", "m", "--option", "abstain=x", "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 2 and "unknown option" in result.output


def test_config_typo_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("suites: [{name: rag-extraction}]\nmodel: {path: m, batchsize: 4}\n")
    result = runner.invoke(app, ["run", "--config", str(cfg), "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 2
    assert "model.batchsize" in result.output and str(cfg) in result.output


def test_file_backend_needs_completions(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "rag-extraction", "--backend", "file", "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 2 and "--completions" in result.output


def test_bad_completions_file_names_line(tmp_path: Path) -> None:
    comp = _write(tmp_path / "c.jsonl", [json.dumps({"id": "rag-001", "completion": 5})])
    result = runner.invoke(app, ["run", "rag-extraction", "--backend", "file", "--completions", str(comp),
                                 "--db", str(tmp_path / "h.db")])
    assert result.exit_code == 2
    assert f"{comp}, line 1, field 'completion'" in result.output
