"""The RAG monitor finds regressions planted in predictions on the real SQuAD 2.0 subset, scored through
the real runner with the file backend, and stays quiet when changes are balanced or cosmetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ModelConfig, RunConfig, SuiteConfig
from harness.runner import Runner
from harness.store import Store
from monitors.config import RagRegressionConfig
from monitors.regressions import compare_runs
from suites.rag_extraction import RagExtractionSuite, gold_answers, normalize_answer
from tests.conftest import SHARED_DATA

SQUAD = SHARED_DATA / "rag" / "squad_v2_dev_subset.json"
pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.skipif(not SQUAD.is_file(), reason=f"real SQuAD 2.0 subset not found at {SQUAD} (CI always has it)"),
]
cli = CliRunner()


def flat(text: str) -> str:
    """Rich wraps long lines at the terminal width; compare messages with whitespace collapsed."""
    return " ".join(text.split())


def _wrong_span(context: str, golds: list[str]) -> str:
    """A word of the context sharing no token with any gold answer: supported, but EM = F1 = 0."""
    gold_tokens = {t for g in golds for t in normalize_answer(g).split()}
    for word in context.split():
        norm = normalize_answer(word)
        if norm and " " not in norm and norm not in gold_tokens and norm.isalpha() and len(norm) > 3:
            return word.strip(".,;:()\"'")
    raise AssertionError("no usable word")


class Plan:
    """Baseline answers (gold span or abstention) and a candidate with known regressions on disjoint samples."""

    def __init__(self, limit: int | None = None) -> None:
        samples = RagExtractionSuite().load(str(SQUAD))[:limit]
        self.samples = samples
        self.baseline = {}
        for s in samples:
            golds = gold_answers(s.data["answers"])
            self.baseline[s.id] = "unanswerable" if golds == [""] else golds[0]
        answerable = [s for s in samples if gold_answers(s.data["answers"]) != [""]
                      and normalize_answer(gold_answers(s.data["answers"])[0]) in normalize_answer(s.data["context"])]
        unanswerable = [s for s in samples if gold_answers(s.data["answers"]) == [""]]
        rng = np.random.default_rng(0)
        picked = [answerable[i] for i in rng.permutation(len(answerable))[:90]]
        self.wrong = [s.id for s in picked[:40]]  # wrong span from the context
        self.unsupported = [s.id for s in picked[40:70]]  # text not in the context
        self.abstain = [s.id for s in picked[70:90]]  # abstains on answerable
        self.answers_unanswerable = [unanswerable[i].id for i in rng.permutation(len(unanswerable))[:25]]
        by_id = {s.id: s for s in samples}
        self.candidate = dict(self.baseline)
        for sid in self.wrong:
            s = by_id[sid]
            self.candidate[sid] = _wrong_span(s.data["context"], gold_answers(s.data["answers"]))
        for sid in self.unsupported:
            self.candidate[sid] = "Zorblax quintessence"
        for sid in self.abstain:
            self.candidate[sid] = "unanswerable"
        for sid in self.answers_unanswerable:
            self.candidate[sid] = _wrong_span(by_id[sid].data["context"], [])


def _score(store: Store, tmp: Path, name: str, answers: dict[str, str], limit: int | None = None) -> str:
    path = tmp / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"id": k, "completion": v}) + "\n" for k, v in answers.items()), encoding="utf-8")
    config = RunConfig(
        suites=[SuiteConfig(name="rag-extraction", data=str(SQUAD), limit=limit)],
        model=ModelConfig(backend="file", completions=str(path)),
        run_name=name,
    )
    (result,) = Runner(config, store, show_progress=False).run()
    return result.run_id


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan()


def test_planted_regressions_are_found_exactly(plan: Plan, tmp_path: Path, sqlite_url: str) -> None:
    store = Store(sqlite_url)
    base = _score(store, tmp_path, "base", plan.baseline)
    cand = _score(store, tmp_path, "cand", plan.candidate)
    result = compare_runs(store, base, cand, RagRegressionConfig())
    store.close()
    f = {x.name: x for x in result.findings}
    assert result.summary["n_paired"] == 1407 and result.summary["same_data"]

    planted = len(plan.wrong) + len(plan.unsupported) + len(plan.abstain) + len(plan.answers_unanswerable)
    assert (f["exact_match flips"].details["losses"], f["exact_match flips"].details["gains"]) == (planted, 0)
    assert set(f["unsupported answers"].details["lost_ids"]) == set(plan.unsupported)
    assert f["unsupported answers"].details["gains"] == 0
    assert set(f["answers where it should abstain"].details["lost_ids"]) == set(plan.answers_unanswerable)
    assert set(f["abstains where it should answer"].details["lost_ids"]) == set(plan.abstain)
    assert f["f1"].details["worse"] == planted and f["f1"].details["better"] == 0
    assert all(x.alarm for x in result.findings), [x.message for x in result.findings]
    assert all(x.p_value is not None and x.p_value < 0.05 for x in result.findings)

    worst = result.summary["worst"]
    assert len(worst) == 10
    planted_ids = set(plan.wrong) | set(plan.unsupported) | set(plan.abstain) | set(plan.answers_unanswerable)
    assert {w["sample_id"] for w in worst} <= planted_ids
    assert all(w["f1_baseline"] == 1.0 and w["f1_candidate"] == 0.0 and w["reasons"] for w in worst)


def test_balanced_and_cosmetic_changes_do_not_alarm(plan: Plan, tmp_path: Path, sqlite_url: str) -> None:
    # baseline with 30 wrong answers; the candidate fixes 15 of them and breaks 15 others, and reformats the rest
    ids = [s.id for s in plan.samples if s.id in plan.wrong + plan.unsupported]
    broken_in_base, broken_in_cand = ids[:30], ids[30:45]
    baseline = dict(plan.baseline) | {sid: plan.candidate[sid] for sid in broken_in_base}
    candidate = {sid: f"Answer: {text}" for sid, text in plan.baseline.items()}
    candidate |= {sid: plan.candidate[sid] for sid in broken_in_base[:15] + broken_in_cand}
    store = Store(sqlite_url)
    base = _score(store, tmp_path, "base2", baseline)
    cand = _score(store, tmp_path, "cand2", candidate)
    result = compare_runs(store, base, cand, RagRegressionConfig())
    store.close()
    em = next(x for x in result.findings if x.name == "exact_match flips")
    assert (em.details["losses"], em.details["gains"]) == (15, 15)
    assert not result.alarm, [x.message for x in result.findings]


def test_cli_rag_exit_codes_json_and_stored_alarms(plan: Plan, tmp_path: Path, sqlite_url: str) -> None:
    store = Store(sqlite_url)
    base = _score(store, tmp_path, "b", plan.baseline, limit=400)
    cand = _score(store, tmp_path, "c", plan.candidate, limit=400)
    same = _score(store, tmp_path, "s", {k: f"Answer: {v}" for k, v in plan.baseline.items()}, limit=400)
    store.close()
    bad = cli.invoke(app, ["monitor", "rag", "--baseline", base, "--candidate", cand, "--db", sqlite_url, "--json", "--worst", "3"])
    assert bad.exit_code == 1, bad.output
    payload = json.loads(bad.stdout)
    assert payload["kind"] == "rag" and payload["alarm"] and len(payload["summary"]["worst"]) == 3
    assert len(payload["alarms"]) == sum(f["alarm"] for f in payload["findings"]) > 0
    ok = cli.invoke(app, ["monitor", "rag", "--baseline", base, "--candidate", same, "--db", sqlite_url])
    assert ok.exit_code == 0, ok.output
    assert "worst regressions" not in ok.output
    text = cli.invoke(app, ["monitor", "rag", "--baseline", base, "--candidate", cand, "--db", sqlite_url])
    assert text.exit_code == 1 and "REGRESSION" in flat(text.output) and "worst regressions" in flat(text.output)
    missing = cli.invoke(app, ["monitor", "rag", "--baseline", "nope", "--candidate", cand, "--db", sqlite_url])
    assert missing.exit_code == 2 and "'nope' is neither a run id nor a tag" in flat(missing.output)


def test_rag_monitor_refuses_runs_over_different_data(plan: Plan, tmp_path: Path, sqlite_url: str) -> None:
    """Same sample ids, another data file (one question edited): the monitor refuses, as the gate does."""
    store = Store(sqlite_url)
    base = _score(store, tmp_path, "b", plan.baseline, limit=100)
    raw = json.loads(SQUAD.read_text(encoding="utf-8"))
    raw["data"][0]["paragraphs"][0]["qas"][0]["question"] += " (edited)"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(raw), encoding="utf-8")
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": k, "completion": v}) + "\n" for k, v in plan.baseline.items()), encoding="utf-8")
    config = RunConfig(suites=[SuiteConfig(name="rag-extraction", data=str(other), limit=100)],
                       model=ModelConfig(backend="file", completions=str(path)), run_name="edited")
    (result,) = Runner(config, store, show_progress=False).run()
    store.close()
    res = cli.invoke(app, ["monitor", "rag", "--baseline", base, "--candidate", result.run_id, "--db", sqlite_url])
    assert res.exit_code == 2, res.output
    text = flat(res.output)
    assert "cannot be paired" in text and "the data differs" in text and "other.json" in text and "different inputs" in text


@pytest.mark.postgres
def test_rag_monitor_results_on_postgresql(plan: Plan, tmp_path: Path, pg_url: str) -> None:
    store = Store(pg_url)
    base = _score(store, tmp_path, "b", plan.baseline, limit=300)
    cand = _score(store, tmp_path, "c", plan.candidate, limit=300)
    store.close()
    result = cli.invoke(app, ["monitor", "rag", "--baseline", base, "--candidate", cand, "--db", pg_url, "--json"])
    assert result.exit_code == 1, result.output
    alarms = cli.invoke(app, ["monitor", "alarms", "--db", pg_url, "--json"])
    assert alarms.exit_code == 0
    assert {a["kind"] for a in json.loads(alarms.stdout)["alarms"]} == {"rag"}
    pending = cli.invoke(app, ["monitor", "alarms", "--undelivered", "--db", pg_url, "--json"])
    assert pending.exit_code == 0 and len(json.loads(pending.stdout)["alarms"]) == len(json.loads(alarms.stdout)["alarms"])
