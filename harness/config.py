"""Run configuration: pydantic models with `extra="forbid"`, so a typo is an error, not a default.

A run can be described on the command line or in a YAML file (`harness run --config run.yaml`);
both end up as one `RunConfig`, whose hash identifies the run for resuming.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import ConfigError
from harness.types import canonical_json, sha256_text

DEFAULT_DB = "sqlite:///harness.db"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """What answers the requests and how it is loaded."""

    path: str | None = Field(
        None, description="Hub id or local directory of the base model. Not needed for the file backend."
    )
    adapter: str | None = Field(
        None, description="Directory of a PEFT adapter applied on top of `path` (loaded, never guessed)."
    )
    backend: str = Field("hf", description="Which backend generates: hf, vllm, openai or file.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto = float32 on CPU (exact, comparable across backends), bfloat16 on CUDA."
    )
    device: str = Field("auto", description="auto picks cuda when available, else cpu.")
    batch_size: int = Field(8, ge=1, description="Requests per backend call.")
    max_length: int | None = Field(
        None, ge=8, description="Longest prompt + output in tokens; None uses the model's own limit."
    )
    trust_remote_code: bool = Field(
        False, description="Run Python shipped with a hub model. Off unless asked; recorded with the run."
    )
    completions: str | None = Field(
        None, description="For the file backend: a JSONL of {id, completion} or `run:RUN_ID` to replay."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Backend-specific settings (e.g. vLLM's tensor_parallel_size)."
    )
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the chat template (hf, vllm) or as the request's chat_template_kwargs (openai), "
        "e.g. {enable_thinking: false}. Part of the run's identity.",
    )
    reasoning_tags: str | None = Field(
        None, description="Reasoning markers: START,END, a preset (think, harmony), none; unset = from the tokenizer."
    )
    reasoning_max_tokens: int | None = Field(
        None, ge=1, description="Thinking budget on top of max_new_tokens, which then bounds the answer alone."
    )

    @field_validator("reasoning_tags")
    @classmethod
    def _check_tags(cls, value: str | None) -> str | None:
        from harness.reasoning import parse_tags

        parse_tags(value)  # a ValueError becomes this field's validation error
        return value


class GenerationConfig(_Strict):
    """Decoding settings applied to every generate request unless a suite sets its own."""

    max_new_tokens: int = Field(64, ge=1, description="Upper bound on generated tokens per answer.")
    temperature: float = Field(0.0, ge=0.0, description="0 means greedy decoding (deterministic).")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int = Field(0, description="Sampling seed; part of the cache key so sampled runs are reproducible.")


class SuiteConfig(_Strict):
    """One suite to run and where its data comes from."""

    name: str = Field(description="Registered suite name, e.g. rag-extraction.")
    data: str | None = Field(None, description="Data file or folder; None uses the suite's bundled sample.")
    limit: int | None = Field(None, ge=1, description="Use only the first N samples (for smoke runs).")
    options: dict[str, Any] = Field(default_factory=dict, description="Suite-specific settings.")


class RayConfig(_Strict):
    """Scale a run out over Ray actors, each holding one backend replica (HF or vLLM)."""

    address: str | None = Field(
        None, description="None starts a local Ray instance; 'auto' or ray://HOST:10001 joins a running cluster."
    )
    num_actors: int = Field(2, ge=1, description="Backend replicas; each answers a share of every batch.")
    num_cpus_per_actor: float = Field(1.0, gt=0, description="CPUs Ray reserves per replica.")
    num_gpus_per_actor: float = Field(
        0.0, ge=0, description="GPUs per replica (set to tensor_parallel_size for a vLLM replica spanning GPUs)."
    )


class RunConfig(_Strict):
    """Everything that determines a run's results (plus a name and tags, which do not)."""

    suites: list[SuiteConfig] = Field(min_length=1)
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    judge: ModelConfig | None = Field(None, description="Backend answering requests with role 'judge'.")
    generation: GenerationConfig = Field(default_factory=lambda: GenerationConfig())
    run_name: str | None = Field(None, description="Human label; defaults to model + suite.")
    tags: list[str] = Field(default_factory=list, description="Labels the gate and board select runs by.")
    ray: RayConfig | None = Field(None, description="Distribute the model's requests over a Ray actor pool.")
    train_run_id: str | None = Field(
        None, description="Training run whose checkpoint this scores (set by `harness finetune`), keying results by run and step."
    )
    step: int | None = Field(None, ge=0, description="Training step of the scored checkpoint (0 = the base model).")


def config_hash(payload: dict[str, Any]) -> str:
    """Short stable hash of the result-determining part of a configuration."""
    return sha256_text(canonical_json(payload))[:16]


def load_yaml_mapping(path: str | os.PathLike[str], empty_ok: bool = False) -> dict[str, Any]:
    """A YAML file's top-level mapping, read with a safe loader; every error names the file.

    Every configuration file (runs, fine-tuning, sweeps, monitors) is read through here.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: configuration file not found")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: {yaml_problem(exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping at the top level")
    return raw


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line excerpt as one line: `line L, column C: invalid YAML: what`."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    what = f"{problem} ({context})" if context else str(problem)
    if mark is None:
        return f"invalid YAML: {what}"
    return f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {what}"


def load_run_config(path: str | os.PathLike[str]) -> RunConfig:
    """Parse a YAML run configuration; errors name the file and the field."""
    raw = load_yaml_mapping(path)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from None


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: `field.path: message`."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"field '{loc}': {err['msg']}")
    return "; ".join(parts)


def resolve_db_url(url: str | None) -> str:
    """--db beats HARNESS_DB beats the default SQLite file in the working directory."""
    return url or os.environ.get("HARNESS_DB") or DEFAULT_DB
