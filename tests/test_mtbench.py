"""MT-Bench: judge parsing, loading errors, judging published answers through the file backend,
pairwise comparison of two stored runs, real two-turn generation on the tiny model, and rescoring."""

from __future__ import annotations

import ast
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.backends import create_backend
from harness.backends.base import Backend
from harness.cli import app
from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.errors import ConfigError, DataError
from harness.runner import Runner
from harness.store import Store
from harness.types import Completion, Request, sha256_text
from suites import create_suite
from suites.mtbench import CATEGORY_TEMPERATURE, _combine, clustered_mean, parse_rating, parse_verdict
from tests.conftest import SHARED_DATA

MT = SHARED_DATA / "mt_bench"
needs_data = pytest.mark.skipif(not (MT / "question.jsonl").is_file(), reason=f"shared MT-Bench data not found in {MT}")


# ---- parsing ------------------------------------------------------------------------------------

def fastchat_rating(judgment: str) -> float:
    """FastChat llm_judge's own parser (common.py, run_judge_single), the reference implementation."""
    match = re.search(r"\[\[(\d+\.?\d*)\]\]", judgment) or re.search(r"\[(\d+\.?\d*)\]", judgment)
    return ast.literal_eval(match.groups()[0]) if match else -1


RATING_CASES = [
    # text, our rating (None = invalid), whether FastChat's parser must give the same number
    ("The answer is correct and complete. Rating: [[9]]", 9.0, True),
    ("Rating: [[7.5]]", 7.5, True),
    ("Good. [[10]]", 10.0, True),
    ("Poor. [[1]]", 1.0, True),
    ("Rating: [8]", 8.0, True),  # single-bracket fallback
    ("Rating: [[6]] (see [2] above)", 6.0, True),  # double brackets win over a citation
    ("I rate it [[4]]. Final: [[4]]", 4.0, True),  # the same rating repeated is fine
    ("Rating: [[ 5 ]]", 5.0, False),  # FastChat misses the spaces; we read them
    ("The format is [[rating]]; here: [[3]]", 3.0, True),
    ("No rating given at all.", None, False),
    ("", None, False),
    ("Rating: [[11]]", None, False),  # FastChat would score 11
    ("Rating: [[0]]", None, False),
    ("First [[3]], on reflection [[8]]", None, False),  # FastChat silently takes 3
    ("Rating: [[seven]]", None, False),
]


@pytest.mark.parametrize(("text", "expected", "same_as_fastchat"), RATING_CASES)
def test_parse_rating(text: str, expected: float | None, same_as_fastchat: bool) -> None:
    rating = parse_rating(text)
    assert rating.value == expected
    if expected is None:
        assert rating.reason
    if same_as_fastchat:
        assert fastchat_rating(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[[A]]", "A"), ("Assistant B is better. [[B]]", "B"), ("[[C]]", "C"), ("It's a tie [[ C ]]", "C"),
     ("no verdict", None), ("[[A]] ... no, [[B]]", None), ("[A]", None)],
)
def test_parse_verdict(text: str, expected: str | None) -> None:
    assert parse_verdict(text) == expected


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [("A", "B", "win"), ("B", "A", "loss"), ("C", "C", "tie"), ("A", "A", "inconsistent"), ("B", "B", "inconsistent"),
     ("A", "C", "inconsistent"), (None, "B", None), ("A", None, None)],
)
def test_both_orders_combine_like_fastchat(first: str | None, second: str | None, outcome: str | None) -> None:
    assert _combine(first, second) == outcome


def test_clustered_mean_matches_reference_numbers() -> None:
    from scipy import stats

    values = [3.0, 7.0, 8.0, 2.0, 9.0]
    mean, se, n = clustered_mean([[v] for v in values])
    assert (mean, n) == (pytest.approx(5.8), 5)
    assert se == pytest.approx(stats.sem(values))  # one value per cluster: the usual standard error
    # Two perfectly correlated turns per question carry no more information than one.
    mean2, se2, n2 = clustered_mean([[v, v] for v in values])
    assert (mean2, n2) == (pytest.approx(5.8), 10)
    assert se2 == pytest.approx(stats.sem(values))
    assert clustered_mean([])[2] == 0


# ---- loading errors ------------------------------------------------------------------------------

def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


GOOD = {"question_id": 1, "category": "writing", "turns": ["a", "b"]}
BAD_QUESTIONS = [
    ({"category": "writing", "turns": ["a", "b"]}, "question_id", "missing"),
    ({**GOOD, "turns": ["only one"]}, "turns", "expected 2 turns, found 1"),
    ({k: v for k, v in GOOD.items() if k != "turns"}, "turns", "missing"),
    ({**GOOD, "turns": ["a", ""]}, "turns[1]", "empty"),
    ({**GOOD, "turns": "a"}, "turns", "expected a list"),
    ({**GOOD, "category": "poetry"}, "category", "unknown category 'poetry'"),
    ({**GOOD, "category": "math"}, "reference", "graded against a reference answer"),
    ({**GOOD, "category": "math", "reference": ["", "r2"]}, "reference[0]", "empty"),
]


@pytest.mark.parametrize(("row", "field", "problem"), BAD_QUESTIONS)
def test_bad_questions_name_file_line_and_field(tmp_path: Path, row: dict, field: str, problem: str) -> None:
    path = _write(tmp_path / "q.jsonl", [{**GOOD, "question_id": 0}, row])
    with pytest.raises(DataError) as info:
        create_suite("mtbench").load(path)
    assert (info.value.path, info.value.line, info.value.field) == (path, 2, field)
    assert problem in info.value.problem


def test_bad_reference_file_and_duplicates(tmp_path: Path) -> None:
    questions = _write(tmp_path / "q.jsonl", [{**GOOD, "category": "math"}])
    refs = _write(tmp_path / "r.jsonl", [{"question_id": 1, "choices": [{"turns": ["x"]}]}])
    with pytest.raises(DataError, match=r"r.jsonl, line 1, field 'choices\[0\].turns'"):
        create_suite("mtbench", {"references": refs}).load(questions)
    dup = _write(tmp_path / "d.jsonl", [GOOD, GOOD])
    with pytest.raises(DataError, match="line 2, field 'question_id': duplicate id 1"):
        create_suite("mtbench").load(dup)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        create_suite("mtbench", {"max_new_tokens": "lots"})
    bad_prompts = _write(tmp_path / "p.jsonl", [{"name": "x", "type": "single", "system_prompt": "",
                                                  "prompt_template": "{question}"}])
    with pytest.raises(DataError, match="lacks placeholder"):
        create_suite("mtbench", {"judge_prompts": bad_prompts})


def test_cli_bad_input_exits_2_and_stores_nothing(tmp_path: Path, tiny_model: Path) -> None:
    data = _write(tmp_path / "q.jsonl", [GOOD, {**GOOD, "question_id": 2, "turns": ["x"]}])
    db = str(tmp_path / "h.db")
    result = CliRunner().invoke(app, ["run", "mtbench", "--model", str(tiny_model), "--judge-model", str(tiny_model),
                                      "--data", data, "--db", db])
    assert result.exit_code == 2
    assert "line 2, field 'turns'" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    store = Store(db)
    assert store.list_runs() == []
    store.close()
    good = _write(tmp_path / "good.jsonl", [GOOD])
    missing_judge = CliRunner().invoke(app, ["run", "mtbench", "--model", str(tiny_model), "--data", good, "--db", db])
    assert missing_judge.exit_code == 2 and "needs a judge" in missing_judge.output
    store = Store(db)
    assert store.list_runs() == []
    store.close()


# ---- judging published answers through the file backend -----------------------------------------

class FakeJudge(Backend):
    """A deterministic judge: the rating is a hash of the prompt; every 9th answer has no rating at all."""

    name = "fake-judge"

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config or ModelConfig(path="judge"))
        self.asked: list[Request] = []

    @staticmethod
    def judge(prompt: str) -> tuple[str, float | None]:
        h = int(sha256_text(prompt)[:8], 16)
        if h % 9 == 0:
            return "I cannot decide on a rating.", None
        rating = h % 10 + 1
        return f"Some explanation. Rating: [[{rating}]]", float(rating)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self.asked.extend(requests)
        return [Completion(text=self.judge(r.messages[-1].content)[0]) for r in requests if r.messages]

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        raise NotImplementedError


def answers_jsonl(model: str, target: Path) -> str:
    """FastChat's published answer file converted to the file backend's {id, completion: [t1, t2]}."""
    with target.open("w", encoding="utf-8") as out:
        for line in (MT / "model_answer" / f"{model}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out.write(json.dumps({"id": str(row["question_id"]), "completion": row["choices"][0]["turns"]}) + "\n")
    return str(target)


def _factory(judge: Backend) -> Callable[[ModelConfig], Backend]:
    def make(cfg: ModelConfig) -> Backend:
        return judge if (cfg.path or "").startswith("judge") else create_backend(cfg)
    return make


def _mtbench_config(completions: str, suite: str = "mtbench", **options: str) -> RunConfig:
    opts = {"references": str(MT / "reference_answer_gpt-4.jsonl"), **options}
    return RunConfig(
        suites=[SuiteConfig(name=suite, data=str(MT / "question.jsonl"), options=opts)],
        model=ModelConfig(backend="file", completions=completions),
        judge=ModelConfig(path="judge", backend="hf"),
    )


@needs_data
@pytest.mark.acceptance
@pytest.mark.parametrize("prompts", ["default", "fastchat"])
def test_judges_published_answers_through_file_backend(tmp_path: Path, store: Store, prompts: str) -> None:
    completions = answers_jsonl("vicuna-13b-v1.3", tmp_path / "answers.jsonl")
    options = {"judge_prompts": str(MT / "judge_prompts.jsonl")} if prompts == "fastchat" else {}
    judge = FakeJudge()
    [result] = Runner(_mtbench_config(completions, **options), store, _factory(judge), show_progress=False).run()
    assert result.n_samples == 80 and len(judge.asked) == 160
    assert all(r.temperature == 0.0 and r.role == "judge" for r in judge.asked)

    # Expected numbers computed independently from what the judge was asked.
    questions = {str(json.loads(x)["question_id"]): json.loads(x) for x in (MT / "question.jsonl").read_text().splitlines()}
    refs = {str(json.loads(x)["question_id"]): json.loads(x) for x in (MT / "reference_answer_gpt-4.jsonl").read_text().splitlines()}
    answers = {json.loads(x)["id"]: json.loads(x)["completion"] for x in Path(completions).read_text().splitlines()}
    by_turn: dict[int, list[float]] = defaultdict(list)
    by_cat: dict[str, list[float]] = defaultdict(list)
    invalid = 0
    for req in judge.asked:
        qid = req.sample_id
        turn = 1 if req.index == 2 else 2
        text = req.messages[-1].content
        q = questions[qid]
        assert answers[qid][turn - 1] in text
        if turn == 2:  # the turn-2 judge sees the whole conversation
            assert q["turns"][0] in text and answers[qid][0] in text and q["turns"][1] in text
        if q["category"] in ("math", "reasoning", "coding"):  # reference-guided
            assert refs[qid]["choices"][0]["turns"][turn - 1] in text
        _, rating = FakeJudge.judge(text)
        if rating is None:
            invalid += 1
        else:
            by_turn[turn].append(rating)
            by_cat[q["category"]].append(rating)
    metrics = {m.name: m for m in result.metrics}
    everything = by_turn[1] + by_turn[2]
    assert invalid > 0
    assert metrics["judge_invalid_count"].value == invalid
    assert metrics["judge_invalid_rate"].value == pytest.approx(invalid / 160)
    assert metrics["score"].value == pytest.approx(sum(everything) / len(everything))
    assert metrics["score"].n == len(everything)
    assert metrics["score"].stderr is not None and metrics["score"].stderr > 0
    for t in (1, 2):
        assert metrics[f"turn{t}/score"].value == pytest.approx(sum(by_turn[t]) / len(by_turn[t]))
    for cat, values in by_cat.items():
        assert metrics[f"{cat}/score"].value == pytest.approx(sum(values) / len(values))
    assert set(by_cat) == set(CATEGORY_TEMPERATURE)

    # Invalid judgments are stored with their raw text, never as a score.
    rows = store.run_samples(result.run_id)
    bad = [j for r in rows for j in r["details"]["judgments"] if not j["valid"]]
    assert len(bad) == invalid and all(j["raw"] and j["rating"] is None for j in bad)
    assert all(r["details"]["reference_source"].endswith("reference_answer_gpt-4.jsonl")
               for r in rows if r["input"]["category"] == "math")


@needs_data
@pytest.mark.acceptance
@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_file_judge_and_rescore_through_cli(tmp_path: Path, database: str, request: pytest.FixtureRequest) -> None:
    """A judge that is itself a file of answers (turns, then judgments), then `harness rescore`."""
    answers = json.loads("[" + ",".join(Path(answers_jsonl("gpt-4", tmp_path / "a.jsonl")).read_text().splitlines()) + "]")
    judged = tmp_path / "judged.jsonl"
    with judged.open("w") as fh:
        for i, row in enumerate(answers):
            judgments = ["Rating: [[8]]", "[[9]]"] if i % 10 else ["Rating: [[11]]", "no idea"]
            fh.write(json.dumps({"id": row["id"], "completion": [*row["completion"], *judgments]}) + "\n")
    db = str(tmp_path / "h.db") if database == "sqlite" else request.getfixturevalue("pg_url")
    args = ["run", "mtbench", "--data", str(MT / "question.jsonl"), "--backend", "file", "--completions", str(judged),
            "--judge-backend", "file", "--judge-completions", str(judged), "--option",
            f"references={MT / 'reference_answer_gpt-4.jsonl'}", "--db", db, "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)["runs"][0]
    assert run["metrics"]["judge_invalid_count"] == 16  # 8 questions x 2 turns
    assert run["metrics"]["score"] == pytest.approx((72 * 8 + 72 * 9) / 144)
    assert run["metrics"]["turn1/score"] == 8.0 and run["metrics"]["turn2/score"] == 9.0

    again = CliRunner().invoke(app, ["rescore", run["run_id"], "--db", db, "--json"])
    assert again.exit_code == 0, again.output
    payload = json.loads(again.output)
    assert payload["source_run"] == run["run_id"] and payload["changed"] == {}
    assert payload["runs"][0]["run_id"] != run["run_id"]


# ---- pairwise ------------------------------------------------------------------------------------

class LengthJudge(Backend):
    """Prefers the longer answer shown to it (position-free); or always says A (pure position bias)."""

    name = "length-judge"

    def __init__(self, always_a: bool = False) -> None:
        super().__init__(ModelConfig(path="judge"))
        self.always_a = always_a

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        out = []
        for r in requests:
            text = r.messages[-1].content if r.messages else ""
            if self.always_a:
                out.append(Completion(text="[[A]]"))
                continue
            a = text.split("[Assistant A's answer]\n", 1)[-1].split("\n[End of assistant A's answer]", 1)[0]
            b = text.split("[Assistant B's answer]\n", 1)[-1].split("\n[End of assistant B's answer]", 1)[0]
            if "[Conversation with assistant A]" in text:
                a = text.split("[Conversation with assistant A]", 1)[1].split("[End of conversation with assistant A]")[0]
                b = text.split("[Conversation with assistant B]", 1)[1].split("[End of conversation with assistant B]")[0]
            out.append(Completion(text="[[A]]" if len(a) > len(b) else "[[B]]" if len(b) > len(a) else "[[C]]"))
        return out

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        raise NotImplementedError


@needs_data
@pytest.mark.acceptance
def test_pairwise_compares_two_stored_runs_in_both_orders(tmp_path: Path, store: Store) -> None:
    run_ids = {}
    for model in ("gpt-4", "llama-13b"):
        cfg = _mtbench_config(answers_jsonl(model, tmp_path / f"{model}.jsonl"))
        [res] = Runner(cfg, store, _factory(FakeJudge()), show_progress=False).run()
        run_ids[model] = res.run_id
    a = {r["sample_id"]: r["details"]["answers"] for r in store.run_samples(run_ids["gpt-4"])}
    b = {r["sample_id"]: r["details"]["answers"] for r in store.run_samples(run_ids["llama-13b"])}

    def pairwise(judge: Backend, name: str) -> dict[str, float]:
        cfg = RunConfig(
            suites=[SuiteConfig(name="mtbench-pairwise", data=str(MT / "question.jsonl"),
                                options={"references": str(MT / "reference_answer_gpt-4.jsonl"),
                                         "baseline": f"run:{run_ids['llama-13b']}"})],
            model=ModelConfig(backend="file", completions=f"run:{run_ids['gpt-4']}", options={"db": store.url}),
            judge=ModelConfig(path=name),  # another judge identity: its answers are cached apart
        )
        [res] = Runner(cfg, store, _factory(judge), show_progress=False).run()
        return {m.name: m.value for m in res.metrics}

    metrics = pairwise(LengthJudge(), "judge-length")
    # Expected from the answers themselves: turn 1 compares the answers, turn 2 the whole conversations.
    wins = losses = ties = 0
    for qid in a:
        for turn in (1, 2):
            la = len(a[qid][0]) if turn == 1 else len(a[qid][0]) + len(a[qid][1])
            lb = len(b[qid][0]) if turn == 1 else len(b[qid][0]) + len(b[qid][1])
            wins, losses, ties = wins + (la > lb), losses + (la < lb), ties + (la == lb)
    assert metrics["win_rate"] == pytest.approx(wins / 160)
    assert metrics["loss_rate"] == pytest.approx(losses / 160)
    assert metrics["win_rate_adjusted"] == pytest.approx((wins + ties / 2) / 160)
    assert metrics["inconsistent_rate"] == 0.0 and metrics["judge_invalid_rate"] == 0.0

    biased = pairwise(LengthJudge(always_a=True), "judge-biased")  # position bias cancels out into ties
    assert biased["tie_rate"] == 1.0 and biased["inconsistent_rate"] == 1.0 and biased["win_rate_adjusted"] == 0.5

    with pytest.raises(ConfigError, match="baseline"):
        create_suite("mtbench-pairwise", {})


# ---- the tiny model: real two-turn generation with a tiny judge ---------------------------------

@pytest.mark.slow
def test_two_turn_generation_on_tiny_model_with_tiny_judge(tmp_path: Path, tiny_model: Path, store: Store) -> None:
    model = ModelConfig(path=str(tiny_model), device="cpu")
    cfg = RunConfig(
        suites=[SuiteConfig(name="mtbench", limit=3, options={"max_new_tokens": "6", "judge_max_new_tokens": "6"})],
        model=model, judge=model, generation=GenerationConfig(seed=3),
    )
    made: list[ModelConfig] = []

    def factory(c: ModelConfig) -> Backend:
        made.append(c)
        return create_backend(c)

    [result] = Runner(cfg, store, factory, show_progress=False).run()
    assert result.status == "complete" and result.n_samples == 3
    assert len(made) == 1  # the judge is the model itself: loaded once
    metrics = {m.name: m for m in result.metrics}
    assert metrics["judge_invalid_count"].n == 6  # every judgment counted, valid or not
    valid = sum(m.n for name, m in metrics.items() if name == "score")
    assert metrics["judge_invalid_count"].value + valid == 6
    for row in store.run_samples(result.run_id):
        first, second = row["completions"][0][0]["text"], row["completions"][1][0]["text"]
        turn2 = row["requests"][1][0]["messages"]
        assert [m[0] for m in turn2] == ["user", "assistant", "user"]
        assert turn2[1][1] == first  # the second question follows the model's own first answer
        assert row["requests"][0][0]["temperature"] == CATEGORY_TEMPERATURE[row["input"]["category"]]
        judge_prompt = row["requests"][2][1]["messages"][-1][1]
        assert first in judge_prompt and second in judge_prompt
        assert all(r["role"] == "judge" for r in row["requests"][2])
        for j in row["details"]["judgments"]:
            assert j["valid"] == (j["rating"] is not None)
            assert j["valid"] or not math.isnan(row["scores"][f"invalid_turn{j['turn']}"])


@needs_data
def test_fastchat_question_file_is_read_as_published(tmp_path: Path) -> None:
    """Questions 103, 108 and 110 have an empty second reference turn in FastChat's own file:
    accepted, as FastChat does. The one graded question without any inline reference (123) still
    asks for a reference file, which FastChat always reads."""
    with pytest.raises(DataError) as info:
        create_suite("mtbench").load(str(MT / "question.jsonl"))
    assert "question 123 has none" in info.value.problem
    rows = [json.loads(x) for x in (MT / "question.jsonl").read_text(encoding="utf-8").splitlines()]
    path = _write(tmp_path / "q.jsonl", [r for r in rows if r["question_id"] != 123])
    samples = {s.id: s for s in create_suite("mtbench").load(path)}
    assert len(samples) == 79 and samples["103"].data["reference"] == ["Thomas may work at a hospital.", ""]


def test_pairwise_standard_error_is_clustered_by_question(tmp_path: Path) -> None:
    """Both turns of a question share it: the pairwise win rate's standard error treats the question as the unit."""
    from harness.types import SampleScore

    outcomes = [1.0, 1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 1.0, 0.0, 1.0]
    scores = [SampleScore(str(q), {"invalid_turn1": 0.0, "turn1": v, "invalid_turn2": 0.0, "turn2": v}, groups=("writing",))
              for q, v in enumerate(outcomes)]
    suite = create_suite("mtbench-pairwise", {"baseline": str(tmp_path / "baseline.jsonl")})
    metrics = {m.name: m for m in suite.aggregate(scores)}
    _, per_question, _ = clustered_mean([[v, v] for v in outcomes])
    _, per_turn, _ = clustered_mean([[v] for v in outcomes + outcomes])
    assert metrics["win_rate_adjusted"].stderr == pytest.approx(per_question)
    assert metrics["writing/win_rate_adjusted"].stderr == pytest.approx(per_question)
    assert per_question is not None and per_turn is not None and per_question > per_turn * 1.3
