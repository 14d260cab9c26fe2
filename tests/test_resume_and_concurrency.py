"""Faults a real user meets: `kill -9` in the middle of a run, and two runs sharing one SQLite file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.store import Store

SCRIPT = Path(__file__).parent / "scripts" / "slow_harness.py"
REPO = Path(__file__).resolve().parent.parent


def _cmd(model: Path, db: Path, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "run", "rag-extraction", "--model", str(model), "--db", str(db),
            "--batch-size", "2", "--max-new-tokens", "8", "--no-progress", *extra]


def _env(log: Path, slow: float) -> dict[str, str]:
    return os.environ | {"ASKED_LOG": str(log), "SLOW_SECONDS": str(slow), "PYTHONPATH": str(REPO)}


def _stored(db: Path) -> int:
    try:
        store = Store(f"sqlite:///{db}", read_only=True)
    except ConfigError:  # the file exists but the run has not created its tables yet
        return 0
    try:
        runs = store.list_runs()
        return store.count_samples(runs[0]["id"]) if runs else 0
    finally:
        store.close()


@pytest.mark.slow
def test_kill_9_then_rerun_recomputes_nothing_stored(tiny_model: Path, tmp_path: Path) -> None:
    db, first_log, second_log = tmp_path / "h.db", tmp_path / "first.log", tmp_path / "second.log"
    proc = subprocess.Popen(_cmd(model=tiny_model, db=db), env=_env(first_log, 0.4),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists() and _stored(db) >= 16:  # the first batch (16 samples) is committed
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    store = Store(f"sqlite:///{db}")
    [killed] = store.list_runs()
    assert killed["status"] == "running"  # nobody got to mark it: a real crash
    stored = store.stored_sample_ids(killed["id"])
    assert 16 <= len(stored) < 24

    done = subprocess.run(_cmd(tiny_model, db, "--json"), env=_env(second_log, 0), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["runs"]
    assert result["run_id"] == killed["id"] and result["status"] == "complete" and result["n_samples"] == 24
    asked_again = set(second_log.read_text().split()) if second_log.exists() else set()
    assert not asked_again & stored, "the backend was asked again for samples already stored"
    answered_before_kill = set(first_log.read_text().split())
    # Answers that arrived before the kill were cached too, so at most the batch in flight is redone.
    assert len(asked_again & answered_before_kill) <= 2

    clean_db = tmp_path / "clean.db"
    clean = subprocess.run(_cmd(tiny_model, clean_db, "--json"), env=_env(tmp_path / "clean.log", 0),
                           capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["runs"][0]["metrics"] == result["metrics"]


@pytest.mark.slow
def test_two_runs_write_one_sqlite_file_at_once(tiny_model: Path, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    procs = [
        subprocess.Popen(_cmd(tiny_model, db, "--run-name", f"writer-{i}", "--seed", str(i), "--limit", "12"),
                         env=_env(tmp_path / f"w{i}.log", 0.05), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    runs = Store(f"sqlite:///{db}").list_runs()
    assert sorted(r["name"] for r in runs) == ["writer-0", "writer-1"]
    assert all(r["status"] == "complete" for r in runs)
