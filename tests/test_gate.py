"""The gate and `compare`: policies, run references, end-to-end CLI verdicts and calibration.

Runs are made through the real Runner with the `file` backend (completions written per sample), so
the gate reads exactly what a user's runs store. Calibration uses seeded simulations of the gate's
own decision functions (`judge_metric` + `decide`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ModelConfig, RunConfig, SuiteConfig
from harness.datafiles import read_jsonl
from harness.errors import ConfigError, UserError
from harness.gate import GateReport, decide, judge_metric, run_gate
from harness.gate_policy import Defaults, GatePolicy, Rule, load_policy
from harness.gate_report import to_markdown
from harness.refs import resolve_ref
from harness.runner import Runner
from harness.store import Store
from harness.types import Completion, MetricSpec, Request, Sample, SampleScore
from suites import SUITES
from suites.base import Suite
from tests.conftest import SHARED_DATA, FakeBackend

cli = CliRunner()


# ---- building runs through the Runner -------------------------------------------------------------


def write_data(path: Path, n: int) -> Path:
    """n RAG questions whose answer is a unique word found in the context."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            row = {"id": f"q{i}", "question": f"What is item {i}?", "context": f"Item {i} is called w{i}x.", "answers": [f"w{i}x"]}
            fh.write(json.dumps(row) + "\n")
    return path


def write_answers(path: Path, correct: Sequence[bool] | np.ndarray, abstain: Sequence[bool] | None = None) -> Path:
    """Completions: the gold word where `correct`, 'unanswerable' where `abstain`, else a wrong span."""
    with path.open("w", encoding="utf-8") as fh:
        for i, ok in enumerate(correct):
            text = "unanswerable" if abstain is not None and abstain[i] else (f"w{i}x" if ok else "Item")
            fh.write(json.dumps({"id": f"q{i}", "completion": text}) + "\n")
    return path


def make_run(store: Store, data: Path, answers: Path, tags: Sequence[str], limit: int | None = None, model: str | None = None) -> str:
    config = RunConfig(
        suites=[SuiteConfig(name="rag-extraction", data=str(data), limit=limit)],
        model=ModelConfig(backend="file", completions=str(answers), path=model),
        tags=list(tags),
    )
    (result,) = Runner(config, store, show_progress=False).run()
    return result.run_id


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    url = f"sqlite:///{tmp_path / 'gate.db'}"
    store = Store(url)
    yield url, store
    store.close()


def correlated_pair(n: int, acc: float, drop_flips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Baseline correctness, and a candidate equal to it except `drop_flips` right answers turned wrong."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(size=n) < acc
    cand = base.copy()
    cand[rng.choice(np.flatnonzero(base), drop_flips, replace=False)] = False
    return base, cand


def gate_cli(url: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    res = cli.invoke(app, ["gate", "--db", url, "--json", *args], env=env)
    assert res.stdout.strip(), res.output
    return res.exit_code, json.loads(res.stdout)


# ---- policy ---------------------------------------------------------------------------------------


def test_policy_yaml_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(
        "defaults: {alpha: 0.01, min_samples: 50}\n"
        "suites:\n"
        "  rag-extraction:\n"
        "    max_drop: 0.02\n"
        "    metrics:\n"
        "      exact_match: {max_drop: 0.01}\n"
        "      answerable/f1: {}\n"
        "  mmlu: {required: false}\n"
    )
    policy = load_policy(path)
    from harness.gate_policy import merge_rule

    em = merge_rule(policy, "rag-extraction", "exact_match", policy.suites["rag-extraction"])
    f1 = merge_rule(policy, "rag-extraction", "answerable/f1", policy.suites["rag-extraction"])
    assert (em.max_drop, em.alpha, em.min_samples, em.required) == (0.01, 0.01, 50, True)
    assert f1.max_drop == 0.02
    assert policy.suites["mmlu"].required is False
    assert GatePolicy().defaults == Defaults(max_drop=0.0, alpha=0.05, min_samples=30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "suites:\n  rag-extraction:\n    metrics:\n      f1: {max_drops: 0.1}\n",
            "line 4, field 'suites.rag-extraction.metrics.f1.max_drops'",
        ),
        ("defaults:\n  alpha: 2\n", "line 2, field 'defaults.alpha'"),
        ("suites: [a, b]\n", "line 1, field 'suites'"),
        ("- 1\n", "expected a mapping"),
        ("defaults: {alpha: [\n", "not valid YAML"),
    ],
)
def test_policy_errors_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"bad\.yaml") as info:
        load_policy(path)
    assert expected in str(info.value)


# ---- references -----------------------------------------------------------------------------------


def test_refs_tags_latest_and_ambiguity(tmp_path: Path, db: tuple[str, Store]) -> None:
    _, store = db
    data = write_data(tmp_path / "d.jsonl", 10)
    first = make_run(store, data, write_answers(tmp_path / "a.jsonl", [True] * 10), ["main"], model="m1")
    second = make_run(store, data, write_answers(tmp_path / "b.jsonl", [False] * 10), ["main"], model="m1")
    assert resolve_ref(store, "main").run_ids() == {"rag-extraction": second}
    assert resolve_ref(store, "tag:main").kind == "tag"
    assert resolve_ref(store, "latest:m1").run_ids() == {"rag-extraction": second}
    assert resolve_ref(store, first[:8]).run_ids() == {"rag-extraction": first}
    assert resolve_ref(store, f"run:{first}").run_ids() == {"rag-extraction": first}
    with pytest.raises(UserError, match="neither a run id nor a tag"):
        resolve_ref(store, "nope")
    with pytest.raises(UserError, match="no run of model"):
        resolve_ref(store, "latest:other")
    tag = first[:3]
    make_run(store, data, write_answers(tmp_path / "c.jsonl", [True] * 9 + [False]), [tag])
    with pytest.raises(UserError, match="both a tag and a run id prefix"):
        resolve_ref(store, tag)


# ---- gate end to end ------------------------------------------------------------------------------


def test_two_runs_of_the_same_model_pass(tmp_path: Path, db: tuple[str, Store]) -> None:
    url, store = db
    data = write_data(tmp_path / "d.jsonl", 200)
    base, _ = correlated_pair(200, 0.7, 0, seed=1)
    answers = write_answers(tmp_path / "a.jsonl", base)
    make_run(store, data, answers, ["main"])
    make_run(store, data, answers, ["pr"])
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "pr")
    assert code == 0, report
    (check,) = report["checks"]
    assert (check["suite"], check["metric"], check["status"]) == ("rag-extraction", "f1", "pass")
    assert check["comparison"]["delta"] == 0.0
    assert check["comparison"]["flips"] == {"improved": 0, "regressed": 0, "unchanged": 200}
    assert check["comparison"]["mde"] > 0  # identical runs still report what the suite could detect


def test_five_point_drop_on_1000_samples_fails_with_reports(tmp_path: Path, db: tuple[str, Store]) -> None:
    url, store = db
    data = write_data(tmp_path / "d.jsonl", 1000)
    base, cand = correlated_pair(1000, 0.7, 50, seed=2)
    make_run(store, data, write_answers(tmp_path / "a.jsonl", base), ["main"])
    make_run(store, data, write_answers(tmp_path / "b.jsonl", cand), ["pr"])
    policy = tmp_path / "gate.yaml"
    policy.write_text("suites:\n  rag-extraction:\n    max_drop: 0.02\n    metrics: {exact_match: {}, f1: {}}\n")
    junit, md, summary = tmp_path / "gate.xml", tmp_path / "gate.md", tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    code, report = gate_cli(
        url, "--baseline", "main", "--candidate", "pr", "--policy", str(policy), "--junit", str(junit), "--markdown", str(md),
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert code == 1
    assert report["verdict"] == "fail"
    em = next(c for c in report["checks"] if c["metric"] == "exact_match")
    assert em["status"] == "fail"
    assert em["comparison"]["delta"] == pytest.approx(-0.05)
    assert em["comparison"]["test"]["method"] == "mcnemar-exact"
    assert em["comparison"]["flips"]["regressed"] == 50
    assert em["p_adjusted"] < 1e-10
    assert em["worst_regressions"][0]["baseline_completion"] != em["worst_regressions"][0]["candidate_completion"]
    assert "What is item" in em["worst_regressions"][0]["prompt"]
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert {(c.get("classname"), c.get("name")) for c in cases} == {("gate.rag-extraction", "exact_match"), ("gate.rag-extraction", "f1")}
    assert all(c.find("failure") is not None for c in cases)
    text = md.read_text()
    assert "FAIL" in text and "exact_match" in text and "MDE" in text
    assert summary.read_text().startswith("earlier step\n") and text in summary.read_text()


def test_drop_within_tolerance_passes_and_lower_is_better_is_respected(tmp_path: Path, db: tuple[str, Store]) -> None:
    url, store = db
    data = write_data(tmp_path / "d.jsonl", 400)
    correct = np.ones(400, dtype=bool)
    abstain_more = np.zeros(400, dtype=bool)
    abstain_more[:60] = True  # the candidate abstains on 60 answerable questions: `abstained` rises (worse)
    make_run(store, data, write_answers(tmp_path / "a.jsonl", correct), ["main"])
    make_run(store, data, write_answers(tmp_path / "b.jsonl", correct, abstain_more), ["pr"])
    policy = tmp_path / "gate.yaml"
    policy.write_text("suites:\n  rag-extraction:\n    metrics: {abstained: {max_drop: 0.1}, exact_match: {max_drop: 0.2}}\n")
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "pr", "--policy", str(policy))
    checks = {c["metric"]: c for c in report["checks"]}
    assert checks["abstained"]["comparison"]["higher_is_better"] is False
    assert checks["abstained"]["drop"] == pytest.approx(0.15)
    assert checks["abstained"]["status"] == "fail"
    assert checks["exact_match"]["status"] == "pass"  # a 0.15 drop within a 0.2 tolerance
    assert code == 1
    policy.write_text("suites:\n  rag-extraction:\n    metrics: {abstained: {max_drop: 0.2}}\n")
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "pr", "--policy", str(policy))
    assert code == 0 and report["checks"][0]["status"] == "pass"


def test_cannot_decide_on_missing_or_mismatched_data(tmp_path: Path, db: tuple[str, Store]) -> None:
    url, store = db
    data = write_data(tmp_path / "d.jsonl", 60)
    answers = write_answers(tmp_path / "a.jsonl", [True] * 60)
    make_run(store, data, answers, ["main"])
    make_run(store, data, answers, ["short"], limit=50)
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "short")
    assert code == 2 and "only in the baseline" in report["checks"][0]["reason"]

    make_run(store, data, answers, ["tiny"], limit=20)
    code, report = gate_cli(url, "--baseline", "tiny", "--candidate", "tiny")
    assert code == 2 and "too few paired samples: 20 < min_samples 30" in report["checks"][0]["reason"]

    policy = tmp_path / "gate.yaml"
    policy.write_text("suites:\n  rag-extraction: {}\n  mmlu: {}\n")
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "main", "--policy", str(policy))
    assert code == 2
    assert next(c for c in report["checks"] if c["suite"] == "mmlu")["reason"] == "suite missing from the baseline and candidate"
    policy.write_text("suites:\n  rag-extraction: {}\n  mmlu: {required: false}\n")
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "main", "--policy", str(policy))
    assert code == 0 and {c["status"] for c in report["checks"]} == {"pass", "skipped"}

    policy.write_text("suites:\n  rag-extractoin: {}\n")
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "main", "--policy", str(policy))
    assert code == 2 and "did you mean 'rag-extraction'?" in report["checks"][0]["reason"]

    # An unknown reference is one error line and exit 2: no empty table, no "UNDECIDED" before the reason.
    res = cli.invoke(app, ["gate", "--db", url, "--baseline", "main", "--candidate", "no-such-tag"])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.strip().startswith("error: candidate 'no-such-tag'") and len(res.stderr.strip().splitlines()) == 1

    other = tmp_path / "other.jsonl"
    other.write_text(data.read_text().replace("What is item 3?", "What is item three?"))
    make_run(store, other, answers, ["edited"])
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "edited")
    assert code == 2 and "different inputs" in report["checks"][0]["reason"]
    assert "the data differs" in report["checks"][0]["reason"] and "other.jsonl" in report["checks"][0]["reason"]


def test_failed_candidate_run_cannot_pass(tmp_path: Path, db: tuple[str, Store]) -> None:
    url, store = db
    data = write_data(tmp_path / "d.jsonl", 80)
    make_run(store, data, write_answers(tmp_path / "a.jsonl", [True] * 80), ["main"])
    config = RunConfig(
        suites=[SuiteConfig(name="rag-extraction", data=str(data))], model=ModelConfig(backend="file", completions="fake"), tags=["pr"]
    )
    broken = FakeBackend(answer="w0x", fail_after=40)
    with pytest.raises(RuntimeError):
        Runner(config, store, backend_factory=lambda _cfg: broken, show_progress=False, commit_every=16).run()
    junit = tmp_path / "g.xml"
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "pr", "--junit", str(junit))
    assert code == 2
    reason = report["checks"][0]["reason"]
    assert "is failed" in reason and "partial" in reason
    assert ET.parse(junit).getroot().find(".//testcase/error") is not None


def test_gate_without_json_prints_a_table_and_exits_with_the_verdict(tmp_path: Path, db: tuple[str, Store]) -> None:
    url, store = db
    data = write_data(tmp_path / "d.jsonl", 40)
    answers = write_answers(tmp_path / "a.jsonl", [True] * 40)
    make_run(store, data, answers, ["main"])
    res = cli.invoke(app, ["gate", "--db", url, "--baseline", "main", "--candidate", "main"])
    assert res.exit_code == 0 and "PASS" in res.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: {alpah: 0.1}\n")
    res = cli.invoke(app, ["gate", "--db", url, "--baseline", "main", "--candidate", "main", "--policy", str(bad)])
    assert res.exit_code == 2 and "line 1, field 'defaults.alpah'" in res.stderr


@pytest.mark.postgres
def test_gate_on_postgres(tmp_path: Path, pg_url: str) -> None:
    store = Store(pg_url)
    try:
        data = write_data(tmp_path / "d.jsonl", 300)
        base, cand = correlated_pair(300, 0.8, 30, seed=3)
        make_run(store, data, write_answers(tmp_path / "a.jsonl", base), ["main"])
        make_run(store, data, write_answers(tmp_path / "b.jsonl", cand), ["pr"])
        report = run_gate(store, "main", "pr")
        assert report.exit_code == 1 and report.checks[0].metric == "f1"
    finally:
        store.close()


# ---- several suites under one tag: a graded suite (Wilcoxon path) next to rag-extraction ----------


class GradedSuite(Suite):
    """A test suite whose per-sample score is a 1-10 rating read from the completion (like a judge's)."""

    name = "graded-test"
    version = "1"
    primary_metric = "rating"
    metrics = (MetricSpec("rating", True, "1-10 rating"),)

    def default_data(self) -> str:
        raise NotImplementedError

    def load(self, source: str) -> list[Sample]:
        return [Sample(str(row["id"]), row, f"{source}:{line}") for line, row in read_jsonl(source)]

    def requests(self, sample: Sample, stage: int, prior: Sequence[Sequence[Completion]]) -> list[Request]:
        return [] if stage else [Request(kind="generate", prompt=str(sample.data["prompt"]))]

    def score(self, sample: Sample, completions: Sequence[Sequence[Completion]]) -> SampleScore:
        return SampleScore(sample.id, {"rating": float(completions[0][0].text)})


def make_graded_run(store: Store, tmp_path: Path, name: str, ratings: np.ndarray, tags: Sequence[str]) -> str:
    data = tmp_path / "graded.jsonl"
    data.write_text("".join(json.dumps({"id": f"g{i}", "prompt": f"Rate thing {i}"}) + "\n" for i in range(len(ratings))))
    answers = tmp_path / f"{name}.jsonl"
    answers.write_text("".join(json.dumps({"id": f"g{i}", "completion": str(int(r))}) + "\n" for i, r in enumerate(ratings)))
    config = RunConfig(suites=[SuiteConfig(name="graded-test", data=str(data))],
                       model=ModelConfig(backend="file", completions=str(answers)), tags=list(tags))
    (result,) = Runner(config, store, show_progress=False).run()
    return result.run_id


def test_a_tag_selects_one_run_per_suite_and_graded_scores_use_wilcoxon(
    tmp_path: Path, db: tuple[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SUITES, "graded-test", "tests.test_gate:GradedSuite")
    url, store = db
    rng = np.random.default_rng(8)
    quality = rng.uniform(3, 8, 300)
    base = np.clip(np.round(quality + rng.normal(0, 1, 300)), 1, 10)
    worse = np.clip(base - (rng.uniform(size=300) < 0.3), 1, 10)  # 30% of answers lose a point
    data = write_data(tmp_path / "d.jsonl", 100)
    rag = write_answers(tmp_path / "a.jsonl", [True] * 100)
    make_run(store, data, rag, ["main", "pr", "pr-missing"])
    make_graded_run(store, tmp_path, "base", base, ["main"])
    make_graded_run(store, tmp_path, "worse", worse, ["pr"])

    code, report = gate_cli(url, "--baseline", "main", "--candidate", "pr")
    assert set(report["baseline"]["runs"]) == {"rag-extraction", "graded-test"}
    checks = {c["suite"]: c for c in report["checks"]}
    assert checks["rag-extraction"]["status"] == "pass"
    graded = checks["graded-test"]
    assert graded["metric"] == "rating" and graded["status"] == "fail"
    assert graded["comparison"]["test"]["method"] == "sign-exact"  # every non-zero |d| is 1 point: the exact sign test
    assert graded["p_adjusted"] == pytest.approx(min(1.0, 2 * graded["comparison"]["p_value"]))  # Holm over 2 checks
    assert code == 1

    code, report = gate_cli(url, "--baseline", "main", "--candidate", "pr-missing")
    assert code == 2
    assert {c["suite"]: c["reason"] for c in report["checks"]}["graded-test"] == "suite missing from the candidate"

    make_graded_run(store, tmp_path, "again", base, ["only-graded"])
    res = cli.invoke(app, ["compare", "pr-missing", "only-graded", "--db", url])
    assert res.exit_code == 2 and "no suite in common" in res.stderr
    res = cli.invoke(app, ["compare", "main", "pr", "--db", url, "--json"])
    assert [c["suite"] for c in json.loads(res.stdout)["comparisons"]] == ["graded-test", "rag-extraction"]


# ---- compare --------------------------------------------------------------------------------------


def test_compare_json_and_markdown(tmp_path: Path, db: tuple[str, Store]) -> None:
    url, store = db
    data = write_data(tmp_path / "d.jsonl", 100)
    base, cand = correlated_pair(100, 0.6, 10, seed=4)
    cand[np.flatnonzero(~base)[:3]] = True  # 3 improvements next to 10 regressions
    a = make_run(store, data, write_answers(tmp_path / "a.jsonl", base), ["main"])
    b = make_run(store, data, write_answers(tmp_path / "b.jsonl", cand), ["pr"])
    res = cli.invoke(app, ["compare", a, b, "--db", url, "--json", "--top", "4"])
    assert res.exit_code == 0, res.output
    (comp,) = json.loads(res.stdout)["comparisons"]
    em = next(m for m in comp["metrics"] if m["metric"] == "exact_match")
    assert em["flips"] == {"improved": 3, "regressed": 10, "unchanged": 87}
    assert em["delta"] == pytest.approx(-0.07)
    assert em["ci"]["low"] < -0.07 < em["ci"]["high"]
    assert em["p_value"] == pytest.approx(2 * sum(__import__("math").comb(13, k) for k in range(4)) / 2**13)
    assert len(comp["worst_regressions"]) == 4 and comp["worst_metric"] == "f1"
    worst = comp["worst_regressions"][0]
    assert worst["candidate_completion"] == "Item" and worst["baseline_scores"]["exact_match"] == 1.0
    assert {m["metric"] for m in comp["metrics"]} >= {"answerable/f1", "abstained", "supported"}
    md = cli.invoke(app, ["compare", "main", "pr", "--db", url, "--markdown"])
    assert md.exit_code == 0 and "| exact_match ↑ |" in md.stdout and "Worst regressions" in md.stdout
    table = cli.invoke(app, ["compare", "main", "pr", "--db", url])
    assert table.exit_code == 0 and "exact_match" in table.stdout


# ---- calibration (seeded simulations) -------------------------------------------------------------

FAST = Defaults(resamples=200)


def _verdict(rule: Rule, a: np.ndarray, b: np.ndarray, hib: bool = True) -> str:
    (check,) = decide([judge_metric(rule, a, b, hib, FAST)])
    return check.status


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binary", "graded"])
def test_false_fail_rate_on_same_quality_pairs_is_at_most_alpha(kind: str) -> None:
    """1,000 pairs of runs of equal quality (correlated through per-sample difficulty): the gate
    (max_drop 0, alpha 0.05) must fail at most 5% of them."""
    rng = np.random.default_rng(2026)
    rule = Rule("sim", "score", max_drop=0.0, alpha=0.05, min_samples=30, test="auto", required=True)
    fails = 0
    for _ in range(1000):
        if kind == "binary":
            difficulty = rng.beta(2, 1, size=300)
            a = (rng.uniform(size=300) < difficulty).astype(float)
            b = (rng.uniform(size=300) < difficulty).astype(float)
        else:
            quality = rng.uniform(3, 8, size=300)
            a = np.clip(np.round(quality + rng.normal(0, 1, 300)), 1, 10)
            b = np.clip(np.round(quality + rng.normal(0, 1, 300)), 1, 10)
        fails += _verdict(rule, a, b) == "fail"
    assert fails / 1000 <= 0.05


def test_small_drop_on_50_samples_is_not_significant_and_reports_its_mde() -> None:
    rng = np.random.default_rng(11)
    base = rng.uniform(0.2, 0.8, size=50)
    noise = rng.normal(0, 0.05, 50)
    cand = base - 0.005 + (noise - noise.mean())  # observed drop exactly 0.5 points
    rule = Rule("sim", "f1", max_drop=0.0, alpha=0.05, min_samples=30, test="auto", required=True)
    (check,) = decide([judge_metric(rule, base, cand, True, FAST)])
    assert check.status == "pass"
    assert check.comparison is not None and check.comparison.worse_by == pytest.approx(0.005)
    assert check.p_adjusted is not None and check.p_adjusted >= 0.05
    assert check.comparison.mde is not None and check.comparison.mde > 0.005
    assert f"minimum detectable effect {check.comparison.mde:.4g}" in check.reason
    assert check.underpowered
    text = to_markdown(GateReport(None, None, "base", "cand", [check]))
    assert f"only drops of about {check.comparison.mde:.4g} or more are reliably detected" in text
    tolerant = Rule("sim", "f1", max_drop=0.01, alpha=0.05, min_samples=30, test="auto", required=True)
    (loose,) = decide([judge_metric(tolerant, base, cand, True, FAST)])
    assert loose.status == "pass" and loose.too_small and not loose.underpowered


def test_holm_correction_across_metrics_changes_the_verdict() -> None:
    """p = 0.03 alone fails at alpha 0.05, but not as one of three metrics (Holm: 3 x 0.03 = 0.09)."""
    base, cand = np.ones(200), np.ones(200)
    cand[:10] = 0.0
    base[10:12] = 0.0  # 10 losses, 2 wins: one-sided exact McNemar p = 0.0193
    rule = Rule("sim", "m", max_drop=0.0, alpha=0.05, min_samples=30, test="auto", required=True)
    same = judge_metric(rule, base, base, True, FAST)
    alone = decide([judge_metric(rule, base, cand, True, FAST)])
    together = decide([judge_metric(rule, base, cand, True, FAST), same, same])
    assert alone[0].status == "fail"
    assert together[0].status == "pass" and together[0].p_adjusted == pytest.approx(3 * alone[0].p_adjusted)


# ---- acceptance: real SQuAD 2.0 questions ---------------------------------------------------------

SQUAD = SHARED_DATA / "rag" / "squad_v2_dev_subset.json"


@pytest.mark.acceptance
@pytest.mark.skipif(not SQUAD.is_file(), reason=f"real SQuAD 2.0 subset not found at {SQUAD} (shared data absent)")
def test_gate_on_real_squad_questions(tmp_path: Path, db: tuple[str, Store]) -> None:
    """1,407 real questions: a perfect reader vs the same reader abstaining on every 10th answerable question."""
    from suites.rag_extraction import RagExtractionSuite

    url, store = db
    questions = RagExtractionSuite().load(str(SQUAD))
    answerable = [s.id for s in questions if s.data["answers"]]
    dropped = set(answerable[::10])

    def answers(path: Path, skip: set[str]) -> Path:
        with path.open("w", encoding="utf-8") as fh:
            for s in questions:
                text = s.data["answers"][0] if s.data["answers"] and s.id not in skip else "unanswerable"
                fh.write(json.dumps({"id": s.id, "completion": text}) + "\n")
        return path

    perfect = answers(tmp_path / "perfect.jsonl", set())
    make_run(store, SQUAD, perfect, ["main"])
    make_run(store, SQUAD, perfect, ["same"])
    make_run(store, SQUAD, answers(tmp_path / "worse.jsonl", dropped), ["pr"])
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "same")
    assert code == 0 and report["checks"][0]["comparison"]["n"] == len(questions)
    code, report = gate_cli(url, "--baseline", "main", "--candidate", "pr")
    assert code == 1
    comp = report["checks"][0]["comparison"]
    assert comp["flips"]["regressed"] == len(dropped)
    assert comp["delta"] == pytest.approx(-len(dropped) / len(questions), abs=1e-9)
