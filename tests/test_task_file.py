"""Task files (`harness run path/to/task.yaml`): the YAML form of a built-in suite scores the same,
`evaluate` and `python:` scorers, identity, and bad task files stopped before any run row exists."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.comparison.runs import primary_metric
from harness.store import Store

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "product-attributes.yaml"
ATTR_DATA = REPO / "suites" / "data" / "attribute_extraction_sample.jsonl"


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["run", *args])


def run_json(*args: str) -> dict[str, Any]:
    result = run_cli(*args, "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["runs"][0]  # type: ignore[no-any-return]


def varied_answers(tmp_path: Path) -> Path:
    """Right, partly right, wrong, prose and empty answers to the 40 bundled product descriptions."""
    rows = [json.loads(line) for line in ATTR_DATA.read_text().splitlines() if line.strip()]
    out = []
    for i, row in enumerate(rows):
        attrs = dict(row["attributes"])
        kind = i % 5
        if kind == 1:
            attrs.pop(next(iter(attrs)))
        elif kind == 2:
            attrs["color"] = "purple"
            attrs["size"] = "XL"
        answer = {0: json.dumps(attrs), 1: f"Sure! {json.dumps(attrs)}", 2: json.dumps(attrs),
                  3: f"It is a {' '.join(map(str, attrs.values()))}.", 4: ""}[kind]
        out.append({"id": row["id"], "completion": answer})
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path


def test_yaml_attribute_extraction_gives_the_builtin_per_sample_scores(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    answers = str(varied_answers(tmp_path))
    builtin = run_json("attribute-extraction", "--backend", "file", "--completions", answers, "--db", db)
    task = run_json(str(EXAMPLE), "--backend", "file", "--completions", answers, "--db", db)
    assert task["metrics"] == builtin["metrics"]
    assert 0 < builtin["metrics"]["field_f1"] < 1 and len(set(builtin["metrics"].values())) > 2, "degenerate answers"
    store = Store(db)
    try:
        a, b = store.run_samples(builtin["run_id"]), store.run_samples(task["run_id"])
        assert [(r["sample_id"], r["scores"]) for r in a] == [(r["sample_id"], r["scores"]) for r in b]
        assert [r["requests"] for r in a] == [r["requests"] for r in b]  # the same question, so answers share a cache
        stored = store.get_run(task["run_id"])["config"]["suite_identity"]["task_file"]
        assert stored["text"] == EXAMPLE.read_text() and stored["path"] == str(EXAMPLE)
    finally:
        store.close()
    assert primary_metric(str(EXAMPLE), ["exact_match", "field_f1"]) == "field_f1"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


QA_ROWS = [
    {"qid": "q1", "question": "Capital of France?", "answer": "Paris", "topic": "geo"},
    {"qid": "q2", "question": "Two plus two?", "answer": "four", "topic": "math"},
    {"qid": "q3", "question": "Largest planet?", "answer": "Jupiter", "topic": "geo"},
    {"qid": "q4", "question": "Square root of nine?", "answer": "3", "topic": "math"},
]
QA_ANSWERS = {"q1": "Paris.", "q2": "It is 4", "q3": "Jupiter", "q4": "three"}


def qa_task(folder: Path, scorers: str) -> Path:
    write(folder / "qa.jsonl", "".join(json.dumps(r) + "\n" for r in QA_ROWS))
    write(folder / "answers.jsonl", "".join(json.dumps({"id": k, "completion": v}) + "\n" for k, v in QA_ANSWERS.items()))
    entries = textwrap.indent(textwrap.dedent(scorers).strip(), "  ")
    text = ("data: {path: qa.jsonl, id: qid, reference: answer, group: topic}\n"
            'request:\n  template: "Q: {question}"\n'
            f"scorers:\n{entries}\n")
    return write(folder / "qa.yaml", text)


METRIC_SCRIPT = '''
import datasets
import evaluate


class CharRatio(evaluate.Metric):
    """Corpus-level: total matching characters over total reference characters (not a mean)."""

    def _info(self):
        return evaluate.MetricInfo(
            description="test metric", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        same = sum(sum(a == b for a, b in zip(p.lower(), r.lower())) for p, r in zip(predictions, references))
        return {"char_ratio": same / sum(len(r) for r in references), "n": len(predictions)}
'''


def test_evaluate_metric_from_a_local_script_equals_calling_evaluate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    script = write(tmp_path / "metrics" / "char_ratio.py", METRIC_SCRIPT)
    task = qa_task(tmp_path, """
        - {use: "evaluate:metrics/char_ratio.py", args: {key: char_ratio}}
        - exact_match
        """)
    db = f"sqlite:///{tmp_path / 'h.db'}"
    run = run_json(str(task), "--backend", "file", "--completions", str(tmp_path / "answers.jsonl"), "--db", db)

    import evaluate

    preds, refs = [QA_ANSWERS[r["qid"]] for r in QA_ROWS], [r["answer"] for r in QA_ROWS]
    direct = evaluate.load(str(script)).compute(predictions=preds, references=refs)
    assert run["metrics"]["char_ratio"] == pytest.approx(direct["char_ratio"], abs=1e-12)
    geo = [i for i, r in enumerate(QA_ROWS) if r["topic"] == "geo"]
    by_group = evaluate.load(str(script)).compute(predictions=[preds[i] for i in geo], references=[refs[i] for i in geo])
    assert run["metrics"]["topic/geo/char_ratio"] == pytest.approx(by_group["char_ratio"], abs=1e-12)
    assert run["metrics"]["exact_match"] == 0.5  # Paris. and Jupiter, after SQuAD normalisation
    store = Store(db)
    try:
        row = next(m for m in store.run_metrics(run["run_id"]) if m["name"] == "char_ratio")
        assert row["details"]["result"] == json.loads(json.dumps(direct)) and row["details"]["level"] == "corpus"
    finally:
        store.close()
    # Editing the metric script changes the run's identity (a stale run is never resumed).
    write(script, METRIC_SCRIPT.replace("p.lower()", "p"))
    again = run_json(str(task), "--backend", "file", "--completions", str(tmp_path / "answers.jsonl"), "--db", db)
    store = Store(db)
    try:
        assert store.get_run(again["run_id"])["config_hash"] != store.get_run(run["run_id"])["config_hash"]
    finally:
        store.close()


def test_python_scorer_and_regex(tmp_path: Path) -> None:
    write(tmp_path / "my_scorers.py", """
        def mentions_answer(prediction, references, data):
            return float(any(r.lower() in prediction.lower() for r in references)) + (data["topic"] == "math") * 10
        """)
    task = qa_task(tmp_path, """
        - python:my_scorers:mentions_answer
        - {name: has_digit, use: regex, args: {pattern: "[0-9]"}}
        """)
    db = f"sqlite:///{tmp_path / 'h.db'}"
    run = run_json(str(task), "--backend", "file", "--completions", str(tmp_path / "answers.jsonl"), "--db", db)
    store = Store(db)
    try:
        scores = {r["sample_id"]: r["scores"] for r in store.run_samples(run["run_id"])}
    finally:
        store.close()
    assert {k: v["mentions_answer"] for k, v in scores.items()} == {"q1": 1.0, "q2": 10.0, "q3": 1.0, "q4": 10.0}
    assert {k: v["has_digit"] for k, v in scores.items()} == {"q1": 0.0, "q2": 1.0, "q3": 0.0, "q4": 0.0}
    assert run["metrics"]["topic/math/mentions_answer"] == 10.0


def test_editing_the_task_file_changes_the_run_identity(tmp_path: Path) -> None:
    task = qa_task(tmp_path, "- exact_match")
    db = f"sqlite:///{tmp_path / 'h.db'}"
    args = (str(task), "--backend", "file", "--completions", str(tmp_path / "answers.jsonl"), "--db", db)
    runs = [run_json(*args), run_json(*args)]
    task.write_text(task.read_text().replace("Q: ", "Question: "))
    runs.append(run_json(*args))
    store = Store(db)
    try:
        hashes = [store.get_run(r["run_id"])["config_hash"] for r in runs]
    finally:
        store.close()
    assert hashes[0] == hashes[1] != hashes[2]


def test_bleu_scorer_is_sacrebleus_corpus_bleu(tmp_path: Path) -> None:
    import sacrebleu

    task = qa_task(tmp_path, "- bleu\n- chrf")
    run = run_json(str(task), "--backend", "file", "--completions", str(tmp_path / "answers.jsonl"),
                   "--db", f"sqlite:///{tmp_path / 'h.db'}")
    preds, refs = [QA_ANSWERS[r["qid"]] for r in QA_ROWS], [r["answer"] for r in QA_ROWS]
    assert run["metrics"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert run["metrics"]["chrf"] == pytest.approx(sacrebleu.corpus_chrf(preds, [refs]).score)


BAD_CASES = {
    # case: (task file text, data rows or None for QA_ROWS, expected substrings: file, line, field)
    "unknown key": (
        """
        data: {path: qa.jsonl, reference: answer}
        request:
          template: "Q: {question}"
          max_tokens: 20
        scorers: [exact_match]
        """, None, ["qa.yaml", "line 4", "request.max_tokens", "unknown key"]),
    "missing field in the data": (
        """
        data: {path: qa.jsonl, reference: answer}
        request: {template: "Q: {question}"}
        scorers: [exact_match]
        """, [{"question": "a", "answer": "b"}, {"question": "c"}], ["qa.jsonl", "line 2", "field 'answer'", "missing"]),
    "template names an absent field": (
        """
        data: {path: qa.jsonl, reference: answer}
        request:
          style: chat
          template: "Context: {{ context }}\\nQ: {{ question }}"
        scorers: [exact_match]
        """, None, ["qa.yaml", "line 4", "request.template", "'context'"]),
    "reference is not a JSON object": (
        """
        data: {path: qa.jsonl, reference: answer}
        request: {template: "Q: {question}"}
        scorers: [json_field_f1]
        """, [{"question": "a", "answer": {"color": "red"}}, {"question": "c", "answer": "red"}],
        ["qa.jsonl", "line 2", "field 'answer'", "needs a JSON object"]),
    "bad extract regex": (
        """
        data: {path: qa.jsonl, reference: answer}
        request:
          template: "Q: {question}"
          extract: "Answer: (.*"
        scorers: [exact_match]
        """, None, ["qa.yaml", "line 4", "request.extract", "not a valid regular expression"]),
    "unknown scorer": (
        """
        data: {path: qa.jsonl, reference: answer}
        request: {template: "Q: {question}"}
        scorers:
          - exact_match
          - {name: fuzzy, use: exact_mach}
        """, None, ["qa.yaml", "line 5", "scorers[1].use", "unknown scorer 'exact_mach'", "exact_match"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
@pytest.mark.parametrize("via", ["argument", "config"])
def test_bad_task_files_exit_2_naming_file_line_and_field_before_any_run(tmp_path: Path, case: str, via: str) -> None:
    text, rows, expected = BAD_CASES[case]
    rows = rows or QA_ROWS
    write(tmp_path / "qa.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    task = write(tmp_path / "qa.yaml", text)
    answers = write(tmp_path / "answers.jsonl", '{"id": "1", "completion": "x"}\n')
    db = f"sqlite:///{tmp_path / 'h.db'}"
    if via == "argument":
        result = run_cli(str(task), "--backend", "file", "--completions", str(answers), "--db", db)
    else:  # a good suite first: the bad task file must still stop everything before the first run
        config = write(tmp_path / "run.yaml", f"""
            suites: [{{name: attribute-extraction}}, {{name: {json.dumps(str(task))}}}]
            model: {{backend: file, completions: {json.dumps(str(answers))}}}
            """)
        result = run_cli("--config", str(config), "--db", db)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert message.startswith("error:") and "Traceback" not in result.output
    for part in expected:
        assert part in message, (part, message)
    store = Store(db)
    try:
        assert store.list_runs() == []
    finally:
        store.close()


def test_gate_show_and_rescore_read_the_task_file(tmp_path: Path) -> None:
    """The gate leads with the task's primary metric; `runs show` prints the stored task file;
    `rescore` says when the file on disk is no longer the one the run was scored with."""
    task = tmp_path / "attrs.yaml"
    task.write_text(EXAMPLE.read_text().replace("../suites/data/", str(ATTR_DATA.parent) + "/"))
    db = f"sqlite:///{tmp_path / 'h.db'}"
    answers = varied_answers(tmp_path)
    base = run_json(str(task), "--backend", "file", "--completions", str(answers), "--db", db, "--tag", "base")
    cand = run_json(str(task), "--backend", "file", "--completions", str(answers), "--db", db, "--tag", "cand")
    gate = CliRunner().invoke(app, ["gate", "--baseline", "base", "--candidate", "cand", "--db", db, "--json"])
    assert gate.exit_code == 0, gate.output
    checks = json.loads(gate.stdout)["checks"]
    assert [(c["suite"], c["metric"], c["status"]) for c in checks] == [(str(task), "field_f1", "pass")]
    shown = CliRunner().invoke(app, ["runs", "show", base["run_id"], "--db", db])
    assert shown.exit_code == 0 and "scorers:" in shown.output and "json_field_f1" in shown.output
    same = CliRunner().invoke(app, ["rescore", cand["run_id"], "--db", db, "--json"])
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["task_file_changed"] is None and json.loads(same.stdout)["changed"] == {}
    task.write_text(task.read_text().replace("  - value_recall\n", ""))
    changed = CliRunner().invoke(app, ["rescore", cand["run_id"], "--db", db, "--json"])
    assert changed.exit_code == 0, changed.output
    report = json.loads(changed.stdout)
    assert "changed since run" in report["task_file_changed"]
    assert report["changed"] == {"value_recall": {"before": base_value_recall(db, cand["run_id"]), "after": None}}


def base_value_recall(db: str, run_id: str) -> float:
    store = Store(db)
    try:
        return next(m["value"] for m in store.run_metrics(run_id) if m["name"] == "value_recall")
    finally:
        store.close()


def test_the_docs_examples_are_valid_task_files(tmp_path: Path) -> None:
    from suites.task_file import load_task_file

    text = (REPO / "docs" / "custom-tasks.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    assert len(blocks) == 2 and len(blocks[0].strip().splitlines()) == 10
    for i, block in enumerate(blocks):
        spec = load_task_file(str(write(tmp_path / f"doc{i}.yaml", block))).spec
        assert spec.scorer_specs()


def test_chat_and_plain_prompts_with_few_shot_examples_settings_and_extract(tmp_path: Path) -> None:
    from harness.config import GenerationConfig
    from harness.types import Completion, Message
    from suites import create_suite

    write(tmp_path / "qa.jsonl", "".join(json.dumps(r) + "\n" for r in QA_ROWS))
    write(tmp_path / "shots.jsonl", '{"question": "Colour of grass?", "answer": "green"}\n'
                                    '{"question": "Colour of snow?", "answer": "white"}\n'
                                    '{"question": "unused", "answer": "x"}\n')
    chat = write(tmp_path / "chat.yaml", """
        data: {path: qa.jsonl, id: qid, reference: answer}
        request:
          system: Be brief.
          template: "Q: {{ question }}"
          fewshot: {path: shots.jsonl, n: 2, answer: "A: {answer}"}
          max_new_tokens: 12
          stop: ["\\n"]
          extract: "A:\\\\s*(.*)"
        scorers: [exact_match]
        """)
    plain = write(tmp_path / "plain.yaml", chat.read_text().replace("  system: Be brief.\n", "").replace(
        "request:\n", "request:\n  style: plain\n  separator: \"\\n\"\n"))
    suite = create_suite(str(chat), generation=GenerationConfig(max_new_tokens=64, temperature=0.5))
    sample = suite.load(suite.default_data())[0]
    (req,) = suite.requests(sample, 0, [])
    assert req.messages == (Message("system", "Be brief."), Message("user", "Q: Colour of grass?"),
                            Message("assistant", "A: green"), Message("user", "Q: Colour of snow?"),
                            Message("assistant", "A: white"), Message("user", "Q: Capital of France?"))
    assert (req.max_new_tokens, req.temperature, req.stop) == (12, 0.5, ("\n",))
    score = suite.score(sample, [[Completion(text="Let me think. A: Paris")]])
    assert score.scores == {"exact_match": 1.0} and score.details["raw"] == "Let me think. A: Paris"
    assert suite.score(sample, [[Completion(text="Paris")]]).scores == {"exact_match": 0.0}  # no "A:": nothing extracted
    plain_suite = create_suite(str(plain))
    (req,) = plain_suite.requests(plain_suite.load(plain_suite.default_data())[0], 0, [])
    assert req.messages is None
    assert req.prompt == "Q: Colour of grass?A: green\nQ: Colour of snow?A: white\nQ: Capital of France?"
