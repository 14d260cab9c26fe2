"""Acceptance on the real SQuAD 2.0 subset in ../shared/data (skips in a fresh clone without it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import ModelConfig, RunConfig, SuiteConfig
from harness.runner import Runner
from harness.store import Store
from suites.rag_extraction import RagExtractionSuite
from tests.conftest import SHARED_DATA

SQUAD = SHARED_DATA / "rag" / "squad_v2_dev_subset.json"
pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.skipif(not SQUAD.is_file(), reason=f"real SQuAD 2.0 subset not found at {SQUAD}"),
]


def _score(store: Store, tmp_path: Path, answer_for) -> dict[str, float]:  # type: ignore[no-untyped-def]
    samples = RagExtractionSuite().load(str(SQUAD))
    comp = tmp_path / "c.jsonl"
    comp.write_text("\n".join(json.dumps({"id": s.id, "completion": answer_for(s)}) for s in samples))
    cfg = RunConfig(suites=[SuiteConfig(name="rag-extraction", data=str(SQUAD))],
                    model=ModelConfig(backend="file", completions=str(comp)))
    [result] = Runner(cfg, store, show_progress=False).run()
    assert result.n_samples == 1407
    return {m.name: m.value for m in result.metrics}


def test_gold_answers_score_perfectly(store: Store, tmp_path: Path) -> None:
    values = _score(store, tmp_path, lambda s: s.data["answers"][0] if s.data["answers"] else "unanswerable")
    assert values["exact_match"] == 1.0 and values["f1"] == 1.0


def test_always_abstaining_scores_the_unanswerable_share(store: Store, tmp_path: Path) -> None:
    values = _score(store, tmp_path, lambda s: "unanswerable")
    assert values["exact_match"] == pytest.approx(702 / 1407)
    assert values["unanswerable/exact_match"] == 1.0 and values["answerable/exact_match"] == 0.0
    assert values["abstained"] == 1.0
