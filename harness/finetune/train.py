"""Fine-tuning: LoRA, DoRA, QLoRA, full and half fine-tuning through transformers' Trainer and peft.

One `FinetuneJob` owns a training run: it loads the model for the chosen method, logs every
optimisation step (loss, gradient norm, learning rate, tokens/s) to the store, saves checkpoints at the
configured fractions of training, registers each with its step and content hash, and scores it with
the configured suites through the real Runner (so results are keyed by training run and step).
`train(until_step=...)` stops early at a checkpoint and a later `train()` continues from it; that is
how sweeps judge a trial early and how `--resume` continues after a crash.

Methods, devices and what each method trains: methods.py; the Trainer callback (store rows,
checkpoints, progress bar or plain progress lines): progress.py. Warm-up is passed to transformers as
a whole number of steps (`ceil(warmup_ratio * total_steps)`), which every supported transformers
version reads the same way (4.x reads a float `warmup_steps` as steps, 5.x as a ratio).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import ModelConfig, RunConfig
from harness.errors import ConfigError
from harness.finetune import records
from harness.finetune.config import FinetuneConfig
from harness.finetune.data import ExampleDataset, PadCollator, build_examples, load_conversations, select_rows
from harness.finetune.methods import check_method, load_for_training, resolve_device, resolve_dtype
from harness.finetune.progress import StoreCallback
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
    trainable: str = ""  # which layers train (methods.describe_trainable)

    def to_json(self) -> dict[str, Any]:
        return {
            "train_run_id": self.train_run_id,
            "trainable": self.trainable,
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
        self.model, self.tokenizer, self.trainable = load_for_training(config, self.device, self.dtype)
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
        if self.show_progress:
            print(f"train {self.name}: {self.trainable}", file=sys.stderr, flush=True)
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
        logger: Any = StoreCallback(self, until_step)
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
            warmup_steps=warmup_steps(c.warmup_ratio, self.total_steps),
            weight_decay=c.weight_decay,
            max_grad_norm=c.max_grad_norm,
            logging_steps=1,
            save_strategy="no",  # checkpoints are saved at the configured fractions by progress.StoreCallback
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
            self.trainable,
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
            model = ModelConfig(path=str(path), device=self.device, batch_size=c.eval_batch_size, trust_remote_code=c.trust_remote_code)
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


def warmup_steps(ratio: float, total_steps: int) -> int:
    """Warm-up as whole steps: the one reading shared by transformers 4.x and 5.x."""
    return math.ceil(ratio * total_steps)

