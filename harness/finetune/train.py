"""Fine-tuning: LoRA, DoRA, QLoRA, full and half fine-tuning through transformers' Trainer and peft.

One `FinetuneJob` owns a training run: it loads the model for the chosen method, logs every
optimisation step (loss, gradient norm, learning rate, tokens/s) to the store, saves checkpoints at the
configured fractions of training, registers each with its step and content hash, and scores it with
the configured suites through the real Runner (so results are keyed by training run and step).
`train(until_step=...)` stops early at a checkpoint and a later `train()` continues from it; that is
how sweeps judge a trial early and how `--resume` continues after a crash.

Half fine-tuning rule: the input embeddings and the lower half of the transformer blocks
(blocks 0 .. n//2 - 1) are frozen; the upper blocks, the final norm and the output head train. The
lower blocks carry general features that fine-tuning on a narrow task tends to erode.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import ModelConfig, RunConfig
from harness.errors import ConfigError
from harness.finetune import records
from harness.finetune.config import FinetuneConfig
from harness.finetune.data import ExampleDataset, PadCollator, build_examples, load_conversations, select_rows
from harness.provenance import directory_hash
from harness.store import Store


@dataclass
class CheckpointResult:
    step: int
    fraction: float | None
    path: str
    kind: str
    content_hash: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # suite -> metric -> value
    run_ids: dict[str, str] = field(default_factory=dict)  # suite -> run id


@dataclass
class TrainResult:
    train_run_id: str
    status: str
    total_steps: int
    step: int
    n_rows: int
    checkpoints: list[CheckpointResult]
    base_scores: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "train_run_id": self.train_run_id,
            "status": self.status,
            "step": self.step,
            "total_steps": self.total_steps,
            "n_rows": self.n_rows,
            "base_scores": self.base_scores,
            "checkpoints": [
                {"step": c.step, "fraction": c.fraction, "path": c.path, "kind": c.kind, "content_hash": c.content_hash,
                 "scores": c.scores, "run_ids": c.run_ids}
                for c in self.checkpoints
            ],
        }


# ---- devices and methods ---------------------------------------------------------------------------


def resolve_device(config: FinetuneConfig) -> str:
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for, but no CUDA device is available")
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return config.device


def resolve_dtype(config: FinetuneConfig, device: str) -> str:
    import torch

    if config.dtype == "bfloat16" and device == "cpu":
        raise ConfigError("dtype: bfloat16 training is only supported on CUDA here; use float32 (or auto) on CPU")
    if config.dtype != "auto":
        return config.dtype
    return "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else "float32"


def check_method(config: FinetuneConfig, device: str) -> None:
    """QLoRA needs CUDA and bitsandbytes; there is no CPU fallback, so say so before anything runs."""
    if config.method != "qlora":
        return
    if device != "cuda":
        raise ConfigError(
            "method: qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); none is available here. "
            "Use method: lora for the same adapter on a full-precision base."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("method: qlora needs the bitsandbytes package: pip install bitsandbytes") from None


def transformer_blocks(model: Any) -> Sequence[Any]:
    """The model's stack of transformer blocks: the longest ModuleList in it."""
    import torch

    lists: list[Any] = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ConfigError("method: half needs a model with a list of transformer blocks; none found")
    return max(lists, key=len)


def freeze_lower_half(model: Any) -> int:
    """Half fine-tuning: freeze the embeddings and blocks 0 .. n//2 - 1; returns how many were frozen."""
    blocks = transformer_blocks(model)
    n_frozen = len(blocks) // 2
    for p in model.parameters():
        p.requires_grad_(True)
    for p in model.get_input_embeddings().parameters():
        p.requires_grad_(False)
    for block in list(blocks)[:n_frozen]:
        for p in block.parameters():
            p.requires_grad_(False)
    return n_frozen


def load_for_training(config: FinetuneConfig, device: str, dtype: str) -> tuple[Any, Any]:
    """(model ready for the method, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars would tear the training progress bar

    from harness.backends.hf import check_model_path

    path = check_model_path(config.model)
    set_seed(config.seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load tokenizer of '{config.model}': {exc}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if config.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": 0}
    else:
        # Adapters train on a base held in the compute dtype; full and half keep float32 master
        # weights and use bf16 autocast on CUDA (the Trainer's bf16 flag).
        kwargs["dtype"] = torch.bfloat16 if (dtype == "bfloat16" and config.use_adapter) else torch.float32
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load model '{config.model}': {exc}") from None
    if config.method != "qlora":
        model = model.to(device)
    if config.use_adapter:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if config.method == "qlora":
            model = prepare_model_for_kbit_training(model)
        lora = config.lora
        peft_config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            use_dora=config.method == "dora",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, peft_config)
    elif config.method == "half":
        freeze_lower_half(model)
    return model, tokenizer


# ---- the job ---------------------------------------------------------------------------------------


class FinetuneJob:
    """One training run: create (or resume) it in the store, then `train()` (possibly in stages)."""

    def __init__(
        self,
        config: FinetuneConfig,
        store: Store,
        *,
        sweep_id: str | None = None,
        trial_number: int | None = None,
        show_progress: bool = True,
        callbacks: Sequence[Any] = (),
    ) -> None:
        self.config = config
        self.store = store
        self.sweep_id = sweep_id
        self.trial_number = trial_number
        self.show_progress = show_progress
        self.extra_callbacks = list(callbacks)
        self.device = resolve_device(config)
        self.dtype = resolve_dtype(config, self.device)
        check_method(config, self.device)
        conversations = load_conversations(config.train_data)
        self.conversations = select_rows(conversations, config.max_samples, config.data_seed)
        self.model, self.tokenizer = load_for_training(config, self.device, self.dtype)
        self.examples = build_examples(self.tokenizer, self.conversations, config.max_length, config.packing)
        self.total_steps = config.total_steps(len(self.examples))
        self.checkpoint_steps = config.checkpoint_steps(self.total_steps)
        self.train_run_id: str | None = None
        self.base_scores: dict[str, dict[str, float]] = {}
        self.results: dict[int, CheckpointResult] = {}
        self.step = 0

    @property
    def name(self) -> str:
        return self.config.name or f"{Path(self.config.model).name}-{self.config.method}"

    @property
    def run_dir(self) -> Path:
        assert self.train_run_id is not None
        return Path(self.config.output_dir) / self.train_run_id

    def start(self) -> str:
        """A new training run row (and, with eval_suites, the base model scored as step 0)."""
        self.train_run_id = records.create_train_run(
            self.store,
            name=self.name,
            method=self.config.method,
            base_model=self.config.model,
            config=self.config.model_dump(),
            config_hash=self.config.identity_hash(),
            output_dir=None,
            sweep_id=self.sweep_id,
            trial_number=self.trial_number,
        )
        self._set_output_dir()
        if self.config.eval_suites and self.config.eval_base:
            self.base_scores = self._score(step=0, path=None)[0]
        return self.train_run_id

    def attach(self, train_run_id: str) -> int:
        """Continue an existing run from its last checkpoint; returns the step it continues at."""
        row = records.get_train_run(self.store, train_run_id)
        if row is None:
            raise ConfigError(f"no training run '{train_run_id}' in store {self.store.safe_url}")
        if row["config_hash"] != self.config.identity_hash():
            raise ConfigError(f"training run '{train_run_id}' was made with a different configuration; cannot resume it")
        self.train_run_id = train_run_id
        last = self._last_checkpoint()
        self.step = last["step"] if last else 0
        records.delete_steps_after(self.store, train_run_id, self.step)
        records.set_train_run_status(self.store, train_run_id, "running")
        for ck in records.checkpoints_of(self.store, train_run_id):
            self.results[ck["step"]] = CheckpointResult(ck["step"], ck["fraction"], ck["path"], ck["kind"], ck["content_hash"])
        self._set_output_dir()
        return self.step

    def _set_output_dir(self) -> None:
        from sqlalchemy import update

        from harness.store import train_runs

        with self.store.transaction() as conn:
            conn.execute(update(train_runs).where(train_runs.c.id == self.train_run_id).values(output_dir=str(self.run_dir)))

    def _last_checkpoint(self) -> dict[str, Any] | None:
        assert self.train_run_id is not None
        usable = [c for c in records.checkpoints_of(self.store, self.train_run_id) if Path(c["path"], "trainer_state.json").is_file()]
        return usable[-1] if usable else None

    # ---- training ----------------------------------------------------------------------------

    def train(self, until_step: int | None = None) -> TrainResult:
        """Train to `until_step` (a checkpoint step) or to the end, continuing from the last checkpoint."""
        from transformers import Trainer

        if self.train_run_id is None:
            self.start()
        assert self.train_run_id is not None
        if until_step is not None and until_step not in self.checkpoint_steps:
            raise ConfigError(f"can only stop at a checkpoint step ({sorted(self.checkpoint_steps)}), not {until_step}")
        last = self._last_checkpoint()
        resume_from = last["path"] if last and last["step"] > 0 else None
        if last and last["step"] >= (until_step or self.total_steps):
            return self.result("complete" if last["step"] >= self.total_steps else "running")
        if resume_from:
            records.delete_steps_after(self.store, self.train_run_id, last["step"] if last else 0)
        logger: Any = _StoreCallback(self, until_step)
        trainer = Trainer(
            model=self.model,
            args=self._training_args(),
            train_dataset=ExampleDataset(self.examples),  # type: ignore[arg-type]
            data_collator=PadCollator(self.tokenizer.pad_token_id),
            processing_class=self.tokenizer,
            callbacks=[logger, *self.extra_callbacks],
        )
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)  # the rich bar and the store replace its prints
        trainer.remove_callback(ProgressCallback)
        try:
            trainer.train(resume_from_checkpoint=resume_from)
        except BaseException as exc:
            logger.flush()
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            records.set_train_run_status(self.store, self.train_run_id, "failed", reason)
            raise
        finally:
            logger.close()
        logger.flush()
        done = self.step >= self.total_steps
        if done:
            records.set_train_run_status(self.store, self.train_run_id, "complete")
        return self.result("complete" if done else "running")

    def _training_args(self) -> Any:
        from transformers import TrainingArguments

        c = self.config
        return TrainingArguments(
            output_dir=str(self.run_dir),
            max_steps=self.total_steps,
            per_device_train_batch_size=c.batch_size,
            gradient_accumulation_steps=c.gradient_accumulation_steps,
            learning_rate=c.learning_rate,
            lr_scheduler_type=c.lr_scheduler,
            warmup_steps=c.warmup_ratio,
            weight_decay=c.weight_decay,
            max_grad_norm=c.max_grad_norm,
            logging_steps=1,
            save_strategy="no",  # checkpoints are saved at the configured fractions by _StoreCallback
            report_to="none",
            disable_tqdm=True,
            seed=c.seed,
            data_seed=c.seed,
            use_cpu=self.device == "cpu",
            bf16=self.dtype == "bfloat16",
            include_num_input_tokens_seen="non_padding",
            remove_unused_columns=False,
            dataloader_num_workers=0,
            log_level="warning",
        )

    def mark(self, status: str, error: str | None = None) -> None:
        assert self.train_run_id is not None
        records.set_train_run_status(self.store, self.train_run_id, status, error)

    def result(self, status: str) -> TrainResult:
        assert self.train_run_id is not None
        return TrainResult(
            self.train_run_id,
            status,
            self.total_steps,
            self.step,
            len(self.conversations),
            [self.results[s] for s in sorted(self.results)],
            self.base_scores,
        )

    # ---- checkpoints -------------------------------------------------------------------------

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Register a checkpoint just written and score it with the configured suites."""
        assert self.train_run_id is not None
        kind = "adapter" if self.config.use_adapter else "full"
        digest = directory_hash(path)
        fraction = self.checkpoint_steps.get(step)
        records.register_checkpoint(self.store, self.train_run_id, step, fraction, str(path), kind, digest)
        result = CheckpointResult(step, fraction, str(path), kind, digest)
        if self.config.eval_suites:
            result.scores, result.run_ids = self._score(step, path)
        self.results[step] = result

    def _score(self, step: int, path: Path | None) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
        """Score the base model (path None) or a checkpoint through the Runner, keyed by run and step."""
        import torch

        from harness.runner import Runner

        c = self.config
        if path is None:
            model = ModelConfig(path=c.model, device=self.device, batch_size=c.eval_batch_size, trust_remote_code=c.trust_remote_code)
        elif c.use_adapter:
            model = ModelConfig(path=c.model, adapter=str(path), device=self.device, batch_size=c.eval_batch_size,
                                trust_remote_code=c.trust_remote_code)
        else:
            model = ModelConfig(path=str(path), device=self.device, batch_size=c.eval_batch_size)
        run_config = RunConfig(
            suites=c.eval_suites,
            model=model,
            generation=c.eval_generation,
            run_name=f"{self.name}@{step}",
            tags=[*c.tags, "finetune"],
            train_run_id=self.train_run_id,
            step=step,
        )
        # Scoring must not disturb training: keep the RNG streams exactly as they were.
        cpu_rng = torch.random.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            results = Runner(run_config, self.store, show_progress=False).run()
        finally:
            torch.random.set_rng_state(cpu_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
        scores = {r.suite: {m.name: m.value for m in r.metrics} for r in results}
        return scores, {r.suite: r.run_id for r in results}


class _StoreCallback:
    """Trainer callback: step rows to the store (buffered), checkpoints at fractions, a progress bar."""

    def __init__(self, job: FinetuneJob, until_step: int | None) -> None:
        from transformers import TrainerCallback

        # Built lazily so importing this module does not import transformers.
        self.__class__ = type("_StoreCallbackImpl", (_StoreCallback, TrainerCallback), {})
        self.job = job
        self.until_step = until_step
        self.buffer: list[dict[str, Any]] = []
        self.progress: Any = None
        self.task: Any = None
        self.step_started = time.perf_counter()
        self.tokens_seen = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.tokens_seen = state.num_input_tokens_seen or 0
        self.job.step = state.global_step
        self.progress = Progress(
            TextColumn("[bold]train {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not self.job.show_progress,
        )
        self.progress.start()
        self.task = self.progress.add_task(self.job.name, total=self.job.total_steps, completed=state.global_step, loss="-")

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_started = time.perf_counter()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs:
            return
        elapsed = max(time.perf_counter() - self.step_started, 1e-9)
        tokens = state.num_input_tokens_seen or 0
        rate = (tokens - self.tokens_seen) / elapsed
        self.tokens_seen = tokens
        self.buffer.append(
            {
                "step": state.global_step,
                "epoch": _finite(logs.get("epoch")),
                "loss": _finite(logs.get("loss")),
                "grad_norm": _finite(logs.get("grad_norm")),
                "learning_rate": _finite(logs.get("learning_rate")),
                "tokens_per_s": rate,
            }
        )
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step, loss=f"{logs['loss']:.4f}")
        if len(self.buffer) >= self.job.config.log_flush_every:
            self.flush()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.job.step = state.global_step
        if state.global_step in self.job.checkpoint_steps:
            control.should_save = True
        if self.until_step is not None and state.global_step >= self.until_step:
            control.should_training_stop = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.flush()
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.job.on_checkpoint(state.global_step, path)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.flush()

    def flush(self) -> None:
        if self.buffer and self.job.train_run_id is not None:
            records.write_steps(self.job.store, self.job.train_run_id, self.buffer)
            self.buffer = []

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
