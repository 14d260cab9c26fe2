"""The Trainer callback of a fine-tuning job: step rows to the store, checkpoints, progress.

On a terminal the progress is a rich bar on stderr. When stderr is not a terminal (nohup, CI logs,
`> file`) a bar would print nothing until the end, so plain lines go to stderr instead: one every
`LINE_EVERY_S` seconds or every 5% of the steps, whichever comes first, and one at the end.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.finetune import records

if TYPE_CHECKING:
    from harness.finetune.train import FinetuneJob

LINE_EVERY_S = 30.0


class StoreCallback:
    """Trainer callback: step rows to the store (buffered), checkpoints at fractions, a progress bar."""

    def __init__(self, job: FinetuneJob, until_step: int | None) -> None:
        from transformers import TrainerCallback

        # Built lazily so importing this module does not import transformers.
        self.__class__ = type("StoreCallbackImpl", (StoreCallback, TrainerCallback), {})
        self.job = job
        self.until_step = until_step
        self.buffer: list[dict[str, Any]] = []
        self.progress: Any = None
        self.task: Any = None
        self.step_started = time.perf_counter()
        self.tokens_seen = 0
        self.lines = False  # plain progress lines instead of a bar
        self.last_line = 0.0
        self.started = time.monotonic()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.tokens_seen = state.num_input_tokens_seen or 0
        self.job.step = state.global_step
        console = Console(stderr=True)
        self.started = self.last_line = time.monotonic()
        if self.job.show_progress and not console.is_terminal:
            self.lines = True
            self._line(state.global_step, None, "start")
            return
        self.progress = Progress(
            TextColumn("[bold]train {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
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
        now = time.monotonic()
        every = max(1, self.job.total_steps // 20)
        if self.lines and (now - self.last_line >= LINE_EVERY_S or state.global_step % every == 0):
            self._line(state.global_step, logs["loss"])
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
        if self.lines:
            self._line(state.global_step, None, "stop")

    def _line(self, step: int, loss: float | None, event: str = "step") -> None:
        self.last_line = time.monotonic()
        elapsed = self.last_line - self.started
        loss_text = f" loss {loss:.4f}" if loss is not None else ""
        text = f"train {self.job.name}: {event} {step}/{self.job.total_steps}{loss_text} elapsed {elapsed:.0f}s"
        print(text, file=sys.stderr, flush=True)

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
