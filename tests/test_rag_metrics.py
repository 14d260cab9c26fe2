"""SQuAD 2.0 metric cases. Expected values are what the official evaluate-v2.0.py script gives
(computed by hand from its definitions: normalise, max over golds, empty gold = unanswerable)."""

from __future__ import annotations

import pytest

from harness.types import Completion, Sample
from suites.rag_extraction import (
    RagExtractionSuite,
    exact_match,
    extract_prediction,
    gold_answers,
    normalize_answer,
    token_f1,
    token_recall,
)

NORMALISE = [
    ("The Amazon River!", "amazon river"),
    ("  a  cat, an owl and THE dog ", "cat owl and dog"),
    ("1,200 watts.", "1200 watts"),
    ("Théâtre", "théâtre"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), NORMALISE)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


PAIRS = [
    # gold, prediction, exact, f1
    ("Amazon", "the Amazon", 1.0, 1.0),
    ("the Amazon river", "Amazon", 0.0, 2 / 3),
    ("Bram Stoker", "Stoker, Bram", 0.0, 1.0),
    ("1889", "in 1889", 0.0, 2 / 3),
    ("Guido van Rossum", "Rossum Guido van Rossum", 0.0, 2 * (3 / 4) * 1 / (3 / 4 + 1)),
    ("glass", "plastic", 0.0, 0.0),
    ("", "", 1.0, 1.0),  # unanswerable and abstained
    ("", "Paris", 0.0, 0.0),  # unanswerable but answered
    ("Paris", "", 0.0, 0.0),  # answerable but abstained
    ("the", "a", 1.0, 1.0),  # both normalise to empty
]


@pytest.mark.parametrize(("gold", "pred", "em", "f1"), PAIRS)
def test_exact_and_f1(gold: str, pred: str, em: float, f1: float) -> None:
    assert exact_match(gold, pred) == em
    assert token_f1(gold, pred) == pytest.approx(f1)


def test_recall_is_completeness() -> None:
    assert token_recall("1.5 litre glass jar", "glass jar") == pytest.approx(0.5)
    assert token_recall("glass", "a glass jar") == 1.0
    assert token_recall("", "") == 1.0


def test_gold_answers_drop_empty_and_mark_unanswerable() -> None:
    assert gold_answers(["The", "Amazon"]) == ["Amazon"]
    assert gold_answers([]) == [""]


EXTRACT = [
    ("Paris", "Paris", False),
    ("\n\nAnswer: Paris\nbecause...", "Paris", False),
    ("unanswerable", "", True),
    ("Unanswerable.", "", True),
    ("", "", True),
    ('"1889"', "1889", False),
    ("A: Paris", "Paris", False),
    ("answer - Paris", "Paris", False),
    ("A-10 Thunderbolt", "A-10 Thunderbolt", False),  # real answers that start like a prefix stay whole
    ("a-ha", "a-ha", False),
    ("A-ha", "A-ha", False),
]


@pytest.mark.parametrize(("raw", "pred", "abstained"), EXTRACT)
def test_extract_prediction(raw: str, pred: str, abstained: bool) -> None:
    assert extract_prediction(raw, "unanswerable") == (pred, abstained)


def _score(answers: list[str], completion: str):  # type: ignore[no-untyped-def]
    suite = RagExtractionSuite()
    sample = Sample("q1", {"question": "q", "context": "The Amazon river is long. It is in Brazil.", "answers": answers})
    return suite.score(sample, [[Completion(text=completion)]])


def test_score_takes_max_over_golds_and_groups() -> None:
    s = _score(["The Amazon river", "Amazon"], "Amazon")
    assert s.scores["exact_match"] == 1.0
    assert s.scores["f1"] == 1.0
    assert s.scores["supported"] == 1.0
    assert s.groups == ("answerable",)


def test_abstention_right_only_on_unanswerable() -> None:
    right = _score([], "unanswerable")
    wrong = _score(["Brazil"], "unanswerable")
    assert right.scores["exact_match"] == 1.0 and right.groups == ("unanswerable",)
    assert wrong.scores["exact_match"] == 0.0 and wrong.scores["abstained"] == 1.0
    assert "supported" not in right.scores  # only answers can be (un)supported


def test_unsupported_answer_is_flagged() -> None:
    assert _score(["Brazil"], "Peru").scores["supported"] == 0.0


def test_aggregate_reports_overall_and_groups() -> None:
    suite = RagExtractionSuite()
    scores = [_score(["Amazon"], "Amazon"), _score(["Brazil"], "Peru"), _score([], "unanswerable")]
    by_name = {m.name: m for m in suite.aggregate(scores)}
    assert by_name["exact_match"].value == pytest.approx(2 / 3)
    assert by_name["answerable/exact_match"].value == pytest.approx(0.5)
    assert by_name["unanswerable/abstained"].value == 1.0
    assert by_name["unanswerable/abstained"].higher_is_better
    assert not by_name["answerable/abstained"].higher_is_better
    assert by_name["exact_match"].n == 3
    assert by_name["exact_match"].stderr == pytest.approx(((1 / 3) / 3) ** 0.5)
