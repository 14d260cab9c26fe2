"""A suite defined by a task file (`harness run path/to/task.yaml`): no Python to write.

The suite's name is the task file's path as given, so `suite_class(path)` gives the gate, compare,
monitors and the board the task's primary metric and directions like any registered suite. The
file's content (and every side file it names: few-shot examples, local metric scripts, Python
scorer modules) is part of the run's identity, and the file's text is stored with the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.config import GenerationConfig
from harness.datafiles import read_csv, read_jsonl
from harness.errors import DataError
from harness.types import Completion, Message, MetricSpec, MetricValue, Request, Sample, SampleScore
from suites.base import Suite, mean_metrics
from suites.task_file import LoadedTask, Template, load_task_file
from suites.task_scorers import LOWER_IS_BETTER, Scorer, make_scorers

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def task_suite_class(path: str) -> type[YamlTaskSuite]:
    """A Suite class for one task file, its metrics and primary metric read from the file."""
    task = load_task_file(path)
    specs = task.spec.scorer_specs()
    metrics = tuple(
        MetricSpec(s.metric_name(), s.higher_is_better if s.higher_is_better is not None else s.use not in LOWER_IS_BETTER,
                   f"{s.use} (task file {path})")
        for s in specs
    )
    attrs = {"name": os.path.normpath(path), "version": task.spec.version, "metrics": metrics,
             "primary_metric": task.spec.primary or metrics[0].name, "task": task}
    return type(f"YamlTaskSuite[{path}]", (YamlTaskSuite,), attrs)


def read_rows(path: str, fmt: str) -> list[tuple[int, dict[str, Any]]]:
    """(line or row number, row) from JSONL, CSV (with a header) or parquet."""
    if fmt == "auto":
        suffix = Path(path).suffix.lower()
        fmt = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "jsonl")
    if fmt == "csv":
        return [(n, dict(r)) for n, r in read_csv(path) if isinstance(r, dict)]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if not Path(path).is_file():
            raise DataError(path, None, None, "file not found")
        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise DataError(path, None, None, f"not a readable parquet file ({exc})") from None
        return [(i + 1, row) for i, row in enumerate(table.to_pylist())]
    return list(read_jsonl(path))


class YamlTaskSuite(Suite):
    name = "task"
    version = "1"
    primary_metric = ""
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    task: ClassVar[LoadedTask]

    def __init__(self, options: Mapping[str, Any] | None = None, generation: GenerationConfig | None = None) -> None:
        super().__init__(options, generation)
        spec = self.task.spec
        self.form = spec.request or spec.multiple_choice
        assert self.form is not None
        self.where = "request" if spec.request is not None else "multiple_choice"
        default = "{" + spec.data.input + "}" if spec.data.input else None
        if self.form.template is None and default is None:
            raise self.task.error((self.where,), "give a `template` (or data.input to use that field as the prompt)")
        self.template = self._template(self.form.template or default or "", (self.where, "template"))
        shots = self.form.fewshot
        self.answer = self._template(shots.answer, (self.where, "fewshot", "answer")) if shots and shots.answer else None
        if spec.request is not None and shots is not None and self.answer is None:
            raise self.task.error((self.where, "fewshot"), "few-shot examples of a generation task need an `answer` template")
        mc = spec.multiple_choice
        self.continuation = (
            self._template(mc.continuation, ("multiple_choice", "continuation"), {"choice", "letter", "index"}) if mc else None
        )
        self.scorers: list[Scorer] = make_scorers(self.task)
        self._prefix = ""
        self._shots: list[tuple[str, str]] = []

    def _template(self, text: str, loc: tuple[str, ...], allowed: set[str] | None = None) -> Template:
        try:
            template = Template(text, self.form.syntax)  # type: ignore[union-attr]
        except Exception as exc:  # jinja2.TemplateSyntaxError, ValueError for `{}`
            raise self.task.error(loc, f"not a valid template: {exc}") from None
        if allowed is not None and template.fields - allowed:
            raise self.task.error(loc, f"names {sorted(template.fields - allowed)}; it can use {sorted(allowed)}")
        return template

    # ---- identity ---------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """The task file's hash and text (stored with the run) plus hashes of the files it names."""
        return {"task_file": {"path": self.name, "sha256": self.task.sha256, "text": self.task.text}} | super().identity()

    def identity_files(self) -> Sequence[str]:
        shots = self.form.fewshot  # type: ignore[union-attr]
        files = [self.task.resolve(shots.path)] if shots else []
        return files + [f for s in self.scorers for f in s.identity_files()]

    # ---- loading ----------------------------------------------------------------------------

    def default_data(self) -> str:
        return self.task.resolve(self.task.spec.data.path)

    def _needed(self, shots: bool) -> dict[str, tuple[str | int, ...]]:
        """Every field the task reads from a data row (or a few-shot row), with where the task file
        names it."""
        data = self.task.spec.data
        need: dict[str, tuple[str | int, ...]] = {f: (self.where, "template") for f in self.template.fields}
        if not shots:
            for key in ("input", "id", "group"):
                if getattr(data, key):
                    need[getattr(data, key)] = ("data", key)
            refs = data.reference if isinstance(data.reference, list) else [data.reference] if data.reference else []
            need.update({f: ("data", "reference") for f in refs})
        mc = self.task.spec.multiple_choice
        if mc and not (shots and self.answer is not None):
            choices = mc.choices if isinstance(mc.choices, list) else [mc.choices]
            need.update({f: ("multiple_choice", "choices") for f in choices} | {mc.gold: ("multiple_choice", "gold")})
        if shots and self.answer is not None:
            need.update({f: (self.where, "fewshot", "answer") for f in self.answer.fields})
        return need

    def _rows(self, source: str, shots: bool = False, limit: int | None = None) -> list[tuple[int, dict[str, Any]]]:
        rows = read_rows(source, "auto" if shots else self.task.spec.data.format)[:limit]
        if not rows:
            raise DataError(source, None, None, "no samples found")
        present = set().union(*(r.keys() for _, r in rows))
        for field, loc in self._needed(shots).items():
            if field not in present:
                raise self.task.error(loc, f"names field '{field}', which {source} does not have "
                                           f"(its fields: {', '.join(sorted(present))})")
            for line, row in rows:
                if row.get(field) is None:
                    raise DataError(source, line, field, f"missing (the task file {self.task.path} uses it)")
        return rows

    def load(self, source: str) -> list[Sample]:
        data = self.task.spec.data
        shots = self.form.fewshot  # type: ignore[union-attr]
        if shots is not None:
            shot_file = self.task.resolve(shots.path)
            self._shots = [self._shot(row) for _, row in self._rows(shot_file, shots=True, limit=shots.n)]
            self._prefix = "".join(q + a + self.form.separator for q, a in self._shots)  # type: ignore[union-attr]
        out: list[Sample] = []
        seen: set[str] = set()
        for position, (line, row) in enumerate(self._rows(source), start=1):
            sample_id = str(row[data.id]) if data.id else str(position)
            if sample_id in seen:
                raise DataError(source, line, data.id or "(row number)", f"duplicate id '{sample_id}'")
            seen.add(sample_id)
            if self.task.spec.multiple_choice is not None:
                self._gold(row, self._choices(row, source, line), source, line)
            self._check_references(row, source, line)
            out.append(Sample(sample_id, row, f"{source}:{line}"))
        return out

    def _check_references(self, row: Mapping[str, Any], source: str, line: int) -> None:
        ref = self.task.spec.data.reference
        if ref is None:
            return
        for value in self.references(Sample("", row)):
            for scorer in self.scorers:
                problem = scorer.check_reference(value)
                if problem:
                    raise DataError(source, line, ref if isinstance(ref, str) else ", ".join(ref), problem)

    def _choices(self, row: Mapping[str, Any], source: str, line: int) -> list[str]:
        mc = self.task.spec.multiple_choice
        assert mc is not None
        if isinstance(mc.choices, list):
            return [str(row[f]) for f in mc.choices]
        value = row[mc.choices]
        if isinstance(value, str) and value.strip().startswith("["):
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        if not isinstance(value, list) or len(value) < 2:
            raise DataError(source, line, mc.choices, "expected a list of at least two options")
        return [str(v) for v in value]

    def _gold(self, row: Mapping[str, Any], choices: Sequence[str], source: str, line: int) -> int:
        mc = self.task.spec.multiple_choice
        assert mc is not None
        value = row[mc.gold]
        if isinstance(value, str) and value in choices:  # an option's own text wins over an index or letter
            return choices.index(value)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < len(choices):
                return value
        elif isinstance(value, str) and len(value.strip()) == 1 and value.strip() in LETTERS[: len(choices)]:
            return LETTERS.index(value.strip())
        raise DataError(source, line, mc.gold, f"{value!r} is not an option's index, text or letter ({len(choices)} options)")

    def _shot(self, row: Mapping[str, Any]) -> tuple[str, str]:
        question = self.template.render(row)
        if self.answer is not None:
            return question, self.answer.render(row)
        choices = self._choices(row, "few-shot", 0)
        gold = self._gold(row, choices, "few-shot", 0)
        assert self.continuation is not None
        return question, self.continuation.render({"choice": choices[gold], "letter": LETTERS[gold], "index": gold})

    # ---- requests ---------------------------------------------------------------------------

    def requests(self, sample: Sample, stage: int, prior: Sequence[Sequence[Completion]]) -> list[Request]:
        if stage > 0:
            return []
        prompt = self.template.render(sample.data)
        spec = self.task.spec
        if spec.multiple_choice is not None:
            assert self.continuation is not None
            choices = self._choices(sample.data, sample.source, 0)
            return [
                Request(kind="loglikelihood", prompt=self._prefix + prompt,
                        continuation=self.continuation.render({"choice": c, "letter": LETTERS[i], "index": i}))
                for i, c in enumerate(choices)
            ]
        req = spec.request
        assert req is not None
        g = self.generation
        base = Request(
            kind="generate",
            max_new_tokens=req.max_new_tokens or g.max_new_tokens,
            temperature=req.temperature if req.temperature is not None else g.temperature,
            top_p=req.top_p if req.top_p is not None else g.top_p,
            stop=tuple(req.stop),
            seed=g.seed,
            sample_id=sample.id,
        )
        if req.style == "plain":
            return [dataclasses.replace(base, prompt=self._prefix + prompt)]
        turns = [Message("system", req.system)] if req.system is not None else []
        for question, answer in self._shots:
            turns += [Message("user", question), Message("assistant", answer)]
        turns.append(Message("user", prompt))
        return [dataclasses.replace(base, messages=tuple(turns))]

    # ---- scoring ----------------------------------------------------------------------------

    def references(self, sample: Sample) -> list[Any]:
        ref = self.task.spec.data.reference
        if ref is None:
            return []
        if isinstance(ref, list):
            return [sample.data[f] for f in ref]
        value = sample.data[ref]
        return list(value) if isinstance(value, list) else [value]

    def score(self, sample: Sample, completions: Sequence[Sequence[Completion]]) -> SampleScore:
        spec = self.task.spec
        scores: dict[str, float] = {}
        details: dict[str, Any] = {}
        if spec.multiple_choice is not None:
            choices = self._choices(sample.data, sample.source, 0)
            gold = self._gold(sample.data, choices, sample.source, 0)
            logprobs = [float(c.logprob) if c.logprob is not None else -math.inf for c in completions[0]]
            conts = [self.continuation.render({"choice": c, "letter": LETTERS[i], "index": i})  # type: ignore[union-attr]
                     for i, c in enumerate(choices)]
            # lm-eval's argmax (first of equal maxima) and acc_norm (log-likelihood per character).
            chosen = max(range(len(logprobs)), key=lambda i: (logprobs[i], -i))
            normed = [lp / max(len(c), 1) for lp, c in zip(logprobs, conts, strict=True)]
            chosen_norm = max(range(len(normed)), key=lambda i: (normed[i], -i))
            prediction, references = choices[chosen], [choices[gold]]
            builtin = {"acc": float(chosen == gold), "acc_norm": float(chosen_norm == gold)}
            details.update(chosen=chosen, gold=gold, logprobs=logprobs)
        else:
            raw = completions[0][0].text
            prediction, references, builtin = self._extract(raw), self.references(sample), {}
            if prediction != raw:
                details["raw"] = raw
        details.update(prediction=prediction, references=references)
        for scorer in self.scorers:
            value = builtin[scorer.spec.use] if scorer.spec.use in builtin else scorer.score(prediction, references, sample.data)
            if value is not None:
                scores[scorer.name] = value
        group = spec.data.group
        groups = (f"{group}/{sample.data[group]}",) if group else ()
        return SampleScore(sample.id, scores, groups, details)

    def _extract(self, text: str) -> str:
        pattern = self.task.spec.request.extract if self.task.spec.request else None
        if not pattern:
            return text
        match = re.search(pattern, text, re.DOTALL)
        if match is None:
            return ""
        return match.group(1) if match.groups() else match.group(0)

    def aggregate(self, scores: Sequence[SampleScore]) -> list[MetricValue]:
        """Means of per-sample scores; corpus-level scorers (sacrebleu, `evaluate`) replace the mean
        with their corpus value, overall and per group."""
        values = {m.name: m for m in mean_metrics(scores, self.spec)}
        corpus = [s for s in self.scorers if s.is_corpus()]
        buckets: dict[str, list[SampleScore]] = defaultdict(list)
        for s in scores:
            buckets[""].append(s)
            for g in s.groups:
                buckets[g + "/"].append(s)
        for prefix, members in buckets.items():
            preds = [str(s.details.get("prediction", "")) for s in members]
            refs = [list(s.details.get("references") or []) for s in members]
            for scorer in corpus:
                value = scorer.corpus(preds, refs)
                if value is not None:
                    values[prefix + scorer.name] = MetricValue(prefix + scorer.name, value.value, value.stderr, value.n,
                                                               value.higher_is_better, value.details)
        return [values[k] for k in sorted(values)]
