"""Fine-tuning configuration: one pydantic model (`extra="forbid"`) per YAML file.

Every field a sweep may vary is reachable by a dotted path (`learning_rate`, `lora.r`), so the sweep
module sets fields on this model instead of knowing about training.
"""

from __future__ import annotations

import math
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.config import GenerationConfig, SuiteConfig, config_hash, format_validation_error, load_yaml_mapping
from harness.errors import ConfigError

Method = Literal["lora", "dora", "qlora", "full", "half"]
ADAPTER_METHODS = ("lora", "dora", "qlora")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSettings(_Strict):
    """Adapter shape for lora, dora and qlora (ignored by full and half)."""

    r: int = Field(8, ge=1, description="Rank of the low-rank update.")
    alpha: int = Field(16, gt=0, description="Scaling numerator; the update is scaled by alpha / r.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or all-linear (every linear layer but the output head)."
    )


class FinetuneConfig(_Strict):
    """Everything that determines a training run (plus a name and tags, which do not)."""

    name: str | None = Field(None, description="Human label for the training run; defaults to model + method.")
    model: str = Field(description="Base model: hub id or local directory.")
    method: Method = Field("lora", description="lora, dora (LoRA with use_dora), qlora (4-bit base, CUDA only), full, half.")
    trust_remote_code: bool = Field(False, description="Run Python shipped with a hub model; off unless asked.")
    train_data: str = Field(description="JSONL with `messages` (chat) or `instruction`/`input`/`output` rows.")
    max_samples: int | None = Field(
        None, ge=1, description="Train on the first N rows after a seeded shuffle (nested: smaller N is a prefix)."
    )
    data_seed: int = Field(0, description="Seed of the shuffle that `max_samples` takes a prefix of.")
    max_length: int = Field(512, ge=16, description="Longest training sequence in tokens; longer rows are an error.")
    packing: bool = Field(False, description="Concatenate rows into max_length blocks (fewer pad tokens, faster).")

    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate of AdamW.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule after warm-up."
    )
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Share of steps spent warming up.")
    batch_size: int = Field(8, ge=1, description="Rows per device step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Device steps per optimisation step.")
    epochs: float | None = Field(1.0, gt=0, description="Passes over the data (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Optimisation steps; overrides epochs.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm (the logged grad norm is before clipping).")
    seed: int = Field(0, description="Seed for weight init of adapters, dropout and data order.")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="Adapter settings.")

    checkpoints: list[float] = Field(
        default_factory=lambda: [0.2, 0.5, 1.0], description="Fractions of training at which to save (1.0 is always added)."
    )
    eval_suites: list[SuiteConfig] = Field(
        default_factory=list, description="Suites that score every checkpoint as it is written (through the runner)."
    )
    eval_base: bool = Field(True, description="Also score the base model (step 0) when eval_suites is set.")
    eval_generation: GenerationConfig = Field(default_factory=GenerationConfig, description="Decoding for checkpoint scoring.")
    eval_batch_size: int = Field(16, ge=1, description="Requests per backend call when scoring checkpoints.")
    output_dir: str = Field("checkpoints", description="Checkpoints go to OUTPUT_DIR/TRAIN_RUN_ID/checkpoint-STEP.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto picks CUDA when available.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto = bfloat16 on CUDA with bf16 support, else float32."
    )
    log_flush_every: int = Field(10, ge=1, description="Steps buffered before train_steps rows are committed.")
    tags: list[str] = Field(default_factory=list, description="Tags given to the checkpoint runs.")

    @field_validator("checkpoints")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        for f in value:
            if not 0 < f <= 1:
                raise ValueError(f"checkpoint fraction {f} is not in (0, 1]")
        return sorted({*value, 1.0})

    @model_validator(mode="after")
    def _budget(self) -> FinetuneConfig:
        if self.max_steps is None and self.epochs is None:
            raise ValueError("set epochs or max_steps")
        return self

    @property
    def use_adapter(self) -> bool:
        return self.method in ADAPTER_METHODS

    def total_steps(self, n_rows: int) -> int:
        """Optimisation steps of the whole run: max_steps, or epochs over `n_rows` rows (or blocks)."""
        if self.max_steps is not None:
            return self.max_steps
        per_epoch = math.ceil(math.ceil(n_rows / self.batch_size) / self.gradient_accumulation_steps)
        return max(1, math.ceil(per_epoch * (self.epochs or 1.0)))

    def checkpoint_steps(self, total: int) -> dict[int, float]:
        """{step: fraction} for every configured fraction (rounded to whole steps, at least step 1)."""
        out: dict[int, float] = {}
        for f in self.checkpoints:
            out.setdefault(max(1, round(f * total)), f)
        return out

    def identity_hash(self) -> str:
        """Hash of the result-determining fields (resuming finds a run by it)."""
        payload = self.model_dump(exclude={"name", "tags", "log_flush_every", "output_dir"})
        return config_hash(payload)


def parse_finetune_config(raw: dict[str, Any], where: str = "config") -> FinetuneConfig:
    try:
        return FinetuneConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {format_validation_error(exc)}") from None


def load_finetune_config(path: str | os.PathLike[str]) -> FinetuneConfig:
    return parse_finetune_config(load_yaml_mapping(path), str(path))
