"""attribute-extraction metrics: table-driven cases with hand-computed reference values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import DataError
from harness.types import Completion, Sample
from suites import create_suite
from suites.attribute_extraction import field_f1, parse_attributes, value_recall

GOLD = {"category": "mug", "color": "red", "material": "glass"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"category": "mug", "color": "red"}', {"category": "mug", "color": "red"}),
        ('Sure: {"Color": " Dark  Red "} done', {"color": "dark red"}),
        ('{"a": 1} {"b": 2}', {"a": "1"}),
        ('{broken {"a": "x"}', {"a": "x"}),
        ("no json here", None),
        ("[1, 2]", None),
    ],
)
def test_parse_attributes(text: str, expected: dict[str, str] | None) -> None:
    assert parse_attributes(text) == expected


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        ({"category": "mug", "color": "red", "material": "glass"}, 1.0),
        ({"category": "mug", "color": "blue", "material": "glass"}, 2 / 3),  # P = R = 2/3
        ({"category": "mug"}, 0.5),  # P = 1, R = 1/3 -> 2 * (1/3) / (4/3)
        ({"category": "mug", "color": "red", "material": "glass", "size": "m"}, 6 / 7),  # P = 3/4, R = 1
        ({"color": "mug"}, 0.0),
        (None, 0.0),
        ({}, 0.0),
    ],
)
def test_field_f1(predicted: dict[str, str] | None, expected: float) -> None:
    assert field_f1(GOLD, predicted) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a red glass mug", 1.0),
        ("reddish glasses, mug", 1 / 3),  # whole words only
        ('{"color": "red"', 1 / 3),
        ("", 0.0),
    ],
)
def test_value_recall(text: str, expected: float) -> None:
    assert value_recall(GOLD, text) == pytest.approx(expected)


def test_score_and_bundled_data_load() -> None:
    suite = create_suite("attribute-extraction")
    samples = suite.load(suite.default_data())
    assert len(samples) == 40
    sample = Sample("x", {"description": "A red glass mug.", "attributes": GOLD})
    right = suite.score(sample, [[Completion(text=json.dumps(GOLD))]])
    assert right.scores == {"field_f1": 1.0, "exact_match": 1.0, "valid_json": 1.0, "value_recall": 1.0}
    wrong = suite.score(sample, [[Completion(text="mug")]])
    assert wrong.scores["valid_json"] == 0.0 and wrong.scores["value_recall"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"description": "d", "attributes": {}}, "id"),
        ({"id": "a", "attributes": {}}, "description"),
        ({"id": "a", "description": "d", "attributes": "red"}, "attributes"),
        ({"id": "a", "description": "d", "attributes": {"color": ["red"]}}, "attributes.color"),
    ],
)
def test_bad_rows_name_file_line_field(tmp_path: Path, row: dict[str, object], field: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "ok", "description": "d", "attributes": {}}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as info:
        create_suite("attribute-extraction").load(str(path))
    assert info.value.line == 2 and info.value.field == field and str(path) in str(info.value)
