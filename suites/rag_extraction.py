"""RAG extraction: answer a question from a given context, or abstain when the context lacks it.

Metrics follow the official SQuAD 2.0 evaluation script: answers are normalised (lower-case,
punctuation and articles removed, whitespace collapsed), exact match and token F1 take the maximum
over gold answers, and an abstention is the empty answer, which is right exactly on unanswerable
questions. Deterministic metrics like these are what the gate should rest on (ragas-style judged
metrics are too noisy to gate a release).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.datafiles import read_json, read_jsonl, require
from harness.errors import DataError
from harness.types import Completion, Message, MetricSpec, Request, Sample, SampleScore
from suites.base import Suite

DATA_DIR = Path(__file__).parent / "data"

PROMPT = (
    "Answer the question using only the context below. Reply with the shortest span of the context "
    "that answers it, and nothing else. If the context does not contain the answer, reply exactly: "
    "{abstain}\n\nContext: {context}\n\nQuestion: {question}"
)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)
_ANSWER_PREFIX = re.compile(r"^\s*(?:answer\s*[:\-]|a:)\s*", re.IGNORECASE)  # never "A-10 Thunderbolt" or "a-ha"


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower-case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def exact_match(gold: str, prediction: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(prediction))


def token_f1(gold: str, prediction: str) -> float:
    gold_tokens, pred_tokens = _tokens(gold), _tokens(prediction)
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_recall(gold: str, prediction: str) -> float:
    """Share of the gold answer's tokens present in the prediction ("completeness")."""
    gold_tokens, pred_tokens = _tokens(gold), _tokens(prediction)
    if not gold_tokens:
        return float(not pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    return same / len(gold_tokens)


def gold_answers(answers: Sequence[str]) -> list[str]:
    """SQuAD 2.0: answers that normalise to nothing are dropped; none left means unanswerable ('')."""
    kept = [a for a in answers if normalize_answer(a)]
    return kept or [""]


def extract_prediction(completion: str, abstain_phrase: str) -> tuple[str, bool]:
    """The answer span from a raw completion, and whether the model abstained.

    Takes the first non-empty line and drops an `Answer:` prefix. The abstention phrase (or an
    empty answer, which SQuAD 2.0 also reads as "no answer") becomes the empty prediction.
    """
    line = next((ln.strip() for ln in completion.splitlines() if ln.strip()), "")
    line = _ANSWER_PREFIX.sub("", line).strip().strip('"').strip()
    normalised = normalize_answer(line)
    if not normalised or normalised == normalize_answer(abstain_phrase):
        return "", True
    return line, False


class RagExtractionSuite(Suite):
    name = "rag-extraction"
    version = "1.0"
    primary_metric = "f1"
    metrics = (
        MetricSpec("exact_match", True, "SQuAD 2.0 exact match (max over gold answers)"),
        MetricSpec("f1", True, "SQuAD 2.0 token F1 (max over gold answers)"),
        MetricSpec("recall", True, "share of the gold answer's tokens in the prediction (completeness)"),
        MetricSpec("abstained", False, "rate of abstentions; on unanswerable questions higher is better"),
        MetricSpec("supported", True, "non-abstaining answers whose text occurs in the context"),
    )

    def allowed_options(self) -> Sequence[str]:
        return ("abstain_phrase",)

    @property
    def abstain_phrase(self) -> str:
        return str(self.options.get("abstain_phrase", "unanswerable"))

    def spec(self, metric: str) -> MetricSpec:
        if metric == "unanswerable/abstained":
            return MetricSpec(metric, True, "abstentions where the context lacks the answer")
        return super().spec(metric)

    def default_data(self) -> str:
        return str(DATA_DIR / "rag_extraction_sample.jsonl")

    # ---- loading ----------------------------------------------------------------------------

    def load(self, source: str) -> list[Sample]:
        path = Path(source)
        samples = self._load_squad(path) if path.suffix == ".json" else self._load_jsonl(path)
        if not samples:
            raise DataError(str(path), None, None, "no questions found")
        seen: dict[str, str] = {}
        for s in samples:
            if s.id in seen:
                raise DataError(str(path), None, "id", f"duplicate id '{s.id}' ({seen[s.id]} and {s.source})")
            seen[s.id] = s.source
        return samples

    def _load_jsonl(self, path: Path) -> list[Sample]:
        out = []
        for line, row in read_jsonl(path):
            sample_id = require(row, "id", (str, int), path, line)
            question = require(row, "question", str, path, line)
            context = require(row, "context", str, path, line)
            answers = require(row, "answers", list, path, line)
            texts = []
            for i, a in enumerate(answers):
                text = a.get("text") if isinstance(a, dict) else a
                if not isinstance(text, str):
                    raise DataError(str(path), line, f"answers[{i}]", "expected a string or {text: string}")
                texts.append(text)
            if not question.strip():
                raise DataError(str(path), line, "question", "empty")
            out.append(self._sample(str(sample_id), question, context, texts, f"{path}:{line}"))
        return out

    def _load_squad(self, path: Path) -> list[Sample]:
        doc = read_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise DataError(str(path), None, "data", "expected SQuAD JSON with a top-level 'data' list")
        out = []
        for a, article in enumerate(doc["data"]):
            for p, paragraph in enumerate(_field(article, "paragraphs", list, path, f"data[{a}]")):
                where = f"data[{a}].paragraphs[{p}]"
                context = _field(paragraph, "context", str, path, where)
                for q, qa in enumerate(_field(paragraph, "qas", list, path, where)):
                    qwhere = f"{where}.qas[{q}]"
                    answers = _field(qa, "answers", list, path, qwhere)
                    texts = [_field(ans, "text", str, path, f"{qwhere}.answers[{i}]") for i, ans in enumerate(answers)]
                    if qa.get("is_impossible"):
                        texts = []
                    out.append(
                        self._sample(
                            str(_field(qa, "id", (str, int), path, qwhere)),
                            _field(qa, "question", str, path, qwhere),
                            context,
                            texts,
                            f"{path}:{qwhere}",
                        )
                    )
        return out

    @staticmethod
    def _sample(sample_id: str, question: str, context: str, answers: list[str], source: str) -> Sample:
        return Sample(sample_id, {"question": question, "context": context, "answers": answers}, source)

    # ---- requests and scoring ---------------------------------------------------------------

    def requests(self, sample: Sample, stage: int, prior: Sequence[Sequence[Completion]]) -> list[Request]:
        if stage > 0:
            return []
        prompt = PROMPT.format(
            abstain=self.abstain_phrase, context=sample.data["context"], question=sample.data["question"]
        )
        g = self.generation
        return [
            Request(
                kind="generate",
                messages=(Message("user", prompt),),
                max_new_tokens=g.max_new_tokens,
                temperature=g.temperature,
                top_p=g.top_p,
                seed=g.seed,
                sample_id=sample.id,
            )
        ]

    def failure_score(self, sample: Sample) -> SampleScore:
        """No answer (cut inside its reasoning): wrong on every question, and not an abstention."""
        answerable = gold_answers(sample.data["answers"]) != [""]
        return SampleScore(sample.id, {"exact_match": 0.0, "f1": 0.0, "recall": 0.0, "abstained": 0.0},
                           groups=("answerable",) if answerable else ("unanswerable",),
                           details={"failure": "reasoning_truncated"})

    def score(self, sample: Sample, completions: Sequence[Sequence[Completion]]) -> SampleScore:
        raw = completions[0][0].text
        prediction, abstained = extract_prediction(raw, self.abstain_phrase)
        golds = gold_answers(sample.data["answers"])
        answerable = golds != [""]
        scores: dict[str, float] = {
            "exact_match": max(exact_match(g, prediction) for g in golds),
            "f1": max(token_f1(g, prediction) for g in golds),
            "recall": max(token_recall(g, prediction) for g in golds),
            "abstained": float(abstained),
        }
        if not abstained:
            scores["supported"] = float(normalize_answer(prediction) in normalize_answer(sample.data["context"]))
        return SampleScore(
            sample.id,
            scores,
            groups=("answerable",) if answerable else ("unanswerable",),
            details={"prediction": prediction, "gold": golds},
        )


def _field(obj: Any, key: str, kind: type | tuple[type, ...], path: Path, where: str) -> Any:
    if not isinstance(obj, dict):
        raise DataError(str(path), None, where, "expected an object")
    if key not in obj:
        raise DataError(str(path), None, f"{where}.{key}", "missing")
    value = obj[key]
    if not isinstance(value, kind):
        names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataError(str(path), None, f"{where}.{key}", f"expected {names}, got {type(value).__name__}")
    return value
