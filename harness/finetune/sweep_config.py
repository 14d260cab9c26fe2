"""The sweep YAML: a base fine-tuning config, a search space, how trials are judged early.

Judging rule (one round, after every trial reached its early point): a trial's early point is step
`max(min_early_steps, round(early_fraction * total_steps))`, so it has had real updates; all trials
train to it, are ranked by the early score, and the best `ceil(n_trials / reduction_factor)` continue
(`pruner: successive_halving`; `median` keeps the better half; `none` trains every trial to the end
and reports what the cut would have done). The share stopped is therefore set by the configuration,
never by how long a trial is. Equal early scores are ordered by the lower early training loss, then by
the lower trial number; the report says whether the cut fell inside such a tie.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.config import GenerationConfig, SuiteConfig, format_validation_error, load_yaml_mapping
from harness.errors import ConfigError
from harness.finetune.config import FinetuneConfig, parse_finetune_config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamSpace(_Strict):
    """One searched field: a float or int range (optionally log-scaled) or a list of choices."""

    type: Literal["float", "int", "categorical"] = Field(description="Kind of distribution.")
    low: float | None = Field(None, description="Lower bound (float, int).")
    high: float | None = Field(None, description="Upper bound, inclusive (float, int).")
    log: bool = Field(False, description="Sample on a log scale (learning rates).")
    choices: list[Any] | None = Field(None, description="Values to choose from (categorical).")

    @model_validator(mode="after")
    def _complete(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty `choices` list")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"{self.type} needs low <= high")
        return self


class DataEfficiency(_Strict):
    """Nested training subsets and how the saturation point is estimated."""

    sizes: list[int] = Field(min_length=2, description="Training-set sizes (nested subsets), e.g. [50, 100, 200, 400].")
    target: float = Field(0.95, gt=0, lt=1, description="Share of the achievable gain that counts as saturated.")
    bootstrap: int = Field(200, ge=20, description="Bootstrap resamples of validation samples for the interval.")
    include_base: bool = Field(True, description="Score the untrained base model as size 0 (anchors the curve).")


class SweepConfig(_Strict):
    """A search (or data-efficiency study) over a base fine-tuning configuration."""

    name: str | None = Field(None, description="Label of the sweep.")
    mode: Literal["search", "data-efficiency"] = Field("search", description="Hyper-parameter search or data-efficiency curve.")
    base: dict[str, Any] = Field(description="A fine-tuning configuration (the keys of a finetune YAML); trials override fields.")
    space: dict[str, ParamSpace] = Field(default_factory=dict, description="Dotted field path -> distribution, e.g. learning_rate, lora.r.")
    n_trials: int = Field(8, ge=1, description="Trials to run (search mode).")
    sampler: Literal["tpe", "random", "grid"] = Field(
        "tpe", description="Optuna sampler; grid walks every combination of categorical choices (n_trials <= grid size)."
    )
    seed: int = Field(0, description="Sampler seed.")
    early_fraction: float = Field(0.2, gt=0, lt=1, description="Share of each trial's steps after which it is judged.")
    min_early_steps: int = Field(2, ge=2, description="Optimisation steps a trial has at least taken when judged.")
    pruner: Literal["successive_halving", "median", "none"] = Field(
        "successive_halving",
        description="successive_halving keeps the best ceil(n_trials / reduction_factor) at the early point; "
        "median the better half; none trains all to the end (calibration: the report says what the cut would have done).",
    )
    reduction_factor: int = Field(4, ge=2, description="successive_halving (and the cut reported under none) keeps 1 / reduction_factor.")
    validation: SuiteConfig = Field(description="Suite (and data) that scores trials.")
    metric: str | None = Field(None, description="Metric that ranks trials; default the suite's primary metric.")
    early_metric: str | None = Field(
        None, description="Metric that judges a trial at the early checkpoint (a smoother proxy); default `metric`."
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="Decoding for validation.")
    top_k: int = Field(3, ge=1, description="k of the early-vs-final top-k overlap.")
    data_efficiency: DataEfficiency | None = Field(None, description="Settings of data-efficiency mode.")

    @model_validator(mode="after")
    def _mode(self) -> SweepConfig:
        if self.mode == "data-efficiency" and self.data_efficiency is None:
            raise ValueError("mode data-efficiency needs a `data_efficiency:` section with sizes")
        if self.mode == "search" and not self.space:
            raise ValueError("mode search needs a `space:` with at least one field")
        if self.mode == "search" and self.sampler == "grid":
            if any(p.type != "categorical" for p in self.space.values()):
                raise ValueError("sampler grid needs every `space` field to be categorical")
            size = math.prod(len(p.choices or []) for p in self.space.values())
            if self.n_trials > size:
                raise ValueError(f"sampler grid has {size} combinations; n_trials {self.n_trials} is more")
        return self

    def keep_count(self, n: int, pruner: str | None = None) -> int:
        """Trials that continue past the early point out of n (the configured share, at least one)."""
        rule = pruner or self.pruner
        if rule == "none":
            return n
        factor = 2 if rule == "median" else self.reduction_factor
        return max(1, math.ceil(n / factor))

    def early_step(self, total_steps: int, where: str = "sweep") -> int:
        """The step a trial of `total_steps` is judged at; an error when no later step is left."""
        step = max(self.min_early_steps, round(self.early_fraction * total_steps))
        if step >= total_steps:
            raise ConfigError(
                f"{where}: field 'early_fraction': a trial of {total_steps} steps cannot be judged after "
                f"{self.min_early_steps}+ updates and still continue; raise max_steps/epochs or lower min_early_steps"
            )
        return step


def load_sweep_config(path: str) -> SweepConfig:
    raw = load_yaml_mapping(path)
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from None
    check_config(config, path)
    return config


def check_config(config: SweepConfig, where: str = "sweep") -> None:
    """Fail before training: the base must validate and every searched path must name a field."""
    parse_finetune_config(config.base, f"{where}: base")
    for dotted in config.space:
        _check_path(dotted, where)


def _check_path(dotted: str, where: str) -> None:
    model: Any = FinetuneConfig
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            raise ConfigError(f"{where}: field 'space.{dotted}': no such fine-tuning field")
        annotation = fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def with_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def trial_config(config: SweepConfig, overrides: dict[str, Any], checkpoints: list[float]) -> FinetuneConfig:
    """The fine-tuning config of one trial: base + overrides, scored on the validation suite."""
    raw = with_overrides(config.base, overrides)
    raw.update(
        checkpoints=checkpoints,
        eval_suites=[config.validation.model_dump()],
        eval_base=False,
        eval_generation=config.generation.model_dump(),
    )
    return parse_finetune_config(raw, "sweep trial")


def metric_and_direction(config: SweepConfig) -> tuple[str, bool]:
    from suites import suite_class

    cls = suite_class(config.validation.name)
    metric = config.metric or cls.primary_metric
    spec = cls(config.validation.options).spec(metric)
    return metric, spec.higher_is_better
