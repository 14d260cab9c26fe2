"""Attribute extraction: a product description in, a JSON object of its attributes out.

The task the bundled fine-tuning data teaches (see harness/finetune/bundled/): small enough that the
tiny local model learns it in seconds on a CPU, so fine-tuning demos, tests and sweep benchmarks see
scores move. Metrics are deterministic: the first JSON object in the answer is parsed, keys and values
are compared after lower-casing and collapsing whitespace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.datafiles import read_jsonl, require
from harness.errors import DataError
from harness.types import Completion, Message, MetricSpec, Request, Sample, SampleScore
from suites.base import Suite

DATA_DIR = Path(__file__).parent / "data"

_WORD = re.compile(r"[a-z0-9.\-]+")

INSTRUCTION = "Extract the product attributes as JSON."


def user_prompt(description: str) -> str:
    """The user turn; the fine-tuning data renders `instruction` + blank line + `input` the same way."""
    return f"{INSTRUCTION}\n\n{description}"


def _norm(value: Any) -> str:
    return " ".join(str(value).lower().split())


def parse_attributes(text: str) -> dict[str, str] | None:
    """The first JSON object in `text` as {key: normalised value}, or None when there is none."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text[start:])
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return {_norm(k): _norm(v) for k, v in value.items()}
        start = text.find("{", start + 1)
    return None


def field_f1(gold: Mapping[str, str], predicted: Mapping[str, str] | None) -> float:
    """F1 over (key, value) pairs: precision over predicted pairs, recall over gold pairs."""
    if not predicted:
        return float(not gold)
    gold_pairs = {(_norm(k), _norm(v)) for k, v in gold.items()}
    pred_pairs = set(predicted.items())
    same = len(gold_pairs & pred_pairs)
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_pairs), same / len(gold_pairs)
    return 2 * precision * recall / (precision + recall)


def value_recall(gold: Mapping[str, str], text: str) -> float:
    """Share of gold values that occur as whole words in the raw answer, JSON or not."""
    if not gold:
        return 1.0
    words = " " + " ".join(_WORD.findall(text.lower())) + " "
    return sum(f" {_norm(v)} " in words for v in gold.values()) / len(gold)


class AttributeExtractionSuite(Suite):
    name = "attribute-extraction"
    version = "1.0"
    primary_metric = "field_f1"
    metrics = (
        MetricSpec("field_f1", True, "F1 over (attribute, value) pairs of the first JSON object"),
        MetricSpec("exact_match", True, "every attribute right and nothing extra"),
        MetricSpec("valid_json", True, "the answer contains a JSON object"),
        MetricSpec("value_recall", True, "share of gold values present anywhere in the answer (partial credit early in training)"),
    )

    def default_data(self) -> str:
        return str(DATA_DIR / "attribute_extraction_sample.jsonl")

    def load(self, source: str) -> list[Sample]:
        out: list[Sample] = []
        seen: set[str] = set()
        for line, row in read_jsonl(source):
            sample_id = str(require(row, "id", (str, int), source, line))
            description = require(row, "description", str, source, line)
            attributes = require(row, "attributes", dict, source, line)
            for key, value in attributes.items():
                if not isinstance(value, str | int | float) or isinstance(value, bool):
                    raise DataError(source, line, f"attributes.{key}", "expected a string or number")
            if sample_id in seen:
                raise DataError(source, line, "id", f"duplicate id '{sample_id}'")
            seen.add(sample_id)
            out.append(Sample(sample_id, {"description": description, "attributes": attributes}, f"{source}:{line}"))
        if not out:
            raise DataError(source, None, None, "no samples found")
        return out

    def requests(self, sample: Sample, stage: int, prior: Sequence[Sequence[Completion]]) -> list[Request]:
        if stage > 0:
            return []
        g = self.generation
        return [
            Request(
                kind="generate",
                messages=(Message("user", user_prompt(sample.data["description"])),),
                max_new_tokens=g.max_new_tokens,
                temperature=g.temperature,
                top_p=g.top_p,
                seed=g.seed,
                sample_id=sample.id,
            )
        ]

    def score(self, sample: Sample, completions: Sequence[Sequence[Completion]]) -> SampleScore:
        predicted = parse_attributes(completions[0][0].text)
        gold = {_norm(k): _norm(v) for k, v in sample.data["attributes"].items()}
        scores = {
            "field_f1": field_f1(gold, predicted),
            "exact_match": float(predicted == gold),
            "valid_json": float(predicted is not None),
            "value_recall": value_recall(gold, completions[0][0].text),
        }
        return SampleScore(sample.id, scores, details={"predicted": predicted, "gold": gold})
