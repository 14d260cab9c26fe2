"""Fine-tuning recipe details: half on tied-embedding models, warm-up steps, the scoring model of
full checkpoints, QLoRA's compute dtype, progress lines off a terminal, and `harness train list`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app
from harness.finetune import records
from harness.finetune.config import FinetuneConfig
from harness.finetune.methods import qlora_compute_dtype
from harness.finetune.train import FinetuneJob, warmup_steps
from harness.store import Store
from tests.test_finetune import TRAIN, _one_thread  # noqa: F401  (the autouse one-thread fixture)


def _config(model: Path, tmp_path: Path, **overrides: Any) -> FinetuneConfig:
    raw: dict[str, Any] = {"model": str(model), "method": "lora", "train_data": TRAIN, "max_samples": 32, "max_steps": 4,
                           "batch_size": 8, "learning_rate": 3e-3, "checkpoints": [1.0], "output_dir": str(tmp_path / "ckpt")}
    return FinetuneConfig.model_validate(raw | overrides)


@pytest.fixture(scope="module")
def tied_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's shape with tie_word_embeddings=True (as SmolLM2): lm_head is the embedding matrix."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tied")
    config = AutoConfig.from_pretrained(tiny_model)
    config.tie_word_embeddings = True
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    check = AutoModelForCausalLM.from_pretrained(out)
    assert check.lm_head.weight is check.get_input_embeddings().weight
    return out


def test_half_trains_the_head_of_a_tied_model(tied_model: Path, tmp_path: Path, store: Store) -> None:
    job = FinetuneJob(_config(tied_model, tmp_path, method="half"), store, show_progress=False)
    head, embeddings = job.model.get_output_embeddings().weight, job.model.get_input_embeddings().weight
    assert head is not embeddings and head.requires_grad and not embeddings.requires_grad
    assert "output head (untied" in job.trainable and "frozen: input embeddings, blocks 0-0" in job.trainable
    head_before, emb_before = head.detach().clone(), embeddings.detach().clone()
    result = job.train()
    assert not torch.equal(job.model.get_output_embeddings().weight, head_before)  # the head trained
    assert torch.equal(job.model.get_input_embeddings().weight, emb_before)  # the embeddings did not
    assert result.to_json()["trainable"] == job.trainable

    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(result.checkpoints[-1].path)  # the checkpoint keeps the untied head
    assert saved.lm_head.weight is not saved.get_input_embeddings().weight
    assert torch.equal(saved.lm_head.weight, job.model.get_output_embeddings().weight.detach())
    assert torch.equal(saved.get_input_embeddings().weight, emb_before)


def test_warmup_is_passed_as_whole_steps(tiny_model: Path, tmp_path: Path, store: Store) -> None:
    """transformers 4.x reads a float warmup_steps as steps, 5.x as a ratio: an int means the same to both."""
    assert warmup_steps(0.25, 8) == 2 and warmup_steps(0.1, 8) == 1 and warmup_steps(0.0, 8) == 0
    job = FinetuneJob(_config(tiny_model, tmp_path, max_steps=8, warmup_ratio=0.25, lr_scheduler="constant_with_warmup"),
                      store, show_progress=False)
    job.start()
    args = job._training_args()
    assert args.warmup_steps == 2 and isinstance(args.warmup_steps, int)
    result = job.train()
    lrs = [s["learning_rate"] for s in records.train_steps_of(store, result.train_run_id)]
    assert lrs == pytest.approx([0.0, 1.5e-3] + [3e-3] * 6)  # two warm-up steps, then the peak


def test_full_checkpoints_are_scored_with_the_runs_trust_remote_code(tiny_model: Path, tmp_path: Path, store: Store,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.runner

    seen: list[Any] = []

    class Capture:
        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            seen.append(config.model)

        def run(self) -> list[Any]:
            return []

    monkeypatch.setattr(harness.runner, "Runner", Capture)
    cfg = _config(tiny_model, tmp_path, method="full", trust_remote_code=True, eval_suites=[{"name": "attribute-extraction"}])
    job = FinetuneJob(cfg, store, show_progress=False)
    job.train()
    assert [m.trust_remote_code for m in seen] == [True, True]  # the base model (step 0) and the checkpoint
    assert seen[1].path.endswith("checkpoint-4") and seen[1].adapter is None


def test_qlora_computes_in_float16_where_bf16_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert qlora_compute_dtype() is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert qlora_compute_dtype() is torch.bfloat16


def test_progress_lines_when_stderr_is_not_a_terminal(tiny_model: Path, tmp_path: Path, store: Store,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    FinetuneJob(_config(tiny_model, tmp_path), store, show_progress=True).train()
    lines = capsys.readouterr().err.splitlines()
    assert any("lora: training adapters" in line for line in lines)
    assert [line.split(": ", 1)[1].split(" elapsed")[0].rsplit(" loss", 1)[0] for line in lines if " elapsed " in line] == [
        "start 0/4", "step 1/4", "step 2/4", "step 3/4", "step 4/4", "stop 4/4"]


def test_train_list_shows_runs_checkpoints_and_scores(tiny_model: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'list.db'}"
    store = Store(db)
    cfg = _config(tiny_model, tmp_path, eval_suites=[{"name": "attribute-extraction", "limit": 2}], eval_generation={"max_new_tokens": 4})
    result = FinetuneJob(cfg, store, show_progress=False).train()
    store.close()
    listed = CliRunner().invoke(app, ["train", "list", "--db", db, "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert row["id"] == result.train_run_id and row["status"] == "complete"
    assert [c["step"] for c in row["checkpoints"]] == [4]
    assert set(row["checkpoints"][0]["scores"]["attribute-extraction"]) >= {"field_f1", "value_recall"}
    assert "field_f1" in row["base_scores"]["attribute-extraction"]
    table = CliRunner().invoke(app, ["train", "list", "--db", db])
    assert table.exit_code == 0 and result.train_run_id in table.output and "(base model)" in table.output
    sweeps = CliRunner().invoke(app, ["train", "sweeps", "--db", db, "--json"])
    assert sweeps.exit_code == 0 and json.loads(sweeps.stdout) == []
