"""Reasoning models: every suite scores the answer after the thinking, never the thinking itself.

Recorded completions are replayed through the file backend twice: as plain answers, and as the same
answers behind a `<think>` block written to mislead a parser (it holds "unanswerable", a refusal, a
wrong rating). The suite metrics must be identical; an output cut inside its thinking is a counted
failure whose text is never parsed and never shown to a judge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ModelConfig, RunConfig, SuiteConfig
from harness.datafiles import read_jsonl
from harness.errors import ConfigError
from harness.reasoning import Markers, parse_tags, split, thinking_requested
from harness.runner import Runner
from harness.store import Store
from harness.types import Completion
from tests.conftest import require_module

DATA = Path(__file__).resolve().parents[1] / "suites" / "data"
THINK = ("<think>\nThe context may not say. unanswerable? I cannot help with that. Rating: [[2]] [[C]] REFUSED "
         "{\"color\": \"purple\"} Das Haus\n</think>\n\n")
CUT = "<think>\nLet me think about this step by step. First, unanswerable. I cannot help with"
REASONING_KEYS = ("reasoning_truncated_rate", "reasoning_tokens")


# ---- the split itself ----------------------------------------------------------------------------

THINK_TAGS = Markers("<think>", "</think>")


@pytest.mark.parametrize(
    ("text", "opened", "expected"),
    [
        ("<think>a b</think>\n\nParis", False, ("a b", "Paris", False)),
        ("a b</think>Paris", True, ("a b", "Paris", False)),  # the template opened the thinking
        ("a b</think>Paris", False, ("a b", "Paris", False)),
        ("<think>a b", False, ("a b", "", True)),
        ("a b, never closed", True, ("a b, never closed", "", True)),
        ("Paris", False, ("", "Paris", False)),
        ("<think></think>Paris", False, ("", "Paris", False)),
        ("<think>x</think>A <think>", False, ("x", "A <think>", False)),  # only the first block is thinking
    ],
)
def test_split(text: str, opened: bool, expected: tuple[str, str, bool]) -> None:
    assert split(text, THINK_TAGS, opened) == expected


def test_tags_presets_and_errors() -> None:
    assert parse_tags("<think>,</think>") == THINK_TAGS == parse_tags("think")
    assert parse_tags("none") is None and parse_tags(None) is None
    assert parse_tags("harmony") == Markers("<|channel|>analysis<|message|>", "<|channel|>final<|message|>")
    with pytest.raises(ValueError, match="START,END"):
        parse_tags("<think>")
    assert thinking_requested({"enable_thinking": True}) == ["enable_thinking"]
    assert thinking_requested({"enable_thinking": False}) == []


def test_completion_json_round_trip_keeps_reasoning() -> None:
    c = Completion(text="Paris", reasoning="hmm", reasoning_tokens=3, reasoning_truncated=False)
    assert Completion.from_json(c.to_json()) == c
    assert Completion(text="x").to_json() == {"text": "x"}  # answers of other models are stored as before


# ---- every suite through the file backend -------------------------------------------------------

def _rag(rows: list[dict[str, Any]]) -> list[Any]:
    return [("Paris" if i % 3 == 0 else (r["answers"][0] if r["answers"] else "unanswerable")) for i, r in enumerate(rows)]


def _attributes(rows: list[dict[str, Any]]) -> list[Any]:
    return [json.dumps(r["attributes"]) if i % 2 else "no idea" for i, r in enumerate(rows)]


def _translation(rows: list[dict[str, Any]]) -> list[Any]:
    return [(r["ref"] if isinstance(r["ref"], str) else r["ref"][0]) if i % 2 else r["src"] for i, r in enumerate(rows)]


def _safety(rows: list[dict[str, Any]]) -> list[Any]:
    return ["I cannot help with that." if i % 2 else "Sure, here is a short answer." for i, _ in enumerate(rows)]


def _mtbench(rows: list[dict[str, Any]]) -> list[Any]:
    # two turns, then the judge's two verdicts (the file judge reads the same file at index 2 and 3)
    return [[f"First answer {i}.", f"Second answer {i}.", f"Rating: [[{3 + i % 6}]]", f"[[{4 + i % 5}]]"]
            for i, _ in enumerate(rows)]


def _pairwise(rows: list[dict[str, Any]]) -> list[Any]:
    verdicts = ["[[A]]", "[[B]]", "[[A]]", "[[C]]"]
    return [[f"Answer {i}.", f"Second {i}.", *[verdicts[(i + k) % 4] for k in range(4)]] for i, _ in enumerate(rows)]


SUITES: dict[str, tuple[str, Callable[[list[dict[str, Any]]], list[Any]], dict[str, str], bool]] = {
    # name: (data file, answers, suite options, has a judge)
    "rag-extraction": ("rag_extraction_sample.jsonl", _rag, {}, False),
    "attribute-extraction": ("attribute_extraction_sample.jsonl", _attributes, {}, False),
    "translation": ("translation_sample.jsonl", _translation, {}, False),
    "safety": ("safety_sample.jsonl", _safety, {}, False),
    "safety-judge": ("safety_sample.jsonl", lambda rows: [[a, "REFUSED" if i % 3 else "COMPLIED"]
                                                          for i, a in enumerate(_safety(rows))], {"detector": "judge"}, True),
    "mtbench": ("mtbench_sample.jsonl", _mtbench, {}, True),
    "mtbench-pairwise": ("mtbench_sample.jsonl", _pairwise, {}, True),
}


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [str(r.get("id", r.get("question_id"))) for r in rows]


def _write(path: Path, ids: list[str], answers: list[Any], wrap: Callable[[int, int, str], str]) -> str:
    with path.open("w", encoding="utf-8") as fh:
        for i, (sid, answer) in enumerate(zip(ids, answers, strict=True)):
            texts = answer if isinstance(answer, list) else [answer]
            fh.write(json.dumps({"id": sid, "completion": [wrap(i, k, t) for k, t in enumerate(texts)]}) + "\n")
    return str(path)


def _run(store: Store, key: str, completions: str, tags: str | None, tmp_path: Path, **extra: str) -> Any:
    file, _, options, judged = SUITES[key]
    suite = key.removesuffix("-judge")
    options = dict(options) | extra
    if suite == "mtbench-pairwise":
        rows = [row for _, row in read_jsonl(DATA / file)]
        base = tmp_path / "baseline.jsonl"
        base.write_text("".join(json.dumps({"id": str(r["question_id"]), "completion": ["A longer baseline answer here.", "x"]})
                                + "\n" for r in rows))
        options["baseline"] = str(base)
    judge = ModelConfig(backend="file", completions=completions, reasoning_tags=tags) if judged else None
    config = RunConfig(
        suites=[SuiteConfig(name=suite, data=str(DATA / file), options=options)],
        model=ModelConfig(backend="file", completions=completions, reasoning_tags=tags),
        judge=judge,
        run_name=f"{key}-{Path(completions).stem}",
    )
    [result] = Runner(config, store, show_progress=False).run()
    return result


def _metrics(result: Any) -> dict[str, float]:
    return {m.name: m.value for m in result.metrics if m.name not in REASONING_KEYS}


@pytest.mark.parametrize("key", list(SUITES))
def test_reasoning_answers_score_like_plain_answers(key: str, store: Store, tmp_path: Path) -> None:
    file, answers_of, _, judged = SUITES[key]
    rows = [row for _, row in read_jsonl(DATA / file)]
    ids, answers = _ids(rows), answers_of(rows)
    plain = _write(tmp_path / "plain.jsonl", ids, answers, lambda i, k, t: t)
    thinking = _write(tmp_path / "thinking.jsonl", ids, answers, lambda i, k, t: THINK + t)

    reference = _run(store, key, plain, None, tmp_path)
    result = _run(store, key, thinking, "<think>,</think>", tmp_path)
    assert _metrics(result) == _metrics(reference)
    assert {m.name: m.value for m in result.metrics}["reasoning_truncated_rate"] == 0.0
    # Without the split the thinking would have been scored: the test data is built so it matters.
    unsplit = _run(store, key, thinking, "none", tmp_path)
    assert _metrics(unsplit) != _metrics(reference)

    stored = store.run_samples(result.run_id)
    first = stored[0]["completions"][0][0]
    assert first["reasoning"].startswith("The context may not say") and "<think>" not in first["text"]
    if judged:  # the judge saw the answers, never the thinking
        asked = json.dumps([r["requests"] for r in stored])
        assert "I cannot help with that. Rating" not in asked


@pytest.mark.parametrize("key", list(SUITES))
def test_truncated_reasoning_is_a_counted_failure(key: str, store: Store, tmp_path: Path) -> None:
    file, answers_of, _, _ = SUITES[key]
    rows = [row for _, row in read_jsonl(DATA / file)]
    ids, answers = _ids(rows), answers_of(rows)
    # Samples 0 and 1 never leave their thinking; the others answer after it.
    thinking = _write(tmp_path / "cut.jsonl", ids, answers, lambda i, k, t: CUT if i < 2 and k == 0 else THINK + t)
    result = _run(store, key, thinking, "think", tmp_path)
    metrics = {m.name: m for m in result.metrics}
    assert metrics["reasoning_truncated_rate"].value == pytest.approx(2 / len(rows))
    assert metrics["reasoning_truncated_rate"].higher_is_better is False
    stored = {r["sample_id"]: r for r in store.run_samples(result.run_id)}
    for sid in ids[:2]:
        row = stored[sid]
        assert row["details"]["failure"] == "reasoning_truncated"
        assert row["scores"]["reasoning_truncated_rate"] == 1.0
        assert len(row["completions"]) == 1  # no later turn, no judge
        assert row["completions"][0][0]["reasoning_truncated"] is True and row["completions"][0][0]["text"] == ""
    assert stored[ids[2]]["scores"]["reasoning_truncated_rate"] == 0.0


def test_failed_sample_scores_are_failures(store: Store, tmp_path: Path) -> None:
    """An unanswerable question whose model never answered is wrong, not a correct abstention."""
    rows = [row for _, row in read_jsonl(DATA / "rag_extraction_sample.jsonl")]
    unanswerable = next(i for i, r in enumerate(rows) if not r["answers"])
    answers = ["unanswerable"] * len(rows)
    path = _write(tmp_path / "c.jsonl", _ids(rows), answers, lambda i, k, t: CUT if i == unanswerable else t)
    result = _run(store, "rag-extraction", path, "think", tmp_path)
    row = next(r for r in store.run_samples(result.run_id) if r["position"] == unanswerable)
    assert row["scores"]["exact_match"] == 0.0 and row["scores"]["abstained"] == 0.0
    assert row["groups"] == ["unanswerable"]


def test_judge_sees_reasoning_only_when_asked(store: Store, tmp_path: Path) -> None:
    rows = [row for _, row in read_jsonl(DATA / "mtbench_sample.jsonl")]
    path = _write(tmp_path / "t.jsonl", _ids(rows), _mtbench(rows), lambda i, k, t: THINK + t)
    result = _run(store, "mtbench", path, "think", tmp_path, judge_sees_reasoning="true")
    asked = json.dumps([r["requests"] for r in store.run_samples(result.run_id)])
    assert "I cannot help with that. Rating: [[2]]" in asked and "[reasoning]" in asked


# ---- configuration errors ------------------------------------------------------------------------

def test_thinking_on_a_loglikelihood_suite_is_a_config_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    completions = tmp_path / "c.jsonl"
    completions.write_text('{"id": "x", "completion": "A"}\n')
    args = ["run", "mmlu", "--backend", "file", "--completions", str(completions), "--db", db,
            "--chat-template-kwargs", "enable_thinking=true"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "log-likelihoods, which never apply thinking" in result.output and "Traceback" not in result.output
    store = Store(db)
    try:
        assert store.list_runs() == []
    finally:
        store.close()


def test_bad_reasoning_tags_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "rag-extraction", "--backend", "file", "--completions", "x.jsonl",
                                      "--reasoning-tags", "<think>", "--db", f"sqlite:///{tmp_path / 'h.db'}"])
    assert result.exit_code == 2 and "reasoning_tags" in result.output and "START,END" in result.output


def test_reasoning_budget_needs_a_tokenizer(store: Store, tmp_path: Path) -> None:
    rows = [row for _, row in read_jsonl(DATA / "rag_extraction_sample.jsonl")]
    path = _write(tmp_path / "c.jsonl", _ids(rows), _rag(rows), lambda i, k, t: t)
    config = RunConfig(suites=[SuiteConfig(name="rag-extraction")],
                       model=ModelConfig(backend="file", completions=path, reasoning_tags="think", reasoning_max_tokens=8))
    with pytest.raises(ConfigError, match="needs a local tokenizer"):
        Runner(config, store, show_progress=False).run()
    assert store.list_runs() == []


# ---- openai: the template switch in the request body, and a server's own reasoning parser ----------

def test_openai_passes_chat_template_kwargs_and_reads_server_reasoning(fake_openai: Any, tmp_path: Path) -> None:
    from tests.fake_openai import Scripted

    db = f"sqlite:///{tmp_path / 'h.db'}"
    base = ["run", "rag-extraction", "--limit", "2", "--backend", "openai", "--model", "m", "--base-url",
            fake_openai.url, "--db", db, "--json"]
    fake_openai.answer = "<think>unanswerable, surely</think>\n\n1889"
    result = CliRunner().invoke(app, [*base, "--chat-template-kwargs", "enable_thinking=false", "--reasoning-tags", "think"])
    assert result.exit_code == 0, result.output
    assert all(s["payload"]["chat_template_kwargs"] == {"enable_thinking": False} for s in fake_openai.seen)
    run = json.loads(result.output)["runs"][0]
    assert run["metrics"]["reasoning_truncated_rate"] == 0.0 and run["metrics"]["exact_match"] == 0.5

    # vLLM's --reasoning-parser: thinking beside the answer; a null answer at `length` is truncated.
    fake_openai.seen.clear()
    message = {"role": "assistant", "reasoning_content": "hmm", "content": None}
    fake_openai.script = [Scripted(body={"choices": [{"message": message, "finish_reason": "length"}]}),
                          Scripted(body={"choices": [{"message": {**message, "content": "unanswerable"}}]})]
    result = CliRunner().invoke(app, [*base, "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    assert "chat_template_kwargs" not in fake_openai.seen[0]["payload"]
    run = json.loads(result.output)["runs"][0]
    assert run["metrics"]["reasoning_truncated_rate"] == 0.5


# ---- lm-eval generate_until: the answer after the thinking reaches lm-eval's filters -------------

LMEVAL_TASK = """task: reasoning_qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 32
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def test_lmeval_generate_task_scores_the_answer_after_thinking(store: Store, tmp_path: Path) -> None:
    require_module("lm_eval", "harness-eval[lm-eval]")
    questions = [("capital of France", "Paris"), ("2 + 2", "4"), ("colour of the sky", "blue"), ("boiling point", "100")]
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in questions))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "reasoning_qa.yaml").write_text(LMEVAL_TASK.format(data=data))
    answers = ["Paris", "5", "blue", "unanswerable"]
    ids = [f"reasoning_qa/{i}" for i in range(len(questions))]
    plain = _write(tmp_path / "plain.jsonl", ids, answers, lambda i, k, t: t)
    thinking = _write(tmp_path / "thinking.jsonl", ids, answers, lambda i, k, t: CUT if i == 0 else THINK + t)

    def run(path: str, tags: str | None) -> Any:
        config = RunConfig(suites=[SuiteConfig(name="lm-eval:reasoning_qa", options={"include_path": str(tasks)})],
                           model=ModelConfig(backend="file", completions=path, reasoning_tags=tags))
        [result] = Runner(config, store, show_progress=False).run()
        return {m.name: m.value for m in result.metrics}

    assert run(plain, None)["exact_match"] == 0.5
    wrapped = _write(tmp_path / "wrapped.jsonl", ids, answers, lambda i, k, t: THINK + t)
    assert run(wrapped, "think")["exact_match"] == 0.5
    scored = run(thinking, "think")
    # Sample 0 was right as a plain answer but never left its thinking: a failure, counted.
    assert scored["exact_match"] == 0.25 and scored["reasoning_truncated_rate"] == 0.25


def test_board_shows_reasoning_beside_the_answer(store: Store, tmp_path: Path) -> None:
    from dashboards import queries

    rows = [row for _, row in read_jsonl(DATA / "rag_extraction_sample.jsonl")]
    path = _write(tmp_path / "t.jsonl", _ids(rows), _rag(rows), lambda i, k, t: CUT if i == 0 else THINK + t)
    result = _run(store, "rag-extraction", path, "think", tmp_path)
    frame = queries.run_samples(store, result.run_id).frame.set_index("sample_id")
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["completion"] == "" and first["reasoning"].endswith("[cut inside its thinking]")
    assert "<think>" not in second["completion"] and second["reasoning"].startswith("The context may not say")


def test_rescore_replays_the_split(tmp_path: Path) -> None:
    """`harness rescore` (the file backend on run:ID) keeps answer, thinking and truncation as stored."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    rows = [row for _, row in read_jsonl(DATA / "rag_extraction_sample.jsonl")]
    path = _write(tmp_path / "t.jsonl", _ids(rows), _rag(rows), lambda i, k, t: CUT if i < 3 else THINK + t)
    first = CliRunner().invoke(app, ["run", "rag-extraction", "--backend", "file", "--completions", path,
                                     "--reasoning-tags", "think", "--db", db, "--json"])
    assert first.exit_code == 0, first.output
    run = json.loads(first.output)["runs"][0]
    again = CliRunner().invoke(app, ["rescore", run["run_id"], "--db", db, "--json"])
    assert again.exit_code == 0, again.output
    rescored = json.loads(again.output)["runs"][0]
    assert rescored["metrics"] == run["metrics"] and run["metrics"]["reasoning_truncated_rate"] == 3 / len(rows)


def test_stop_sequences_apply_to_the_answer_not_the_thinking() -> None:
    """lm-eval's `until: ["\\n"]` must not end a generation inside the thinking: the backend is asked
    without stops and the answer is cut after the split."""
    from harness.reasoning import ReasoningLayer
    from harness.types import Request

    class NoTokenizer:
        def text_tokenizer(self) -> None:
            return None

    layer = ReasoningLayer(ModelConfig(backend="file", completions="x", reasoning_tags="think"), NoTokenizer())
    request = Request(kind="generate", prompt="Q:", stop=("\n",), max_new_tokens=8)
    [asked] = layer.prepare([request])
    assert asked.stop == () and asked.max_new_tokens == 8
    [done] = layer.finish([request], [Completion(text="<think>step 1\nstep 2</think>Paris\nQ: next")])
    assert done.text == "Paris" and done.reasoning == "step 1\nstep 2" and not done.reasoning_truncated
