"""Scorers a task file can name: the project's built-in metrics, `evaluate` metrics and Python functions.

Built-ins are the functions the bundled suites use (SQuAD exact match and token F1 from
rag-extraction, sacrebleu through the translation suite's helpers, JSON field F1 from
attribute-extraction, the refusal classifier), so a task file scores exactly as those suites do.
A scorer gives a number per sample (what the gate pairs) and/or a corpus-level value computed from
every sample's prediction and references (BLEU, most `evaluate` metrics).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.types import MetricValue
from suites.task_file import LoadedTask, ScorerSpec

SACREBLEU = ("bleu", "chrf", "chrf++", "ter")
JSON_SCORERS = ("json_field_f1", "json_exact_match", "valid_json", "value_recall")
BUILTINS = ("exact_match", "f1", *SACREBLEU, *JSON_SCORERS, "regex", "refusal", "acc", "acc_norm")
#: Built-ins whose number is better when lower (everything else: higher is better).
LOWER_IS_BETTER = {"ter", "refusal"}
#: Built-ins that need the data's reference field.
NEEDS_REFERENCE = {"exact_match", "f1", *SACREBLEU, *JSON_SCORERS}


class Scorer:
    """One metric. `score` gives the per-sample value (None: not scored per sample); `corpus`
    gives the corpus-level value from all predictions and references (None: the mean is used)."""

    needs_reference = False

    def __init__(self, spec: ScorerSpec, task: LoadedTask, index: int) -> None:
        self.spec, self.task, self.index = spec, task, index
        self.name = spec.metric_name()
        self.higher_is_better = spec.higher_is_better if spec.higher_is_better is not None else self.default_higher()

    def default_higher(self) -> bool:
        return True

    def score(self, prediction: str, references: Sequence[Any], data: Mapping[str, Any]) -> float | None:
        return None

    def corpus(self, predictions: Sequence[str], references: Sequence[Sequence[Any]]) -> MetricValue | None:
        return None

    def is_corpus(self) -> bool:
        """Whether `corpus` gives the aggregate (else the mean of per-sample scores is reported)."""
        return False

    def identity_files(self) -> list[str]:
        return []

    def error(self, problem: str, field: str = "use") -> UserError:
        return self.task.error(scorer_loc(self.task, self.index, field), problem)

    def check_reference(self, reference: Any) -> str | None:
        """What is wrong with one sample's reference for this scorer (checked when the data loads)."""
        return None

    def arg(self, key: str, default: Any = None) -> Any:
        return self.spec.args.get(key, default)

    def check_args(self, allowed: Sequence[str]) -> None:
        unknown = sorted(set(self.spec.args) - set(allowed))
        if unknown:
            raise self.error(f"unknown arg(s) {unknown} for scorer '{self.spec.use}' (allowed: {', '.join(allowed) or 'none'})", "args")


def scorer_loc(task: LoadedTask, index: int, field: str = "use") -> tuple[str | int, ...]:
    """Where scorer `index` sits in the task file (a plain string entry has no sub-fields)."""
    entry = task.spec.scorers[index] if index < len(task.spec.scorers) else None
    return ("scorers", index) if isinstance(entry, str) or entry is None else ("scorers", index, field)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class Builtin(Scorer):
    def __init__(self, spec: ScorerSpec, task: LoadedTask, index: int) -> None:
        super().__init__(spec, task, index)
        self.kind = spec.use
        self.needs_reference = self.kind in NEEDS_REFERENCE or (self.kind == "regex" and "pattern" not in spec.args)
        allowed = {"regex": ("pattern", "ignore_case"), "bleu": ("tokenize", "target_lang", "bootstrap")}
        self.check_args(allowed.get(self.kind, ("bootstrap",) if self.kind in SACREBLEU else ()))
        if self.kind in SACREBLEU:
            from suites.translation_corpus import sacrebleu_metric

            self._sentence = sacrebleu_metric(self.kind, self.arg("tokenize"), self.arg("target_lang"), sentence=True,
                                              who=f"{task.path}: scorer '{self.name}'")
        if self.kind == "regex" and "pattern" in spec.args:
            self._pattern = self._compile(str(self.arg("pattern")))

    def default_higher(self) -> bool:
        return self.spec.use not in LOWER_IS_BETTER

    def _compile(self, pattern: str) -> re.Pattern[str]:
        try:
            return re.compile(pattern, re.IGNORECASE if self.arg("ignore_case") else 0)
        except re.error as exc:
            raise self.error(f"not a valid regular expression: {exc}", "args") from None

    def check_reference(self, reference: Any) -> str | None:
        if self.kind in JSON_SCORERS and _gold_object(reference) is None:
            return f"scorer '{self.name}' needs a JSON object here, got {_text(reference)[:60]!r}"
        if self.kind == "regex" and not hasattr(self, "_pattern"):
            try:
                re.compile(_text(reference))
            except re.error as exc:
                return f"scorer '{self.name}' reads the reference as a regex: {exc}"
        return None

    def score(self, prediction: str, references: Sequence[Any], data: Mapping[str, Any]) -> float | None:
        from suites import attribute_extraction as ax
        from suites import rag_extraction as rag

        kind = self.kind
        if kind == "exact_match":
            return max(rag.exact_match(_text(r), prediction) for r in references)
        if kind == "f1":
            return max(rag.token_f1(_text(r), prediction) for r in references)
        if kind in SACREBLEU:
            return float(self._sentence.sentence_score(prediction, [_text(r) for r in references]).score)
        if kind in JSON_SCORERS:
            gold = {ax._norm(k): ax._norm(v) for k, v in (_gold_object(references[0]) or {}).items()}
            if kind == "value_recall":
                return ax.value_recall(gold, prediction)
            predicted = ax.parse_attributes(prediction)
            if kind == "valid_json":
                return float(predicted is not None)
            return float(predicted == gold) if kind == "json_exact_match" else ax.field_f1(gold, predicted)
        if kind == "regex":
            patterns = [self._pattern] if hasattr(self, "_pattern") else [self._compile(_text(r)) for r in references]
            return float(any(p.search(prediction) for p in patterns))
        if kind == "refusal":
            from harness.refusal import classify

            return float(classify(prediction).refused)
        raise AssertionError(kind)  # acc / acc_norm are computed by the multiple-choice task itself

    def is_corpus(self) -> bool:
        return self.kind in SACREBLEU

    def corpus(self, predictions: Sequence[str], references: Sequence[Sequence[Any]]) -> MetricValue | None:
        if self.kind not in SACREBLEU:
            return None
        from suites.translation_corpus import corpus_sacrebleu

        refs = [[_text(r) for r in rs] for rs in references]
        value = corpus_sacrebleu(self.kind, predictions, refs, self.arg("tokenize"), self.arg("target_lang"),
                                 int(self.arg("bootstrap", 1)), self.name)
        return MetricValue(value.name, value.value, value.stderr, value.n, self.higher_is_better, value.details)


def _gold_object(reference: Any) -> Mapping[str, Any] | None:
    """A JSON-object reference (given as an object or as JSON text), or None."""
    if isinstance(reference, str):
        try:
            reference = json.loads(reference)
        except json.JSONDecodeError:
            return None
    return reference if isinstance(reference, dict) else None


class EvaluateScorer(Scorer):
    """`evaluate:NAME_OR_PATH`: a hub metric id (needs network) or a local metric script (offline)."""

    needs_reference = True

    def __init__(self, spec: ScorerSpec, task: LoadedTask, index: int) -> None:
        super().__init__(spec, task, index)
        self.check_args(("key", "per_sample", "kwargs", "load_kwargs"))
        target = spec.use.partition(":")[2]
        local = Path(task.resolve(target))
        self.local = str(local) if local.exists() else None
        try:
            import evaluate
        except ImportError:
            raise self.error("needs the `evaluate` package: pip install 'harness-eval[evaluate]'") from None
        try:
            self.metric = evaluate.load(self.local or target, **dict(self.arg("load_kwargs") or {}))
        except Exception as exc:  # evaluate raises many kinds (FileNotFoundError, ConnectionError, ImportError)
            where = "a local metric script" if self.local else "an `evaluate` hub metric (needs network; offline, point at a local script)"
            raise self.error(f"cannot load {where} '{target}': {type(exc).__name__}: {exc}") from None

    def _compute(self, predictions: Sequence[str], references: Sequence[Sequence[Any]]) -> dict[str, Any]:
        single = all(len(r) == 1 for r in references)
        refs = [r[0] for r in references] if single else [list(r) for r in references]
        result = self.metric.compute(predictions=list(predictions), references=refs, **dict(self.arg("kwargs") or {}))
        if not isinstance(result, Mapping) or not result:
            raise UserError(f"evaluate metric '{self.spec.use}' returned {result!r}, expected a dict of numbers")
        return dict(result)

    def _value(self, result: Mapping[str, Any]) -> float:
        key = self.arg("key")
        numeric = [k for k, v in result.items() if isinstance(v, int | float) and not isinstance(v, bool)]
        if key is None:
            key = self.name if self.name in numeric else (numeric[0] if len(numeric) == 1 else None)
        if key not in result or key not in numeric:
            raise UserError(f"{self.task.path}: scorer '{self.name}': give args.key, one of {sorted(numeric)} "
                            f"(the metric returned {sorted(result)})")
        return float(result[key])

    def score(self, prediction: str, references: Sequence[Any], data: Mapping[str, Any]) -> float | None:
        return self._value(self._compute([prediction], [references])) if self.arg("per_sample") else None

    def is_corpus(self) -> bool:
        return not self.arg("per_sample")

    def corpus(self, predictions: Sequence[str], references: Sequence[Sequence[Any]]) -> MetricValue | None:
        if self.arg("per_sample"):
            return None
        result = self._compute(predictions, references)
        details = {"level": "corpus", "metric": self.spec.use, "result": json.loads(json.dumps(result, default=str))}
        return MetricValue(self.name, self._value(result), None, len(predictions), self.higher_is_better, details)

    def identity_files(self) -> list[str]:
        return [self.local] if self.local else []


class PythonScorer(Scorer):
    """`python:module:function` (or `python:file.py:function`): fn(prediction, references, data) -> number."""

    def __init__(self, spec: ScorerSpec, task: LoadedTask, index: int) -> None:
        super().__init__(spec, task, index)
        self.check_args(())
        module_name, _, func = spec.use.partition(":")[2].rpartition(":")
        if not module_name or not func:
            raise self.error("expected python:module:function")
        self.fn, self.file = self._import(module_name, func)
        self.needs_reference = False

    def _import(self, module_name: str, func: str) -> tuple[Callable[..., Any], str | None]:
        added = str(self.task.folder) not in sys.path
        if added:
            sys.path.insert(0, str(self.task.folder))
        try:
            if module_name.endswith(".py"):
                path = Path(self.task.resolve(module_name))
                loader_spec = importlib.util.spec_from_file_location(f"harness_task_scorer_{path.stem}", path)
                if loader_spec is None or loader_spec.loader is None or not path.is_file():
                    raise FileNotFoundError(str(path))
                module = importlib.util.module_from_spec(loader_spec)
                loader_spec.loader.exec_module(module)
            else:
                module = importlib.import_module(module_name)
        except Exception as exc:
            raise self.error(f"cannot import '{module_name}': {type(exc).__name__}: {exc}") from None
        finally:
            if added:
                sys.path.remove(str(self.task.folder))
        fn = getattr(module, func, None)
        if not callable(fn):
            raise self.error(f"'{module_name}' has no function '{func}'")
        return fn, getattr(module, "__file__", None)

    def score(self, prediction: str, references: Sequence[Any], data: Mapping[str, Any]) -> float | None:
        try:
            value = self.fn(prediction, list(references), dict(data))
        except Exception as exc:  # the user's function: report it as theirs, not as a harness crash
            raise UserError(f"{self.task.path}: scorer '{self.spec.use}' raised {type(exc).__name__}: {exc}") from exc
        if value is None:
            return None
        if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
            raise UserError(f"{self.task.path}: scorer '{self.spec.use}' returned {value!r}, expected a number")
        return float(value)

    def identity_files(self) -> list[str]:
        return [self.file] if self.file else []


def make_scorers(task: LoadedTask) -> list[Scorer]:
    """Every scorer of the task, loaded now, so an unknown name or a missing script stops the run early."""
    out: list[Scorer] = []
    mc = task.spec.multiple_choice is not None
    for i, spec in enumerate(task.spec.scorer_specs()):
        kind = spec.use.partition(":")[0]
        if kind == "evaluate" and ":" in spec.use:
            scorer: Scorer = EvaluateScorer(spec, task, i)
        elif kind == "python" and ":" in spec.use:
            scorer = PythonScorer(spec, task, i)
        elif spec.use in BUILTINS:
            scorer = Builtin(spec, task, i)
            if spec.use in ("acc", "acc_norm") and not mc:
                raise scorer.error(f"'{spec.use}' scores multiple-choice tasks only")
        else:
            import difflib

            close = difflib.get_close_matches(spec.use, BUILTINS, n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise task.error(scorer_loc(task, i), f"unknown scorer '{spec.use}' (built-ins: {', '.join(BUILTINS)}; "
                                    f"or evaluate:NAME_OR_PATH, python:module:function).{hint}")
        if scorer.needs_reference and task.spec.data.reference is None:
            raise scorer.error(f"scorer '{spec.use}' compares with a reference: set data.reference")
        out.append(scorer)
    return out
