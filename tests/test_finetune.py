"""Fine-tuning on the tiny model: data masking, every method learns, checkpoints, resume, the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import select
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError, DataError
from harness.finetune import records
from harness.finetune.config import FinetuneConfig, load_finetune_config
from harness.finetune.data import IGNORE, build_examples, load_conversations, pack
from harness.finetune.train import FinetuneJob
from harness.provenance import directory_hash
from harness.store import Store, runs

REPO = Path(__file__).resolve().parent.parent
TRAIN = str(REPO / "harness" / "finetune" / "bundled" / "products_train.jsonl")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny matrices: one thread is faster than two fighting over a busy CPU (and deterministic)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_config(model: Path, tmp_path: Path, **overrides: Any) -> FinetuneConfig:
    raw: dict[str, Any] = {
        "model": str(model),
        "method": "lora",
        "train_data": TRAIN,
        "max_samples": 64,
        "max_steps": 8,
        "batch_size": 8,
        "learning_rate": 1e-2,
        "checkpoints": [1.0],
        "output_dir": str(tmp_path / "ckpt"),
        "log_flush_every": 2,
    }
    raw.update(overrides)
    return FinetuneConfig.model_validate(raw)


# ---- data ------------------------------------------------------------------------------------------


def test_prompt_tokens_are_masked(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    rows = load_conversations(TRAIN)[:2]
    examples = build_examples(tok, rows, max_length=256, packing=False)
    ex = examples[0]
    trained = [t for t, label in zip(ex.input_ids, ex.labels, strict=True) if label != IGNORE]
    output = json.loads(Path(TRAIN).read_text().splitlines()[0])["output"]
    assert tok.decode(trained) == output + "<|end|>\n"
    first_trained = next(i for i, label in enumerate(ex.labels) if label != IGNORE)
    assert tok.decode(ex.input_ids[:first_trained]).endswith("<|assistant|>\n")
    blocks = pack(examples, 256)
    assert len(blocks) == 1 and blocks[0].input_ids == examples[0].input_ids + examples[1].input_ids


def test_chat_rows_train_on_every_assistant_turn(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    path = tmp_path / "chat.jsonl"
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "one"},
             {"role": "user", "content": "again"}, {"role": "assistant", "content": "two"}]
    path.write_text(json.dumps({"messages": turns}) + "\n")
    (ex,) = build_examples(tok, load_conversations(str(path)), 256, False)
    trained = tok.decode([t for t, label in zip(ex.input_ids, ex.labels, strict=True) if label != IGNORE])
    assert trained == "one<|end|>\ntwo<|end|>\n"


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"instruction": "x"}, "output"),
        ({"instruction": "x", "output": ""}, "output"),
        ({"instruction": "x", "input": 3, "output": "y"}, "input"),
        ({"text": "x"}, "messages"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "assistant"}]}, "messages[0].content"),
    ],
)
def test_bad_training_rows_name_file_line_field(tmp_path: Path, row: dict[str, Any], field: str) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as info:
        load_conversations(str(path))
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 2, field)


def test_too_long_row_is_an_error_not_truncated(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    with pytest.raises(DataError, match="more than max_length 16"):
        build_examples(tok, load_conversations(TRAIN)[:1], max_length=16, packing=False)


def test_config_rejects_unknown_keys_and_bad_fractions(tmp_path: Path) -> None:
    path = tmp_path / "ft.yaml"
    path.write_text("model: m\ntrain_data: t.jsonl\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        load_finetune_config(path)
    path.write_text("model: m\ntrain_data: t.jsonl\ncheckpoints: [0, 0.5]\n")
    with pytest.raises(ConfigError, match="checkpoints"):
        load_finetune_config(path)
    cfg = FinetuneConfig(model="m", train_data="t", epochs=2, batch_size=8, checkpoints=[0.2, 0.5])
    assert cfg.total_steps(80) == 20 and cfg.checkpoint_steps(20) == {4: 0.2, 10: 0.5, 20: 1.0}


# ---- methods ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "lr"), [("lora", 1e-2), ("dora", 1e-2), ("full", 3e-3), ("half", 3e-3)]
)
def test_each_method_trains_and_loss_falls(tiny_model: Path, tmp_path: Path, store: Store, method: str, lr: float) -> None:
    job = FinetuneJob(make_config(tiny_model, tmp_path, method=method, learning_rate=lr), store, show_progress=False)
    frozen_before = None
    if method == "half":
        layers = job.model.model.layers
        frozen_before = layers[0].mlp.down_proj.weight.detach().clone()
        upper_before = layers[1].mlp.down_proj.weight.detach().clone()
    result = job.train()
    steps = records.train_steps_of(store, result.train_run_id)
    assert [s["step"] for s in steps] == list(range(1, 9))
    losses = [s["loss"] for s in steps]
    assert sum(losses[-3:]) / 3 < losses[0] - 0.1
    assert all(s["grad_norm"] is not None and s["grad_norm"] > 0 for s in steps)
    assert all(s["learning_rate"] is not None and s["tokens_per_s"] > 0 for s in steps)
    (ck,) = records.checkpoints_of(store, result.train_run_id)
    assert ck["kind"] == ("adapter" if method in ("lora", "dora") else "full")
    if method == "dora":
        assert json.loads((Path(ck["path"]) / "adapter_config.json").read_text())["use_dora"] is True
    if frozen_before is not None:
        layers = job.model.model.layers
        assert torch.equal(layers[0].mlp.down_proj.weight, frozen_before)
        assert not torch.equal(layers[1].mlp.down_proj.weight, upper_before)


def test_qlora_on_cpu_is_a_clear_error(tiny_model: Path, tmp_path: Path, store: Store) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the CPU error path cannot be shown here")
    with pytest.raises(ConfigError, match="qlora needs a CUDA GPU"):
        FinetuneJob(make_config(tiny_model, tmp_path, method="qlora"), store, show_progress=False)
    path = tmp_path / "q.yaml"
    path.write_text(f"model: {tiny_model}\ntrain_data: {TRAIN}\nmethod: qlora\n")
    result = CliRunner().invoke(app, ["finetune", str(path), "--db", str(tmp_path / "q.db")])
    assert result.exit_code == 2 and "qlora needs a CUDA GPU" in result.output


# ---- checkpoints, scoring, resume ------------------------------------------------------------------


def test_checkpoint_is_registered_scored_and_reloads_to_same_outputs(tiny_model: Path, tmp_path: Path, store: Store) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = make_config(
        tiny_model, tmp_path, checkpoints=[0.5, 1.0],
        eval_suites=[{"name": "attribute-extraction", "limit": 3}], eval_generation={"max_new_tokens": 4},
    )
    job = FinetuneJob(cfg, store, show_progress=False)
    result = job.train()
    assert [c.step for c in result.checkpoints] == [4, 8]
    assert set(result.base_scores) == {"attribute-extraction"}
    last = records.checkpoints_of(store, result.train_run_id)[-1]
    assert last["content_hash"] == directory_hash(last["path"])
    with store.engine.connect() as conn:
        scored = conn.execute(select(runs.c.step, runs.c.adapter, runs.c.adapter_hash, runs.c.status)
                              .where(runs.c.train_run_id == result.train_run_id).order_by(runs.c.step)).all()
    assert [(r.step, r.status) for r in scored] == [(0, "complete"), (4, "complete"), (8, "complete")]
    assert scored[0].adapter is None and scored[2].adapter == last["path"] and scored[2].adapter_hash == last["content_hash"]

    ids = torch.tensor([list(job.examples[0].input_ids)])
    job.model.eval()
    with torch.no_grad():
        trained = job.model(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        untuned = base(input_ids=ids).logits
        reloaded = PeftModel.from_pretrained(base, last["path"]).eval()(input_ids=ids).logits
    assert torch.allclose(trained, reloaded, atol=1e-5)
    assert not torch.allclose(trained, untuned, atol=1e-3)  # the adapter changes outputs


class _Crash:
    """A Trainer callback that fails at one step, standing in for a lost machine."""

    def __init__(self, at: int) -> None:
        from transformers import TrainerCallback

        self.__class__ = type("_CrashImpl", (_Crash, TrainerCallback), {})
        self.at = at

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.at:
            raise RuntimeError("machine lost")


def test_resume_continues_at_the_last_checkpoint(tiny_model: Path, tmp_path: Path, store: Store) -> None:
    cfg = make_config(tiny_model, tmp_path, max_steps=10, checkpoints=[0.4, 1.0], method="full", learning_rate=3e-3)
    crashed = FinetuneJob(cfg, store, show_progress=False, callbacks=[_Crash(6)])
    with pytest.raises(RuntimeError, match="machine lost"):
        crashed.train()
    run_id = crashed.train_run_id
    assert run_id is not None
    assert records.get_train_run(store, run_id)["status"] == "failed"  # type: ignore[index]
    assert [s["step"] for s in records.train_steps_of(store, run_id)] == [1, 2, 3, 4, 5]  # nothing logged was lost

    found = records.find_resumable_train_run(store, cfg.identity_hash())
    assert found is not None and found["id"] == run_id
    resumed = FinetuneJob(cfg, store, show_progress=False)
    assert resumed.attach(run_id) == 4
    result = resumed.train()
    assert result.status == "complete" and result.step == 10
    steps = records.train_steps_of(store, run_id)
    assert [s["step"] for s in steps] == list(range(1, 11))
    assert [c["step"] for c in records.checkpoints_of(store, run_id)] == [4, 10]

    straight = FinetuneJob(cfg, Store(f"sqlite:///{tmp_path / 'straight.db'}"), show_progress=False)
    reference = records.train_steps_of(straight.store, straight.train().train_run_id)
    assert [s["loss"] for s in steps] == pytest.approx([s["loss"] for s in reference], rel=1e-4)


def test_finetune_cli_json_and_resume_flag(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "ft.yaml"
    path.write_text(
        f"model: {tiny_model}\nmethod: lora\ntrain_data: {TRAIN}\nmax_samples: 16\nmax_steps: 3\nlearning_rate: 0.01\n"
        f"checkpoints: [1.0]\neval_suites: [{{name: attribute-extraction, limit: 2}}]\n"
        f"eval_generation: {{max_new_tokens: 4}}\noutput_dir: {tmp_path / 'out'}\n"
    )
    db = str(tmp_path / "cli.db")
    result = CliRunner().invoke(app, ["finetune", str(path), "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "complete" and payload["total_steps"] == 3
    assert payload["checkpoints"][0]["step"] == 3 and "attribute-extraction" in payload["checkpoints"][0]["scores"]
    again = CliRunner().invoke(app, ["finetune", str(path), "--db", db, "--resume", "--no-progress"])
    assert again.exit_code == 0 and "starting a new one" in again.output


@pytest.mark.postgres
def test_training_run_on_postgresql(tiny_model: Path, tmp_path: Path, pg_url: str) -> None:
    store = Store(pg_url)
    try:
        job = FinetuneJob(make_config(tiny_model, tmp_path, max_steps=3), store, show_progress=False)
        result = job.train()
        assert [s["step"] for s in records.train_steps_of(store, result.train_run_id)] == [1, 2, 3]
        assert records.checkpoints_of(store, result.train_run_id)[0]["step"] == 3
        assert records.get_train_run(store, result.train_run_id)["status"] == "complete"  # type: ignore[index]
    finally:
        store.close()
