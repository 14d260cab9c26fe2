"""MMLU suite: prompt, loaders, bad rows, aggregation, and the HF backend's fast log-likelihood path.

Fidelity against lm-eval itself lives in tests/test_lmeval_fidelity.py.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ModelConfig, RunConfig, SuiteConfig
from harness.errors import ConfigError, DataError
from harness.runner import Runner
from harness.types import Completion, Request, SampleScore
from suites import create_suite
from suites.mmlu import MMLUSuite, doc_to_text, fewshot_prefix, load_mmlu

SAMPLE = MMLUSuite().default_data()


def test_prompt_is_lmeval_template() -> None:
    shots = [{"question": " What is 2+2? ", "choices": ["3", "4", "5", "6"], "answer": 1}]
    prompt = fewshot_prefix("high_school_mathematics", shots) + doc_to_text("Pick one.\n", ["a", "b", "c", "d"])
    assert prompt == (
        "The following are multiple choice questions (with answers) about high school mathematics.\n\n"
        "What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer: B\n\n"
        "Pick one.\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    )


def test_requests_are_four_letters() -> None:
    suite = MMLUSuite({"num_fewshot": "2"})
    sample = suite.load(SAMPLE)[0]
    reqs = suite.requests(sample, 0, [])
    assert [r.continuation for r in reqs] == [" A", " B", " C", " D"]
    assert {r.prompt for r in reqs} == {suite.prompt(sample)}
    assert suite.prompt(sample).count("\nAnswer: ") == 2
    assert suite.requests(sample, 1, [[]]) == []


def _write_csv(root: Path, subject: str, dev_rows: list[str], test_rows: list[str]) -> Path:
    (root / "dev").mkdir(parents=True, exist_ok=True)
    (root / "test").mkdir(parents=True, exist_ok=True)
    (root / "dev" / f"{subject}_dev.csv").write_text("\n".join(dev_rows) + "\n", encoding="utf-8")
    (root / "test" / f"{subject}_test.csv").write_text("\n".join(test_rows) + "\n", encoding="utf-8")
    return root


GOOD = "Q?,a,b,c,d,A"


@pytest.mark.parametrize(
    ("test_rows", "line", "needle"),
    [
        ([GOOD, "Q?,a,b,c,A"], 2, "expected 6 columns (question,A,B,C,D,answer), found 5"),
        ([GOOD, GOOD, "Q?,a,b,c,d,e,A"], 3, "found 7"),
        (["Q?,a,b,c,d,E"], 1, "field 'answer': expected one of A, B, C, D, got 'E'"),
        ([GOOD, 'Q?,a,b,c,d,"1"'], 2, "got '1'"),
    ],
)
def test_bad_csv_rows_name_file_and_line(tmp_path: Path, test_rows: list[str], line: int, needle: str) -> None:
    root = _write_csv(tmp_path / "m", "anatomy", [GOOD] * 5, test_rows)
    with pytest.raises(DataError) as info:
        MMLUSuite().load(str(root))
    assert info.value.path.endswith("anatomy_test.csv")
    assert info.value.line == line
    assert needle in str(info.value)


def test_bad_csv_row_exits_2_on_the_cli(tmp_path: Path, tiny_model: Path) -> None:
    root = _write_csv(tmp_path / "m", "anatomy", [GOOD] * 5, [GOOD, "only,three,cols"])
    result = CliRunner().invoke(
        app, ["run", "mmlu", "--model", str(tiny_model), "--data", str(root), "--db", str(tmp_path / "h.db")]
    )
    assert result.exit_code == 2
    text = result.output.replace("\n", "")  # rich wraps long lines
    assert "anatomy_test.csv, line 2" in text and "found 3" in text


def test_cells_with_unicode_line_separators_stay_one_row(tmp_path: Path) -> None:
    root = _write_csv(tmp_path / "m", "management", [GOOD] * 5, ["Functional structures help to create\u0085...,a,b,c,d,B\r"])
    _, test = load_mmlu(str(root))
    assert test["management"][0]["question"] == "Functional structures help to create\u0085..."
    assert test["management"][0]["answer"] == 1


def test_hub_layout_folders_load_like_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    dev, test = load_mmlu(SAMPLE)
    parquet_root, jsonl_root = tmp_path / "hub" / "all", tmp_path / "jsonl"
    parquet_root.mkdir(parents=True)
    jsonl_root.mkdir()
    for split, data in (("dev", dev), ("test", test)):
        rows = [
            {"question": r["question"], "subject": s, "choices": r["choices"], "answer": r["answer"]}
            for s, items in data.items()
            for r in items
        ]
        pq.write_table(pa.Table.from_pylist(rows), parquet_root / f"{split}-00000-of-00001.parquet")
        letters = [dict(r, answer="ABCD"[r["answer"]]) for r in rows]
        (jsonl_root / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in letters), encoding="utf-8")
    # A per-subject copy next to all/ (as in cais/mmlu) must not be counted twice.
    (tmp_path / "hub" / "astronomy").mkdir()
    pq.write_table(pa.Table.from_pylist([]), tmp_path / "hub" / "astronomy" / "test-00000-of-00001.parquet")
    expected = [(s.id, dict(s.data)) for s in MMLUSuite().load(SAMPLE)]
    for root in (tmp_path / "hub", jsonl_root):
        assert [(s.id, dict(s.data)) for s in MMLUSuite().load(str(root))] == expected


def test_hub_layout_bad_answer_is_named(tmp_path: Path) -> None:
    row = {"question": "Q", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 7}
    (tmp_path / "test.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test.jsonl, line 1, field 'answer': expected 0-3 or A-D, got 7"):
        load_mmlu(str(tmp_path))


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown subject"):
        MMLUSuite({"subjects": "astronomy,astrology"})
    with pytest.raises(ConfigError, match="not an integer"):
        MMLUSuite({"num_fewshot": "five"})
    suite = MMLUSuite({"subjects": "world_religions", "per_subject_limit": 2})
    assert [s.id for s in suite.load(SAMPLE)] == ["world_religions/0", "world_religions/1"]
    with pytest.raises(DataError, match="6-shot needs more"):
        MMLUSuite({"num_fewshot": 6}).load(SAMPLE)


def _score(sid: str, subject: str, correct: bool) -> SampleScore:
    from suites.mmlu import SUBJECTS

    return SampleScore(sid, {"acc": float(correct)}, (f"subject/{subject}", f"category/{SUBJECTS[subject]}"))


def test_aggregate_micro_macro_and_categories() -> None:
    table = {"anatomy": [1, 0, 1, 1], "astronomy": [0, 0, 1], "philosophy": [1, 1]}
    scores = [_score(f"{s}/{i}", s, bool(v)) for s, vals in table.items() for i, v in enumerate(vals)]
    got = {m.name: m for m in MMLUSuite().aggregate(scores)}
    every = [v for vals in table.values() for v in vals]
    assert got["acc"].value == pytest.approx(statistics.mean(every))
    assert got["acc"].stderr == pytest.approx(statistics.stdev(every) / math.sqrt(len(every)))
    means = [statistics.mean(v) for v in table.values()]
    errors = [statistics.stdev(v) / math.sqrt(len(v)) for v in table.values()]
    assert got["acc_macro"].value == pytest.approx(statistics.mean(means))
    assert got["acc_macro"].stderr == pytest.approx(math.sqrt(sum(e * e for e in errors)) / 3)
    assert got["category/stem/acc"].value == pytest.approx(4 / 7)  # anatomy and astronomy are STEM
    assert got["category/humanities/acc"].value == 1.0
    assert got["subject/astronomy/acc"].n == 3


def test_score_keeps_letters_and_loglikelihoods() -> None:
    suite = MMLUSuite()
    sample = suite.load(SAMPLE)[0]  # astronomy/0, gold A
    answers = [[Completion(logprob=v) for v in (-1.0, -0.5, -0.5, -3.0)]]
    score = suite.score(sample, answers)
    assert score.details == {"chosen": "B", "gold": "A", "logprobs": [-1.0, -0.5, -0.5, -3.0]}  # first maximum wins
    assert score.scores == {"acc": 0.0}


def test_cached_rerun_does_not_load_the_model(tmp_path: Path, tiny_model: Path, store) -> None:  # type: ignore[no-untyped-def]
    cfg = RunConfig(suites=[SuiteConfig(name="mmlu")], model=ModelConfig(path=str(tiny_model)))
    first = Runner(cfg, store, show_progress=False).run()[0]

    def refuse(_: ModelConfig):  # type: ignore[no-untyped-def]
        raise AssertionError("the model must not be loaded on a cached rerun")

    store.fail_run(first.run_id, "pretend it crashed after finishing")  # force a fresh scoring pass
    again = Runner(cfg, store, backend_factory=refuse, show_progress=False).run()[0]
    assert {m.name: m.value for m in again.metrics} == {m.name: m.value for m in first.metrics}
    details = [r["details"] for r in store.run_samples(first.run_id)]
    assert all(len(d["logprobs"]) == 4 and d["chosen"] in "ABCD" for d in details)


def test_suite_registry_names_lmeval_prefix() -> None:
    with pytest.raises(ConfigError, match="lm-eval:TASK"):
        create_suite("mmlux")


# ---- the HF backend's log-likelihood path against a plain one-request-per-forward reference -----


def _reference_loglikelihood(backend, prompt: str, continuation: str) -> float:  # type: ignore[no-untyped-def]
    import torch

    ctx, cont = backend.encode_pair(prompt, continuation)
    row = (ctx + cont)[-(backend.max_length + 1) :][:-1]
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([row])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)[len(row) - len(cont) :]
    return float(logprobs.gather(1, torch.tensor(cont)[:, None]).sum())


@pytest.mark.parametrize("max_length", [None, 48])
def test_hf_loglikelihood_matches_plain_forward(tiny_model: Path, max_length: int | None) -> None:
    from harness.backends.hf import HFBackend

    backend = HFBackend(ModelConfig(path=str(tiny_model), batch_size=3, max_length=max_length))
    header = "The following are multiple choice questions (with answers) about anatomy.\n\n" * 3
    prompts = [header + f"Question {i}: which bone is longest?\nAnswer:" for i in range(5)]
    reqs = [Request(kind="loglikelihood", prompt=p, continuation=c) for p in prompts for c in (" A", " B", " femur bone")]
    reqs += [
        Request(kind="loglikelihood", prompt="", continuation="An unconditional sentence."),
        Request(kind="loglikelihood", prompt="Short context ", continuation="then more"),
    ]
    got = backend.loglikelihood(reqs)
    # Untruncated, the shared header ran once and was reused (truncated rows share no prefix here).
    assert (backend._last_prefix is not None) == (max_length is None)
    for req, answer in zip(reqs, got, strict=True):
        assert answer.logprob == pytest.approx(_reference_loglikelihood(backend, req.prompt or "", req.continuation or ""), abs=1e-4)
    # Batch composition does not change answers.
    alone = [backend.loglikelihood([r])[0].logprob for r in reqs[:4]]
    assert alone == pytest.approx([a.logprob for a in got[:4]], abs=1e-4)


def test_a_users_own_subject_is_scored_in_category_other(tmp_path: Path) -> None:
    """`mydomain_test.csv` beside real subjects is never silently dropped; alone it still loads."""
    from harness.types import Completion

    root = _write_csv(tmp_path / "m", "anatomy", [GOOD] * 5, [GOOD, GOOD])
    _write_csv(root, "mydomain", [GOOD] * 5, [GOOD, GOOD, GOOD])
    suite = MMLUSuite()
    samples = suite.load(str(root))
    assert sorted({s.data["subject"] for s in samples}) == ["anatomy", "mydomain"] and len(samples) == 5
    mine = next(s for s in samples if s.data["subject"] == "mydomain")
    scored = suite.score(mine, [[Completion(text="", logprob=-1.0 if i == 0 else -2.0) for i in range(4)]])
    assert scored.groups == ("subject/mydomain", "category/other") and scored.scores["acc"] == 1.0
    alone = _write_csv(tmp_path / "alone", "mydomain", [GOOD] * 5, [GOOD])
    assert [s.data["subject"] for s in MMLUSuite().load(str(alone))] == ["mydomain"]
