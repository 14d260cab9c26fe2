"""MT-Bench: two-turn questions answered through the model's chat template, graded by a judge backend.

Follows FastChat's `llm_judge` protocol: FastChat's generation temperature per category, the second
question asked in the same conversation after the model's own first answer, single-answer grading
on a 1-10 scale (`[[rating]]`, falling back to `[rating]`), reference-guided grading for math,
reasoning and coding, and the turn-2 judge seeing the whole conversation. Stages per sample:
0 = turn 1, 1 = turn 2, 2 = judge requests (role "judge", answered by RunConfig.judge).

Where it differs from FastChat, on purpose: a judgment without exactly one rating in 1-10 is stored
as invalid with its raw text, excluded from the averages and reported (`judge_invalid_rate`), where
FastChat keeps the first match and scores out-of-range numbers; and the overall score comes with a
standard error clustered by question (both turns of a question are not independent).

`mtbench-pairwise` compares the model against a baseline's stored answers (A vs B, judged in both
orders; disagreeing orders count as a tie, as in FastChat).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.config import GenerationConfig
from harness.datafiles import read_jsonl
from harness.errors import ConfigError, DataError
from harness.provenance import directory_hash
from harness.reasoning import shown_to_judge
from harness.types import Completion, Message, MetricSpec, MetricValue, Request, Sample, SampleScore
from suites.base import Suite
from suites.judge_prompts import DEFAULT, Kind, PromptSet, load_fastchat_prompts, require_slots

DATA_DIR = Path(__file__).parent / "data"

#: FastChat's generation temperature per category (gen_model_answer.py, temperature_config).
CATEGORY_TEMPERATURE: dict[str, float] = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}
#: Categories graded against a reference answer (FastChat's NEED_REF_CATS).
REFERENCE_CATEGORIES = frozenset({"math", "reasoning", "coding"})

_DOUBLE = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_SINGLE = re.compile(r"\[\s*(\d+(?:\.\d+)?)\s*\]")
_VERDICTS = {"A": re.compile(r"\[\[\s*A\s*\]\]"), "B": re.compile(r"\[\[\s*B\s*\]\]"), "C": re.compile(r"\[\[\s*C\s*\]\]")}


@dataclass(frozen=True)
class Rating:
    """A parsed judgment: `value` is None when the text holds no usable rating (`reason` says why)."""

    value: float | None
    reason: str = ""


def parse_rating(text: str) -> Rating:
    """`[[n]]` (or, when there is none, `[n]`); exactly one distinct value in 1-10, else invalid."""
    for pattern, form in ((_DOUBLE, "[[n]]"), (_SINGLE, "[n]")):
        found = [float(m) for m in pattern.findall(text)]
        if not found:
            continue
        distinct = sorted(set(found))
        if len(distinct) > 1:
            return Rating(None, f"several different ratings {[_fmt(v) for v in distinct]}")
        value = distinct[0]
        if not 1.0 <= value <= 10.0:
            return Rating(None, f"rating {_fmt(value)} outside 1-10")
        return Rating(value, form)
    return Rating(None, "no [[rating]] found")


def parse_verdict(text: str) -> str | None:
    """`[[A]]`, `[[B]]` or `[[C]]` (tie); None when none or several different verdicts appear."""
    found = [v for v, pattern in _VERDICTS.items() if pattern.search(text)]
    return found[0] if len(found) == 1 else None


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def clustered_mean(clusters: Iterable[Sequence[float]]) -> tuple[float, float | None, int]:
    """Mean over all values, with a standard error that treats each cluster (question) as the unit.

    The CR1 sandwich estimator for the mean: sqrt(G/(G-1) * sum_g (sum_i (x_gi - mean))^2) / N.
    With one value per cluster it equals the usual standard error of the mean.
    """
    groups = [list(c) for c in clusters if len(c)]
    values = [v for g in groups for v in g]
    n, g = len(values), len(groups)
    if n == 0:
        return math.nan, None, 0
    mean = sum(values) / n
    if g < 2:
        return mean, None, n
    spread = sum(sum(v - mean for v in grp) ** 2 for grp in groups)
    return mean, math.sqrt(g / (g - 1) * spread) / n, n




class MTBenchSuite(Suite):
    name = "mtbench"
    version = "1.0"
    primary_metric = "score"
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("score", True, "judge rating 1-10, mean over valid judgments of both turns"),
        MetricSpec("judge_invalid_rate", False, "share of judgments without a usable rating (excluded from scores)"),
        MetricSpec("judge_invalid_count", False, "judgments without a usable rating"),
    )
    #: Which judging this suite does; the pairwise subclass compares two answers instead.
    judge_kind: Kind = "single"

    def allowed_options(self) -> Sequence[str]:
        return ("references", "judge_prompts", "max_new_tokens", "judge_max_new_tokens", "temperature",
                "judge_sees_reasoning")

    def __init__(self, options: Mapping[str, Any] | None = None, generation: GenerationConfig | None = None) -> None:
        super().__init__(options, generation)
        self.max_new_tokens = self.number_option("max_new_tokens", 1024, int, 1)
        self.judge_max_new_tokens = self.number_option("judge_max_new_tokens", 1024, int, 1)
        #: The judge grades the answer alone unless asked to read the model's reasoning too.
        self.judge_sees_reasoning = self.flag_option("judge_sees_reasoning")
        self.temperature: float | None = (
            self.number_option("temperature", None, float, 0.0)
        )
        source = self.options.get("judge_prompts")
        self.prompts: PromptSet = load_fastchat_prompts(source) if source else DEFAULT
        require_slots(self.prompts, self.judge_kind, str(source or "default prompts"))

    def default_data(self) -> str:
        return str(DATA_DIR / "mtbench_sample.jsonl")

    def roles(self) -> set[str]:
        return {"model", "judge"}

    def identity(self) -> dict[str, Any]:
        """Content of the side files, so editing references or prompts never resumes a stale run."""
        refs = self.options.get("references")
        return {
            "judge_prompts": self.prompts.digest(),
            "references": directory_hash(refs) if refs and Path(refs).is_file() else None,
        }

    # ---- loading ----------------------------------------------------------------------------

    def load(self, source: str) -> list[Sample]:
        path = Path(source)
        rows: list[tuple[int, dict[str, Any]]] = []
        seen: dict[str, int] = {}
        for line, row in read_jsonl(path):
            qid = _question_id(row, path, line)
            if qid in seen:
                raise DataError(str(path), line, "question_id", f"duplicate id {qid} (first on line {seen[qid]})")
            seen[qid] = line
            rows.append((line, row))
        refs_file = self.options.get("references")
        references = load_references(refs_file) if refs_file else {}
        samples = []
        for line, row in rows:
            qid = _question_id(row, path, line)
            category = row.get("category")
            if not isinstance(category, str) or not category:
                raise DataError(str(path), line, "category", "missing" if category is None else "expected a non-empty string")
            if category not in CATEGORY_TEMPERATURE:
                raise DataError(str(path), line, "category",
                                f"unknown category '{category}' (known: {', '.join(CATEGORY_TEMPERATURE)})")
            turns = _two_strings(row.get("turns"), path, line, "turns")
            reference, ref_source = None, None
            if qid in references:
                reference, ref_source = references[qid], str(refs_file)
            elif row.get("reference") is not None:
                # Inline references may leave a turn empty, as FastChat's own question.jsonl does (question
                # 103's second turn): FastChat grades with the empty reference, so do we. A graded
                # category still needs its first-turn reference.
                reference = _two_strings(row["reference"], path, line, "reference", allow_empty=True)
                if category in REFERENCE_CATEGORIES and not reference[0].strip():
                    raise DataError(str(path), line, "reference[0]",
                                    "empty (a reference-graded question needs its first-turn reference)")
                ref_source = f"{path} (inline)"
            if category in REFERENCE_CATEGORIES and reference is None:
                raise DataError(str(path), line, "reference",
                                f"category '{category}' is graded against a reference answer but question {qid} has "
                                "none: add 'reference' or pass --option references=FILE")
            data = {"question_id": qid, "category": category, "turns": turns, "reference": reference,
                    "reference_source": ref_source}
            samples.append(Sample(qid, data, f"{path}:{line}"))
        return samples

    # ---- requests ---------------------------------------------------------------------------

    def temperature_for(self, category: str) -> float:
        return self.temperature if self.temperature is not None else CATEGORY_TEMPERATURE[category]

    def requests(self, sample: Sample, stage: int, prior: Sequence[Sequence[Completion]]) -> list[Request]:
        turns = sample.data["turns"]
        if stage == 0:
            return [self._answer_request(sample, (Message("user", turns[0]),))]
        if stage == 1:
            first = prior[0][0].text
            return [self._answer_request(sample, (Message("user", turns[0]), Message("assistant", first),
                                                  Message("user", turns[1])))]
        if stage == 2:
            answers = [shown_to_judge(prior[0][0], self.judge_sees_reasoning),
                       shown_to_judge(prior[1][0], self.judge_sees_reasoning)]
            return self.judge_requests(sample, answers)
        return []

    def _answer_request(self, sample: Sample, messages: tuple[Message, ...]) -> Request:
        return Request(
            kind="generate",
            messages=messages,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature_for(sample.data["category"]),
            seed=self.generation.seed,
            sample_id=sample.id,
        )

    def judge_request(self, system: str, user: str) -> Request:
        """Judges answer greedily (temperature 0, as FastChat) so a rerun grades the same way."""
        messages = (Message("system", system), Message("user", user)) if system else (Message("user", user),)
        return Request(kind="generate", messages=messages, max_new_tokens=self.judge_max_new_tokens,
                       temperature=0.0, role="judge")

    def _fields(self, sample: Sample) -> dict[str, str]:
        turns, ref = sample.data["turns"], sample.data["reference"] or ["", ""]
        return {"question": turns[0], "question_1": turns[0], "question_2": turns[1],
                "ref_answer_1": ref[0], "ref_answer_2": ref[1]}

    def _uses_reference(self, sample: Sample) -> bool:
        return sample.data["category"] in REFERENCE_CATEGORIES

    def judge_requests(self, sample: Sample, answers: Sequence[str]) -> list[Request]:
        fields = self._fields(sample) | {"answer": answers[0], "answer_1": answers[0], "answer_2": answers[1]}
        out = []
        for turn in (1, 2):
            prompt = self.prompts.get("single", self._uses_reference(sample), turn)
            out.append(self.judge_request(prompt.system_prompt, prompt.render(**fields)))
        return out

    # ---- scoring ----------------------------------------------------------------------------

    def score(self, sample: Sample, completions: Sequence[Sequence[Completion]]) -> SampleScore:
        scores: dict[str, float] = {}
        judgments = []
        valid = []
        for turn, judged in zip((1, 2), completions[2], strict=True):
            rating = parse_rating(judged.text)
            prompt = self.prompts.get("single", self._uses_reference(sample), turn)
            judgments.append({"turn": turn, "rating": rating.value, "valid": rating.value is not None,
                              "parse": rating.reason, "prompt": prompt.name, "raw": judged.text})
            scores[f"invalid_turn{turn}"] = float(rating.value is None)
            if rating.value is not None:
                scores[f"turn{turn}"] = rating.value
                valid.append(rating.value)
        if valid:
            scores["score"] = sum(valid) / len(valid)
        scores["judge_invalid"] = (2 - len(valid)) / 2
        return SampleScore(sample.id, scores, groups=(sample.data["category"],), details={
            "answers": [completions[0][0].text, completions[1][0].text],
            "judgments": judgments,
            "reference_source": sample.data.get("reference_source"),
            "judge_prompts": self.prompts.name,
            "temperature": self.temperature_for(sample.data["category"]),
        })

    def failure_score(self, sample: Sample) -> SampleScore:
        """No answer (cut inside its reasoning): the lowest rating on both turns, no judge asked."""
        scores = {"turn1": 1.0, "turn2": 1.0, "invalid_turn1": 0.0, "invalid_turn2": 0.0, "score": 1.0, "judge_invalid": 0.0}
        return SampleScore(sample.id, scores, groups=(sample.data["category"],), details={"failure": "reasoning_truncated"})

    def aggregate(self, scores: Sequence[SampleScore]) -> list[MetricValue]:
        """FastChat's averages over valid judgments: overall, per turn and per category."""
        overall: list[list[float]] = []
        per_turn: dict[int, list[list[float]]] = defaultdict(list)
        per_category: dict[str, list[list[float]]] = defaultdict(list)
        invalid = total = 0
        for s in scores:
            ratings = [s.scores[f"turn{t}"] for t in (1, 2) if f"turn{t}" in s.scores]
            overall.append(ratings)
            for group in s.groups:
                per_category[group].append(ratings)
            for t in (1, 2):
                if f"turn{t}" in s.scores:
                    per_turn[t].append([s.scores[f"turn{t}"]])
                if f"invalid_turn{t}" in s.scores:
                    total += 1
                    invalid += int(s.scores[f"invalid_turn{t}"])
        out = [self._metric("score", overall)]
        out += [self._metric(f"turn{t}/score", per_turn[t]) for t in sorted(per_turn)]
        out += [self._metric(f"{c}/score", per_category[c]) for c in sorted(per_category)]
        rate = invalid / total if total else 0.0
        out.append(MetricValue("judge_invalid_rate", rate, _binomial_se(rate, total), total, False))
        out.append(MetricValue("judge_invalid_count", float(invalid), None, total, False))
        return [m for m in out if not math.isnan(m.value)]

    @staticmethod
    def _metric(name: str, clusters: list[list[float]]) -> MetricValue:
        mean, se, n = clustered_mean(clusters)
        return MetricValue(name, mean, se, n, True)


class MTBenchPairwiseSuite(MTBenchSuite):
    """The model (A) against a baseline's stored answers (B), each turn judged in both orders.

    `--option baseline=run:RUN_ID` (a stored mtbench run in the same store) or a JSONL of
    `{id, completion: [turn1, turn2]}` / FastChat's answer file. The model's own answers come from
    the model backend as in `mtbench` (so `--backend file --completions run:OTHER` compares two
    stored runs without generating).
    """

    name = "mtbench-pairwise"
    version = "1.0"
    primary_metric = "win_rate_adjusted"
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("win_rate_adjusted", True, "(wins + ties/2) / valid comparisons, the model against the baseline"),
        MetricSpec("win_rate", True, "share of valid comparisons the model wins"),
        MetricSpec("loss_rate", False, "share of valid comparisons the baseline wins"),
        MetricSpec("tie_rate", True, "share of ties (including order-inconsistent verdicts)"),
        MetricSpec("inconsistent_rate", False, "share where the two orders disagree (position bias)"),
        MetricSpec("judge_invalid_rate", False, "share of comparisons with an unparsable verdict"),
        MetricSpec("judge_invalid_count", False, "comparisons with an unparsable verdict"),
    )
    judge_kind: Kind = "pairwise"

    def allowed_options(self) -> Sequence[str]:
        return (*super().allowed_options(), "baseline")

    def __init__(self, options: Mapping[str, Any] | None = None, generation: GenerationConfig | None = None) -> None:
        super().__init__(options, generation)
        if not self.options.get("baseline"):
            raise ConfigError("mtbench-pairwise needs --option baseline=run:RUN_ID (or a JSONL of answers)")
        self.baseline = str(self.options["baseline"])
        self._baseline_run: str | None = None

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        if self._baseline_run is not None:
            ident["baseline_run"] = self._baseline_run  # the full id, however the option abbreviated it
        elif Path(self.baseline).is_file():
            ident["baseline"] = directory_hash(self.baseline)
        return ident

    def load(self, source: str) -> list[Sample]:
        samples = super().load(source)
        answers = self._baseline_answers()
        out = []
        for s in samples:
            if s.id not in answers:
                raise DataError(self.baseline, None, "id", f"baseline has no answers for question {s.id}")
            out.append(Sample(s.id, {**s.data, "baseline": answers[s.id]}, s.source))
        return out

    def _baseline_answers(self) -> dict[str, list[str]]:
        if self.baseline.startswith("run:"):
            if self.store is None:
                raise ConfigError("a run: baseline needs the store (run this suite through `harness run`)")
            run = self.store.get_run(self.baseline[4:])
            if run["suite"] not in ("mtbench", "mtbench-pairwise"):
                raise ConfigError(f"baseline run {run['id']} is a '{run['suite']}' run, not mtbench")
            if run["status"] != "complete":
                raise ConfigError(f"baseline run {run['id']} is {run['status']}: finish it first")
            self._baseline_run = run["id"]
            answers = {}
            for row in self.store.run_samples(run["id"]):
                stages = row["completions"]
                if len(stages) >= 2 and stages[0] and stages[1]:
                    answers[row["sample_id"]] = [str(stages[0][0].get("text", "")), str(stages[1][0].get("text", ""))]
            return answers
        return load_answers(self.baseline)

    def judge_requests(self, sample: Sample, answers: Sequence[str]) -> list[Request]:
        base = sample.data["baseline"]
        out = []
        for turn in (1, 2):
            prompt = self.prompts.get("pairwise", self._uses_reference(sample), turn)
            for first, second in ((answers, base), (base, answers)):  # both orders cancel position bias
                fields = self._fields(sample) | {
                    "answer_a": first[0], "answer_b": second[0], "answer_a_1": first[0], "answer_a_2": first[1],
                    "answer_b_1": second[0], "answer_b_2": second[1]}
                out.append(self.judge_request(prompt.system_prompt, prompt.render(**fields)))
        return out

    def failure_score(self, sample: Sample) -> SampleScore:
        """No answer (cut inside its reasoning): the baseline wins both turns, no judge asked."""
        scores = {f"{k}{t}": 0.0 for t in (1, 2) for k in ("turn", "invalid_turn", "inconsistent_turn")}
        return SampleScore(sample.id, scores, groups=(sample.data["category"],), details={"failure": "reasoning_truncated"})

    def score(self, sample: Sample, completions: Sequence[Sequence[Completion]]) -> SampleScore:
        judged = completions[2]
        scores: dict[str, float] = {}
        comparisons = []
        for turn in (1, 2):
            g1 = parse_verdict(judged[2 * (turn - 1)].text)  # model is A
            g2 = parse_verdict(judged[2 * (turn - 1) + 1].text)  # model is B
            outcome = _combine(g1, g2)
            comparisons.append({"turn": turn, "model_first": g1, "model_second": g2, "outcome": outcome,
                                "raw": [judged[2 * (turn - 1)].text, judged[2 * (turn - 1) + 1].text]})
            scores[f"invalid_turn{turn}"] = float(outcome is None)
            if outcome is not None:
                scores[f"turn{turn}"] = {"win": 1.0, "tie": 0.5, "inconsistent": 0.5, "loss": 0.0}[outcome]
                scores[f"inconsistent_turn{turn}"] = float(outcome == "inconsistent")
        return SampleScore(sample.id, scores, groups=(sample.data["category"],), details={
            "answers": [completions[0][0].text, completions[1][0].text],
            "baseline": sample.data["baseline"],
            "comparisons": comparisons,
            "reference_source": sample.data.get("reference_source"),
            "judge_prompts": self.prompts.name,
        })

    def aggregate(self, scores: Sequence[SampleScore]) -> list[MetricValue]:
        outcomes: list[tuple[str, int, float, float, str]] = []  # (category, turn, adjusted, inconsistent, question)
        invalid = total = 0
        for s in scores:
            for t in (1, 2):
                if f"invalid_turn{t}" not in s.scores:
                    continue
                total += 1
                if f"turn{t}" not in s.scores:
                    invalid += 1
                    continue
                category = s.groups[0] if s.groups else ""
                outcomes.append((category, t, s.scores[f"turn{t}"], s.scores.get(f"inconsistent_turn{t}", 0.0), s.sample_id))
        out: list[MetricValue] = []
        n = len(outcomes)
        if n:
            for name, value in (
                ("win_rate_adjusted", lambda o: o[2]),
                ("win_rate", lambda o: float(o[2] == 1.0)),
                ("loss_rate", lambda o: float(o[2] == 0.0)),
                ("tie_rate", lambda o: float(o[2] == 0.5)),
                ("inconsistent_rate", lambda o: o[3]),
            ):
                mean, se, _ = clustered_mean(_by_question(outcomes, value))
                out.append(MetricValue(name, mean, se, n, self.spec(name).higher_is_better))
            for t in (1, 2):
                vals = [[o[2]] for o in outcomes if o[1] == t]
                if vals:
                    mean, se, k = clustered_mean(vals)
                    out.append(MetricValue(f"turn{t}/win_rate_adjusted", mean, se, k, True))
            for c in sorted({o[0] for o in outcomes}):
                mean, se, _ = clustered_mean(_by_question([o for o in outcomes if o[0] == c], lambda o: o[2]))
                out.append(MetricValue(f"{c}/win_rate_adjusted", mean, se, sum(o[0] == c for o in outcomes), True))
        rate = invalid / total if total else 0.0
        out.append(MetricValue("judge_invalid_rate", rate, _binomial_se(rate, total), total, False))
        out.append(MetricValue("judge_invalid_count", float(invalid), None, total, False))
        return out


def _by_question(outcomes: Sequence[tuple[str, int, float, float, str]], value: Any) -> list[list[float]]:
    """Values clustered by question: both turns of a question share it, so the standard error treats
    the question as the unit, as the single-answer suite does."""
    clusters: dict[str, list[float]] = defaultdict(list)
    for o in outcomes:
        clusters[o[4]].append(float(value(o)))
    return list(clusters.values())


def _combine(model_first: str | None, model_second: str | None) -> str | None:
    """Both orders agree: that outcome; they disagree: a tie (FastChat's 'inconsistent'); unparsable: None."""
    if model_first is None or model_second is None:
        return None
    first = {"A": "win", "B": "loss", "C": "tie"}[model_first]
    second = {"A": "loss", "B": "win", "C": "tie"}[model_second]
    return first if first == second else "inconsistent"


def _binomial_se(rate: float, n: int) -> float | None:
    return math.sqrt(rate * (1 - rate) / n) if n > 1 else None


def _question_id(row: dict[str, Any], path: Path, line: int) -> str:
    qid = row.get("question_id")
    if qid is None:
        raise DataError(str(path), line, "question_id", "missing")
    if isinstance(qid, bool) or not isinstance(qid, (int, str)) or (isinstance(qid, str) and not qid.strip()):
        raise DataError(str(path), line, "question_id", "expected an integer or a non-empty string")
    return str(qid)


def _two_strings(value: Any, path: str | Path, line: int, field: str, allow_empty: bool = False) -> list[str]:
    """MT-Bench has exactly two turns; each must be a non-empty string."""
    if value is None:
        raise DataError(str(path), line, field, "missing")
    if not isinstance(value, list):
        raise DataError(str(path), line, field, f"expected a list of 2 strings, got {type(value).__name__}")
    if len(value) != 2:
        raise DataError(str(path), line, field, f"expected 2 turns, found {len(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise DataError(str(path), line, f"{field}[{i}]", f"expected a string, got {type(item).__name__}")
        if not item.strip() and not allow_empty:
            hint = " (a reference-graded question needs both reference turns)" if field == "reference" else ""
            raise DataError(str(path), line, f"{field}[{i}]", f"empty{hint}")
    return list(value)


def load_references(path: str | Path) -> dict[str, list[str]]:
    """FastChat's reference-answer JSONL: `{question_id, choices: [{turns: [t1, t2]}]}`."""
    refs: dict[str, list[str]] = {}
    for line, row in read_jsonl(path):
        qid = _question_id(row, Path(path), line)
        choices = row.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise DataError(str(path), line, "choices", "expected a list with at least one {turns: [...]}")
        refs[qid] = _two_strings(choices[0].get("turns"), path, line, "choices[0].turns")
    return refs


def load_answers(path: str | Path) -> dict[str, list[str]]:
    """Two-turn answers: `{id, completion: [t1, t2]}` (the file backend's format) or FastChat's answer file."""
    answers: dict[str, list[str]] = {}
    for line, row in read_jsonl(path):
        if "choices" in row:
            qid = _question_id(row, Path(path), line)
            choices = row["choices"]
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                raise DataError(str(path), line, "choices", "expected a list with at least one {turns: [...]}")
            turns = choices[0].get("turns")
            field = "choices[0].turns"
        else:
            if "id" not in row:
                raise DataError(str(path), line, "id", "missing")
            qid, turns, field = str(row["id"]), row.get("completion"), "completion"
        if not isinstance(turns, list) or len(turns) < 2 or not all(isinstance(t, str) for t in turns[:2]):
            raise DataError(str(path), line, field, "expected a list of 2 answer strings")
        answers[qid] = [turns[0], turns[1]]
    return answers
