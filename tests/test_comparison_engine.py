"""Issue 13's acceptance cases: exact small-sample tests through `harness gate`, corpus BLEU gated
as corpus BLEU (checked against sacrebleu's --paired-bs), and gate / compare / monitor rag / the
board's Compare page reporting the same numbers for the same two runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ModelConfig, RunConfig, SuiteConfig
from harness.runner import Runner
from harness.store import Store
from suites.rag_extraction import RagExtractionSuite, gold_answers
from tests.conftest import SHARED_DATA

SQUAD = SHARED_DATA / "rag" / "squad_v2_dev_subset.json"
WMT22 = SHARED_DATA / "translation" / "wmt22-de-en"
PREFIX = "generaltest2022.de-en"
pytestmark = pytest.mark.skipif(not SQUAD.is_file() or not WMT22.is_dir(), reason="shared data missing (CI always has it)")
cli = CliRunner()


def _run(store: Store, tmp: Path, name: str, suite: str, data: Path, answers: dict[str, str], tags: list[str],
         options: dict[str, Any] | None = None, limit: int | None = None) -> str:
    path = tmp / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"id": k, "completion": v}, ensure_ascii=False) + "\n" for k, v in answers.items()),
                    encoding="utf-8")
    config = RunConfig(suites=[SuiteConfig(name=suite, data=str(data), limit=limit, options=options or {})],
                       model=ModelConfig(backend="file", completions=str(path)), tags=tags)
    (result,) = Runner(config, store, show_progress=False).run()
    return result.run_id


def _squad_answers(lost: int) -> tuple[dict[str, str], dict[str, str]]:
    """300 SQuAD 2.0 questions answered with graded F1 (every 4th answerable answer is partial), and
    a candidate equal to it except `lost` fully right answers made wrong."""
    samples = RagExtractionSuite().load(str(SQUAD))[:300]
    base: dict[str, str] = {}
    right = []
    for k, s in enumerate(samples):
        golds = gold_answers(s.data["answers"])
        if golds == [""]:
            base[s.id] = "unanswerable"
        elif k % 4 == 0:
            base[s.id] = f"{golds[0]} and also something else entirely"  # partial F1
        else:
            base[s.id] = golds[0]
            right.append(s.id)
    cand = dict(base)
    for sid in right[:lost]:
        cand[sid] = "Zorblax quintessence"
    return base, cand


def _gate(url: str, base: str, cand: str) -> tuple[int, dict[str, Any]]:
    res = cli.invoke(app, ["gate", "--db", url, "--json", "--baseline", base, "--candidate", cand])
    return res.exit_code, json.loads(res.stdout)


@pytest.mark.parametrize(("lost", "exit_code", "p"), [(3, 0, 1 / 8), (6, 1, 1 / 64)])
def test_gate_on_a_few_lost_answers_uses_the_exact_test(tmp_path: Path, lost: int, exit_code: int, p: float) -> None:
    """Item 1: 3 answers lost of 300 graded F1 scores passes (exact p = 1/8, not 0.0416); 6 fail (1/64)."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    store = Store(url)
    base, cand = _squad_answers(lost)
    _run(store, tmp_path, "base", "rag-extraction", SQUAD, base, ["main"], limit=300)
    _run(store, tmp_path, "cand", "rag-extraction", SQUAD, cand, ["pr"], limit=300)
    store.close()
    code, report = _gate(url, "main", "pr")
    (check,) = report["checks"]
    assert check["metric"] == "f1" and check["comparison"]["test"]["method"] == "sign-exact"
    assert check["comparison"]["p_value"] == pytest.approx(p)
    assert code == exit_code, check["reason"]
    if exit_code == 1:  # the worst regressions show what the answer should have been
        worst = check["worst_regressions"][0]
        assert worst["gold"] and worst["candidate_completion"] == "Zorblax quintessence"
    else:  # a drop it cannot confirm is called underpowered, in the JSON and on the terminal
        assert check["underpowered"]
        text = cli.invoke(app, ["gate", "--db", url, "--baseline", "main", "--candidate", "pr"]).output
        assert "underpowered" in " ".join(text.split())


def test_gate_compare_monitor_and_board_report_the_same_numbers(tmp_path: Path) -> None:
    from dashboards.comparison import paired_comparison

    url = f"sqlite:///{tmp_path / 'g.db'}"
    store = Store(url)
    base, cand = _squad_answers(6)
    a = _run(store, tmp_path, "base", "rag-extraction", SQUAD, base, ["main"], limit=300)
    b = _run(store, tmp_path, "cand", "rag-extraction", SQUAD, cand, ["pr"], limit=300)
    _, gate = _gate(url, a, b)
    compare = json.loads(cli.invoke(app, ["compare", a, b, "--db", url, "--json"]).stdout)
    monitor = json.loads(cli.invoke(app, ["monitor", "rag", "--baseline", a, "--candidate", b, "--db", url, "--json"]).stdout)
    board = paired_comparison(store, a, b).frame.set_index("metric").loc["f1"]
    store.close()

    g = gate["checks"][0]["comparison"]
    c = next(m for m in compare["comparisons"][0]["metrics"] if m["metric"] == "f1")
    m = next(f for f in monitor["findings"] if f["name"] == "f1")
    for key in ("baseline", "candidate", "delta", "n"):
        assert g[key] == pytest.approx(c[key]) == pytest.approx(board[{"baseline": "a", "candidate": "b"}.get(key, key)])
    assert m["value"] == pytest.approx(g["delta"])
    assert m["details"]["p_raw"] == pytest.approx(g["p_value"]) == pytest.approx(1 / 64)  # both one-sided
    assert c["p_value"] == pytest.approx(board["p_value"]) == pytest.approx(2 / 64)  # both two-sided
    assert (g["ci"]["low"], g["ci"]["high"]) == pytest.approx((board["ci_low"], board["ci_high"]))
    assert g["flips"] == c["flips"] and (g["flips"]["improved"], g["flips"]["regressed"]) == (board["improved"], board["regressed"])


def _lines(name: str, limit: int) -> list[str]:
    return (WMT22 / f"{PREFIX}.{name}").read_text(encoding="utf-8").splitlines()[:limit]


def test_gate_bleu_is_corpus_bleu_and_its_bootstrap_agrees_with_sacrebleu(tmp_path: Path) -> None:
    """Item 2: `bleu` in gate and compare is the run's corpus BLEU, not a mean of sentence BLEU; the
    paired bootstrap p agrees with `sacrebleu --paired-bs` within Monte Carlo error."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    n = 150
    url = f"sqlite:///{tmp_path / 't.db'}"
    store = Store(url)
    src, ref = tmp_path / "src.de", tmp_path / "ref.en"
    src.write_text("\n".join(_lines("src.de", n)) + "\n", encoding="utf-8")
    ref.write_text("\n".join(_lines("ref.A.en", n)) + "\n", encoding="utf-8")
    options = {"refs": str(ref), "source_lang": "de", "target_lang": "en", "bootstrap": 0, "metrics": "bleu,chrf"}
    hyps_a, hyps_b = _lines("hyp.PROMT.en", n), _lines("hyp.Lan-Bridge.en", n)
    a = _run(store, tmp_path, "a", "translation", src, {str(i + 1): h for i, h in enumerate(hyps_a)}, ["main"], options)
    b = _run(store, tmp_path, "b", "translation", src, {str(i + 1): h for i, h in enumerate(hyps_b)}, ["pr"], options)
    stored = {m["name"]: m["value"] for m in store.run_metrics(a)}
    sentence_mean = float(np.mean([r["scores"]["sentence_bleu"] for r in store.run_samples(a)]))
    store.close()

    _, gate = _gate(url, a, b)
    g = gate["checks"][0]["comparison"]
    assert gate["checks"][0]["metric"] == "bleu" and g["kind"] == "corpus" and g["flips_of"] == "sentence_bleu"
    assert g["baseline"] == pytest.approx(stored["bleu"], abs=1e-9) and g["baseline"] != pytest.approx(sentence_mean, abs=0.1)
    assert g["n"] == n and g["test"]["method"] == "paired-bootstrap"

    compare = json.loads(cli.invoke(app, ["compare", a, b, "--db", url, "--json"]).stdout)
    ours = {m["metric"]: m for m in compare["comparisons"][0]["metrics"]}
    assert ours["bleu"]["baseline"] == pytest.approx(stored["bleu"]) and ours["chrf"]["baseline"] == pytest.approx(stored["chrf"])
    resamples = 1_000
    _, results = PairedTest([("baseline", hyps_a), ("candidate", hyps_b)], {"BLEU": BLEU()}, [_lines("ref.A.en", n)],
                            test_type="bs", n_samples=resamples)()
    theirs = results["BLEU"][1].p_value
    assert results["BLEU"][1].score == pytest.approx(g["candidate"], abs=1e-9)
    p = ours["bleu"]["p_value"]  # 10,000 resamples against sacrebleu's 1,000
    assert 0.0 < p < 1.0 and abs(p - theirs) <= 4 * np.sqrt(theirs * (1 - theirs) / resamples + p * (1 - p) / 10_000) + 2e-3


def test_answering_unanswerable_questions_is_not_counted_as_improvement(tmp_path: Path) -> None:
    """Item 8: abstaining less is better on answerable questions but worse on unanswerable ones, so
    a candidate that starts answering 9 unanswerable questions has 9 regressed `abstained` flips;
    the gate's reason shows the signed difference next to the direction."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    store = Store(url)
    base, _ = _squad_answers(0)
    cand = dict(base)
    for sid in [k for k, v in base.items() if v == "unanswerable"][:9]:
        cand[sid] = "Zorblax quintessence"
    a = _run(store, tmp_path, "base", "rag-extraction", SQUAD, base, ["main"], limit=300)
    b = _run(store, tmp_path, "cand", "rag-extraction", SQUAD, cand, ["pr"], limit=300)
    store.close()
    compare = json.loads(cli.invoke(app, ["compare", a, b, "--db", url, "--json"]).stdout)
    abstained = next(m for m in compare["comparisons"][0]["metrics"] if m["metric"] == "abstained")
    assert abstained["delta"] == pytest.approx(-9 / 300)
    assert (abstained["flips"]["improved"], abstained["flips"]["regressed"]) == (0, 9)
    policy = tmp_path / "gate.yaml"
    policy.write_text("suites:\n  rag-extraction:\n    metrics: {abstained: {}}\n", encoding="utf-8")
    res = cli.invoke(app, ["gate", "--db", url, "--json", "--baseline", a, "--candidate", b, "--policy", str(policy)])
    (check,) = json.loads(res.stdout)["checks"]
    assert check["status"] == "pass" and check["reason"].startswith("no drop (Δ -0.03; lower is better)")
