"""COMET end to end, offline: `harness comet setup` builds COMET's own environment, `harness comet
make-tiny` trains a tiny COMET-architecture checkpoint in it, and the translation suite scores
through the worker (per segment and system level, deterministic).

Building the environment installs unbabel-comet from PyPI (about 2 minutes here); set
HARNESS_TEST_COMET_ENV=DIR to reuse an environment across local runs (setup still runs and checks it).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.comet import CometScorer
from harness.config import ModelConfig, RunConfig, SuiteConfig
from harness.errors import ConfigError
from harness.runner import Runner
from harness.store import Store
from suites.translation import TranslationSuite

pytestmark = pytest.mark.slow

BUNDLED = Path(__file__).resolve().parent.parent / "suites" / "data" / "translation_sample.jsonl"


@pytest.fixture(scope="module")
def comet_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = Path(os.environ.get("HARNESS_TEST_COMET_ENV") or tmp_path_factory.mktemp("comet") / "env")
    result = CliRunner().invoke(app, ["comet", "setup", "--env", str(env), "--json"])
    assert result.exit_code == 0, result.output
    versions = json.loads(result.stdout)["versions"]
    assert versions["unbabel-comet"].startswith("2.") and versions["numpy"].startswith("1.")
    return env


@pytest.fixture(scope="module")
def tiny_comet(comet_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("comet-model") / "tiny"
    result = CliRunner().invoke(app, ["comet", "make-tiny", str(target), "--env", str(comet_env), "--json"])
    assert result.exit_code == 0, result.output
    assert (target / "checkpoints" / "model.ckpt").is_file() and (target / "hparams.yaml").is_file()
    return target


def _answers(path: Path) -> Path:
    """Completions for the bundled sample: some references verbatim, some poor translations."""
    rows = [json.loads(line) for line in BUNDLED.read_text(encoding="utf-8").splitlines()]
    with path.open("w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            ref = row["ref"][0] if isinstance(row["ref"], list) else row["ref"]
            text = ref if i % 2 == 0 else " ".join(reversed(ref.split()))
            fh.write(json.dumps({"id": row["id"], "completion": text}) + "\n")
    return path


def _run(db_url: str, completions: Path, options: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    config = RunConfig(
        suites=[SuiteConfig(name="translation", options=options)],
        model=ModelConfig(backend="file", completions=str(completions)),
    )
    store = Store(db_url)
    try:
        [result] = Runner(config, store, show_progress=False).run()
        return store.run_samples(result.run_id), {m["name"]: m for m in store.run_metrics(result.run_id)}
    finally:
        store.close()


def test_comet_scores_per_segment_and_system_level_deterministically(
    tiny_comet: Path, comet_env: Path, tmp_path: Path, sqlite_url: str
) -> None:
    completions = _answers(tmp_path / "out.jsonl")
    options = {"comet": str(tiny_comet), "comet_env": str(comet_env), "bootstrap": 0, "metrics": "bleu,chrf"}
    rows, metrics = _run(sqlite_url, completions, options)

    assert len(rows) == 12
    for row in rows:
        assert math.isfinite(row["scores"]["comet"])
        assert ("comet_ref2" in row["scores"]) == (len(row["details"]["references"]) == 2)
        assert row["details"]["comet"]["model"] == str(tiny_comet)
    segment = [r["scores"]["comet"] for r in rows]
    assert metrics["comet"]["value"] == pytest.approx(sum(segment) / len(segment))
    assert metrics["comet"]["n"] == 12 and metrics["comet"]["stderr"] is not None
    assert metrics["comet_ref2"]["n"] == sum(len(r["details"]["references"]) == 2 for r in rows)
    details = metrics["comet"]["details"]
    assert details["unbabel_comet"].startswith("2.") and details["checkpoint"].endswith("model.ckpt")
    assert {"bleu", "chrf"} <= set(metrics)
    # The metric ranks quality: references given verbatim score higher than the same words reversed.
    verbatim = {json.loads(line)["id"] for i, line in enumerate(BUNDLED.read_text(encoding="utf-8").splitlines()) if i % 2 == 0}
    good = [r["scores"]["comet"] for r in rows if r["sample_id"] in verbatim]
    poor = [r["scores"]["comet"] for r in rows if r["sample_id"] not in verbatim]
    assert len(good) == len(poor) == 6
    assert sum(good) / len(good) > sum(poor) / len(poor), (good, poor)

    # A second run (a new worker, a new process) gives exactly the same segment scores.
    rows_again, metrics_again = _run(sqlite_url, completions, options)
    assert [r["scores"]["comet"] for r in rows_again] == segment
    assert metrics_again["comet"]["value"] == metrics["comet"]["value"]


def test_batching_does_not_change_scores(tiny_comet: Path, comet_env: Path) -> None:
    rows = [
        {"src": "Das Haus ist klein.", "mt": "The house is small.", "ref": "The house is small."},
        {"src": "Es regnet.", "mt": "Rain it does today very much.", "ref": "It is raining."},
        {"src": "Wo ist der Bahnhof?", "mt": "Where station?", "ref": "Where is the station?"},
    ]
    scorer = CometScorer(str(tiny_comet), comet_env, batch_size=2)
    try:
        together = scorer.score(rows)
        apart = [scorer.score([r])[0] for r in rows]
    finally:
        scorer.close()
    assert together == pytest.approx(apart, abs=1e-5)
    assert len(set(together)) > 1  # the model tells the segments apart


def test_a_folder_that_is_not_a_comet_model_is_a_config_error(comet_env: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a COMET model folder"):
        TranslationSuite({"comet": str(tmp_path), "comet_env": str(comet_env)})
