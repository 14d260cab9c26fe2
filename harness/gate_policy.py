"""Gate policies (YAML): which suites and metrics to gate, with which tolerance, alpha and test.

Loaded with a safe loader; a mistake names the file, line and field (exit 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness import stats
from harness.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricRule(_Strict):
    """Overrides for one metric (or, on a suite, for all its metrics); unset fields inherit."""

    max_drop: float | None = Field(
        None, ge=0.0, description="Largest tolerated drop in the metric's own units (0.02 = 2 points of accuracy)."
    )
    alpha: float | None = Field(
        None, gt=0.0, lt=1.0, description="Significance level, compared with the Holm-adjusted one-sided p-value."
    )
    min_samples: int | None = Field(None, ge=1, description="Fewer paired samples than this: the gate cannot decide.")
    test: stats.PairedMethod | None = Field(
        None, description="auto (exact McNemar for 0/1 scores, else the signed-rank test: exact up to 300 non-zero "
        "differences), mcnemar, wilcoxon or sign."
    )


class Defaults(_Strict):
    """What every metric gets unless its suite or its own entry says otherwise."""

    max_drop: float = Field(0.0, ge=0.0, description="Largest tolerated drop; 0 fails any significant drop.")
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Family-wise significance level (Holm).")
    min_samples: int = Field(30, ge=1, description="Minimum paired samples per metric.")
    test: stats.PairedMethod = Field("auto", description="Paired test; auto picks McNemar for 0/1 scores, else Wilcoxon.")
    power: float = Field(0.8, gt=0.0, lt=1.0, description="Power at which the minimum detectable effect is reported.")
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Level of the bootstrap interval of each difference.")
    resamples: int = Field(10_000, ge=100, description="Bootstrap resamples per interval.")


class SuiteRule(MetricRule):
    """One suite: whether it must be present, suite-wide overrides, and the metrics to gate."""

    required: bool = Field(True, description="A required suite missing or unusable makes the gate undecided (exit 2).")
    metrics: dict[str, MetricRule] | None = Field(
        None, description="Metrics to gate (name or group/name) with overrides; unset = the suite's primary metric."
    )


class GatePolicy(_Strict):
    """A gate policy (YAML). Without `suites`, every suite of the baseline is gated on its primary metric."""

    defaults: Defaults = Field(default_factory=lambda: Defaults(), description="Settings every metric inherits.")
    suites: dict[str, SuiteRule] = Field(default_factory=dict, description="Suites to gate; empty = all baseline suites.")


@dataclass(frozen=True)
class Rule:
    """A metric's settings after defaults, suite and metric overrides are merged."""

    suite: str
    metric: str
    max_drop: float
    alpha: float
    min_samples: int
    test: stats.PairedMethod
    required: bool

    def to_json(self) -> dict[str, Any]:
        return {"max_drop": self.max_drop, "alpha": self.alpha, "min_samples": self.min_samples,
                "test": self.test, "required": self.required}


def merge_rule(policy: GatePolicy, suite: str, metric: str, suite_rule: SuiteRule | None) -> Rule:
    layers: list[MetricRule] = [r for r in (suite_rule, (suite_rule.metrics or {}).get(metric) if suite_rule else None) if r]
    values: dict[str, Any] = {k: getattr(policy.defaults, k) for k in ("max_drop", "alpha", "min_samples", "test")}
    for layer in layers:
        for key in values:
            if getattr(layer, key) is not None:
                values[key] = getattr(layer, key)
    return Rule(suite, metric, required=suite_rule.required if suite_rule else True, **values)


def _yaml_line(text: str, loc: Sequence[Any]) -> int | None:
    """Line (1-based) of the YAML node at `loc`, or of its deepest existing parent."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next((v for k, v in node.value if k.value == str(key)), None)
        if match is None:
            key_node = next((k for k, _ in node.value if k.value == str(key)), None)
            return key_node.start_mark.line + 1 if key_node is not None else line
        node = match
        line = node.start_mark.line + 1
    return line


def load_policy(path: str | Path) -> GatePolicy:
    """Parse a policy file with a safe loader; a mistake names the file, line and field (exit 2)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: policy file not found")
    try:
        text = file.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}, line 1: expected a mapping at the top level")
    try:
        return GatePolicy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        line = _yaml_line(text, loc)
        where = f", line {line}" if line else ""
        field_name = ".".join(str(p) for p in loc) or "(top level)"
        more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{file}{where}, field '{field_name}': {first['msg']}{more}") from None


