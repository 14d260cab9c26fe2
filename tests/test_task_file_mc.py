"""Multiple-choice task files: JSONL, CSV and parquet give the same questions; log-likelihood scoring
(acc, acc_norm) by hand; the same task scores identically on HF and vLLM (tiny model, float32)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.backends.base import Backend
from harness.cli import app
from harness.store import Store
from harness.types import Completion
from suites import create_suite

QUESTIONS = [
    ("What colour is the sky on a clear day?", ["green", "blue", "red", "black"], 1),
    ("How many legs does a spider have?", ["six", "four", "eight", "ten"], 2),
    ("Which is a fruit?", ["apple", "carrot", "potato", "onion"], 0),
    ("What do bees make?", ["milk", "silk", "wool", "honey"], 3),
    ("Which number is even?", ["7", "3", "4", "9"], 2),
    ("What is frozen water called?", ["steam", "ice", "sand", "glass"], 1),
]
SHOTS = [{"question": "Which animal barks?", "choices": ["cat", "dog", "fish", "bird"], "answer": 1}]

TASK = """
name: tiny-quiz
data:
  path: {data}
  id: qid
  group: kind
multiple_choice:
  template: "Question: {{{{ question }}}}\\nAnswer:"
  choices: {choices}
  gold: {gold}
  fewshot: {{path: {shots}}}
scorers: [acc, acc_norm]
"""


def write_rows(folder: Path, name: str, fmt: str, rows: list[dict[str, Any]]) -> str:
    """Rows as JSONL (choices list, gold index), CSV (one column per option, gold letter) or parquet
    (choices list, gold text); returns the file name."""
    if fmt == "jsonl":
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        with open(folder / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["qid", "kind", "question", "A", "B", "C", "D", "letter"])
            for r in rows:
                writer.writerow([r.get("qid", ""), r.get("kind", ""), r["question"], *r["choices"], "ABCD"[r["answer"]]])
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([{**r, "gold_text": r["choices"][r["answer"]]} for r in rows]),
                       folder / f"{name}.parquet")
    return f"{name}.{fmt}"


def write_task(folder: Path, fmt: str) -> Path:
    """The same quiz (data and few-shot file) in one of three layouts."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"qid": f"q{i}", "kind": "odd" if i % 2 else "even", "question": q, "choices": c, "answer": a}
            for i, (q, c, a) in enumerate(QUESTIONS)]
    data, shots = write_rows(folder, "quiz", fmt, rows), write_rows(folder, "shots", fmt, SHOTS)
    choices, gold = {"jsonl": ("choices", "answer"), "csv": ("[A, B, C, D]", "letter"), "parquet": ("choices", "gold_text")}[fmt]
    task = folder / "quiz.yaml"
    task.write_text(TASK.format(data=data, shots=shots, choices=choices, gold=gold).lstrip())
    return task


def test_jsonl_csv_and_parquet_give_the_same_requests_and_scores(tmp_path: Path) -> None:
    suites = {fmt: create_suite(str(write_task(tmp_path / fmt, fmt))) for fmt in ("jsonl", "csv", "parquet")}
    loaded = {fmt: s.load(s.default_data()) for fmt, s in suites.items()}
    requests = {fmt: [r.content() for x in loaded[fmt] for r in suites[fmt].requests(x, 0, [])] for fmt in suites}
    assert requests["jsonl"] == requests["csv"] == requests["parquet"]
    first = requests["jsonl"][0]
    assert first["prompt"] == ("Question: Which animal barks?\nAnswer: dog\n\n"
                               "Question: What colour is the sky on a clear day?\nAnswer:")
    assert [r["continuation"] for r in requests["jsonl"][:4]] == [" green", " blue", " red", " black"]
    # acc takes the most likely option; acc_norm divides by the option's length in characters.
    suite, sample = suites["csv"], loaded["csv"][0]  # gold: " blue" (5 characters)
    logprobs = [-6.0, -6.5, -9.0, -9.0]  # " green": -1.0/char, " blue": -1.3/char
    score = suite.score(sample, [[Completion(logprob=v) for v in logprobs]])
    assert score.scores == {"acc": 0.0, "acc_norm": 0.0} and score.details["chosen"] == 0
    score = suite.score(sample, [[Completion(logprob=v) for v in [-6.5, -4.0, -9.0, -9.0]]])
    assert score.scores == {"acc": 1.0, "acc_norm": 1.0} and score.groups == ("kind/even",)
    score = suite.score(sample, [[Completion(logprob=v) for v in [-7.0, -7.5, -9.0, -9.0]]])  # -1.17 vs -1.5 per char
    assert score.scores == {"acc": 0.0, "acc_norm": 0.0}
    score = suite.score(sample, [[Completion(logprob=v) for v in [-7.5, -7.0, -9.0, -9.0]]])
    assert score.scores == {"acc": 1.0, "acc_norm": 0.0}  # " blue" more likely overall, " green" per character


def run_mc(task: Path, backend: str, model: Path, db: str) -> dict[str, Any]:
    args = ["run", str(task), "--backend", backend, "--model", str(model), "--device", "cpu", "--dtype", "float32",
            "--db", db, "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["runs"][0]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_multiple_choice_task_scores_identically_on_hf_and_vllm(
    tmp_path: Path, tiny_model: Path, vllm_backend: Backend, sqlite_url: str
) -> None:
    import harness.backends.vllm as vllm_module

    task = write_task(tmp_path / "quiz", "jsonl")
    engines = len(vllm_module._ENGINES)
    runs = {b: run_mc(task, b, tiny_model, sqlite_url) for b in ("hf", "vllm")}
    assert len(vllm_module._ENGINES) == engines, "the CLI run reuses the session's engine"
    assert runs["vllm"]["metrics"] == runs["hf"]["metrics"]
    store = Store(sqlite_url)
    try:
        rows = {b: store.run_samples(runs[b]["run_id"]) for b in runs}
    finally:
        store.close()
    assert [(r["sample_id"], r["scores"], r["details"]["chosen"]) for r in rows["hf"]] == [
        (r["sample_id"], r["scores"], r["details"]["chosen"]) for r in rows["vllm"]
    ]
    hf_lp = [lp for r in rows["hf"] for lp in r["details"]["logprobs"]]
    vllm_lp = [lp for r in rows["vllm"] for lp in r["details"]["logprobs"]]
    assert vllm_lp == pytest.approx(hf_lp, abs=1e-3)
    assert len({round(v, 2) for v in hf_lp}) > len(hf_lp) // 2, "degenerate log-likelihoods"
