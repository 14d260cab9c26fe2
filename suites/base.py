"""The Suite contract: load samples, turn each into requests, score each answer, aggregate.

Suites are typed Python (never code in YAML). A suite may need several stages of requests per
sample (MT-Bench's second turn follows the model's first answer; a judge grades both): the runner
calls `requests(sample, stage, prior)` for stage 0, 1, ... until it returns an empty list, caching
and storing every answer, and then `score(sample, completions)` once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.config import GenerationConfig
from harness.types import Completion, MetricSpec, MetricValue, Request, Sample, SampleScore

if TYPE_CHECKING:
    from harness.store import Store


class Suite(ABC):
    """Base class. Subclasses set `name`, `version` (bump it when scoring changes) and `metrics`."""

    name: ClassVar[str]
    version: ClassVar[str]
    metrics: ClassVar[tuple[MetricSpec, ...]]
    #: The metric the gate and summaries lead with.
    primary_metric: ClassVar[str]
    #: The run's store, bound by the runner before `load` (a suite comparing against a stored run reads it).
    store: Store | None = None

    def __init__(self, options: Mapping[str, Any] | None = None, generation: GenerationConfig | None = None) -> None:
        self.options = dict(options or {})
        self.generation = generation or GenerationConfig()
        self._check_options()

    def _check_options(self) -> None:
        """Reject unknown suite options (a typo must not silently become a default)."""
        from harness.errors import ConfigError

        unknown = set(self.options) - set(self.allowed_options())
        if unknown:
            allowed = ", ".join(sorted(self.allowed_options())) or "none"
            raise ConfigError(f"suite '{self.name}': unknown option(s) {sorted(unknown)} (allowed: {allowed})")

    def number_option(self, key: str, default: Any, kind: type = int, minimum: float | None = None) -> Any:
        """A numeric suite option (given as text on the command line) checked for type and range.

        `default` is returned as is when the option is absent (None means "not set").
        """
        from harness.errors import ConfigError

        raw = self.options.get(key)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            what = "an integer" if kind is int else "a number"
            raise ConfigError(f"suite '{self.name}': option '{key}'={raw!r} is not {what}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"suite '{self.name}': option '{key}'={raw!r} must be at least {minimum}")
        return value

    def flag_option(self, key: str, default: bool = False) -> bool:
        """A yes/no suite option (true/false, given as text on the command line or a YAML boolean)."""
        from harness.errors import ConfigError

        raw = self.options.get(key)
        if raw is None or isinstance(raw, bool):
            return default if raw is None else raw
        text = str(raw).strip().lower()
        if text not in ("true", "false", "yes", "no", "1", "0"):
            raise ConfigError(f"suite '{self.name}': option '{key}'={raw!r} is not true or false")
        return text in ("true", "yes", "1")

    def allowed_options(self) -> Sequence[str]:
        return ()

    def roles(self) -> set[str]:
        """Backends this suite will ask ("model", "judge"): checked before a run is created, so a
        missing judge is a configuration error, not a run that fails after its first stage."""
        return {"model"}

    def identity(self) -> dict[str, Any]:
        """Content hashes of side files the options point at (reference answers, judge prompts).

        The runner adds them to the run's identity, so editing such a file never resumes a stale run.
        The default hashes `identity_files()`; suites with non-file identity override this.
        """
        from harness.provenance import directory_hash

        return {f: directory_hash(f) for f in self.identity_files() if Path(f).exists()}

    @abstractmethod
    def default_data(self) -> str:
        """Path of the small sample bundled with the project (used when --data is not given)."""

    @abstractmethod
    def load(self, source: str) -> list[Sample]:
        """Read every sample from `source`, raising DataError (file, line, field) on bad rows."""

    @abstractmethod
    def requests(self, sample: Sample, stage: int, prior: Sequence[Sequence[Completion]]) -> list[Request]:
        """Requests for one stage; `prior` holds the answers of earlier stages. [] ends the sample."""

    @abstractmethod
    def score(self, sample: Sample, completions: Sequence[Sequence[Completion]]) -> SampleScore:
        """Score one sample from all its answers (one list per stage)."""

    def score_batch(
        self, samples: Sequence[Sample], completions: Sequence[Sequence[Sequence[Completion]]]
    ) -> list[SampleScore]:
        """Score a batch of samples at once. The default scores each alone; suites whose scorer is
        costly to call (a neural metric in another process) override this to send one batch."""
        return [self.score(s, c) for s, c in zip(samples, completions, strict=True)]

    def failure_score(self, sample: Sample) -> SampleScore:
        """The score of a sample whose answer never came (the model's output was cut inside its
        reasoning, harness/reasoning.py): scored as empty answers, so groups, details and corpus
        metrics see a missing answer, and every declared higher-is-better metric is forced to 0, so
        an empty answer can never count as right. Multi-stage suites (a judge, a second turn) and
        suites where a missing answer means more than that (an abstention) override this."""
        n = sum(1 for r in self.requests(sample, 0, []) if r.role == "model")
        empty = self.score_batch([sample], [[[Completion(text="")] * n]])[0]
        higher = {m.name for m in self.metrics if m.higher_is_better}
        scores = {k: (0.0 if k in higher else v) for k, v in empty.scores.items()}
        return SampleScore(sample.id, scores, empty.groups, {**empty.details, "failure": "reasoning_truncated"})

    def identity_files(self) -> Sequence[str]:
        """Files besides the data source whose content determines the scores (reference files, a
        local metric model). The runner hashes them into the run's identity, so editing one never
        resumes a run scored against the old content."""
        return ()

    def close(self) -> None:  # noqa: B027 - optional hook, most suites hold nothing to release
        """Release helpers the suite started (worker processes). Safe to call twice."""

    def sample_input(self, sample: Sample) -> dict[str, Any]:
        """What the store keeps as the sample's input (shown on the board, exported)."""
        return dict(sample.data)

    @classmethod
    def corpus_metric(cls, metric: str, options: Mapping[str, Any]) -> Any:
        """None when `metric` is the mean of per-sample scores (most metrics). A corpus statistic
        (BLEU: n-gram counts summed over segments) returns an object with `statistics(details)`,
        `score(metric, totals)`, `includes(details)`, `sample_score` and `higher_is_better`; the
        comparison engine then resamples segments instead of averaging scores."""
        return None

    def spec(self, metric: str) -> MetricSpec:
        base = metric.rsplit("/", 1)[-1]
        for m in self.metrics:
            if m.name in (metric, base):
                return m
        return MetricSpec(metric)

    def aggregate(self, scores: Sequence[SampleScore]) -> list[MetricValue]:
        """Mean and standard error of every metric, overall and per group (`group/metric`)."""
        return mean_metrics(scores, self.spec)


def mean_metrics(scores: Sequence[SampleScore], spec: Any) -> list[MetricValue]:
    """Means over samples with the standard error of the mean, overall and per group."""
    buckets: dict[str, list[float]] = defaultdict(list)
    for s in scores:
        for name, value in s.scores.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            buckets[name].append(float(value))
            for group in s.groups:
                buckets[f"{group}/{name}"].append(float(value))
    out = []
    for name in sorted(buckets):
        values = buckets[name]
        n = len(values)
        mean = sum(values) / n
        stderr = None
        if n > 1:
            var = sum((v - mean) ** 2 for v in values) / (n - 1)
            stderr = math.sqrt(var / n)
        out.append(MetricValue(name, mean, stderr, n, spec(name).higher_is_better))
    return out
