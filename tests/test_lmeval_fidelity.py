"""The numbers are lm-eval's: `harness run mmlu`, `lm-eval:TASK` and the HarnessLM adapter against
lm-eval 0.4 itself (its `hf` model, its built-in MMLU subject YAMLs) on the tiny model and real MMLU.

lm-eval reads the same questions from parquet files written by `suites.mmlu.write_lmeval_tasks`,
whose YAMLs include lm-eval's own subject definitions and only change where the data comes from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import ModelConfig, RunConfig, SuiteConfig
from harness.errors import ConfigError
from harness.runner import Runner
from harness.store import Store
from suites import create_suite
from tests.conftest import SHARED_DATA, require_module

require_module("lm_eval", "harness-eval[lm-eval]")
lm_eval = pytest.importorskip("lm_eval")

MMLU = SHARED_DATA / "mmlu"
SUBJECTS = ["abstract_algebra", "high_school_european_history", "moral_scenarios", "world_religions"]
LIMIT = 8

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MMLU / "test").is_dir(), reason=f"real MMLU data not found at {MMLU} (set HARNESS_SHARED_DATA)"),
]


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")}
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_lmeval_hf(model: Path, tasks_dir: Path) -> dict[str, Any]:
    """lm-eval's own HF model on the local MMLU group, as `lm_eval --model hf` would run it."""
    from lm_eval.tasks import TaskManager

    result: dict[str, Any] = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model},dtype=float32",
        tasks=["mmlu_local"],
        task_manager=TaskManager(include_path=str(tasks_dir)),
        num_fewshot=5,
        batch_size=8,
        device="cpu",
        log_samples=True,
    )
    return result


@pytest.fixture(scope="module")
def subset(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """lm-eval's results on 4 subjects x 8 questions (one subject has prompts longer than the
    tiny model's 2,048 tokens, so left truncation is covered too)."""
    from suites.mmlu import write_lmeval_tasks

    tasks_dir = tmp_path_factory.mktemp("lmeval-tasks")
    names = write_lmeval_tasks(str(MMLU), tasks_dir, SUBJECTS, LIMIT)
    db = tmp_path_factory.mktemp("store") / "h.db"
    return {"tasks_dir": tasks_dir, "names": names, "lm": run_lmeval_hf(tiny_model, tasks_dir), "db": f"sqlite:///{db}"}


def _refuse(_: ModelConfig) -> Any:
    raise AssertionError("every request should have been answered from the cache")


def test_mmlu_suite_equals_lmeval_subject_by_subject(subset: dict[str, Any], tiny_model: Path) -> None:
    options = {"subjects": ",".join(SUBJECTS), "per_subject_limit": LIMIT}
    cfg = RunConfig(suites=[SuiteConfig(name="mmlu", data=str(MMLU), options=options)], model=ModelConfig(path=str(tiny_model)))
    store = Store(subset["db"])
    result = Runner(cfg, store, show_progress=False).run()[0]
    mine = {m.name: m.value for m in result.metrics}
    lm = subset["lm"]
    for subject in SUBJECTS:
        assert mine[f"subject/{subject}/acc"] == lm["results"][f"mmlu_local_{subject}"]["acc,none"], subject
    assert mine["acc"] == pytest.approx(lm["results"]["mmlu_local"]["acc,none"], abs=1e-12)
    # Prompts are lm-eval's to the character; log-likelihoods agree to float32 rounding.
    rows = {r["sample_id"]: r for r in store.run_samples(result.run_id)}
    for task, records in lm["samples"].items():
        subject = task.removeprefix("mmlu_local_")
        for record in records:
            row = rows[f"{subject}/{record['doc_id']}"]
            assert [[r["prompt"], r["continuation"]] for r in row["requests"][0]] == [list(a) for a in record["arguments"]]
            theirs = [float(r[0][0]) for r in record["resps"]]
            assert row["details"]["logprobs"] == pytest.approx(theirs, abs=1e-4)
            assert row["details"]["gold"] == "ABCD"[record["target"]]
    store.close()


def test_lmeval_task_suite_equals_lmeval_and_shares_the_cache(subset: dict[str, Any], tiny_model: Path) -> None:
    """`lm-eval:mmlu_local` asks exactly what the mmlu suite asked: no model is loaded."""
    options = {"include_path": str(subset["tasks_dir"]), "num_fewshot": 5}
    cfg = RunConfig(suites=[SuiteConfig(name="lm-eval:mmlu_local", options=options)], model=ModelConfig(path=str(tiny_model)))
    store = Store(subset["db"])
    result = Runner(cfg, store, backend_factory=_refuse, show_progress=False).run()[0]
    assert result.suite == "lm-eval:mmlu_local"
    mine = {m.name: m for m in result.metrics}
    lm = subset["lm"]["results"]
    assert mine["acc"].value == lm["mmlu_local"]["acc,none"]
    assert mine["acc"].stderr == pytest.approx(lm["mmlu_local"]["acc_stderr,none"])
    for name in subset["names"]:
        assert mine[f"{name}/acc"].value == lm[name]["acc,none"]
        assert mine[f"{name}/acc"].stderr == pytest.approx(lm[name]["acc_stderr,none"])
    record = store.run_samples(result.run_id, limit=1)[0]["details"]["lm_eval"]
    assert set(record) >= {"doc_id", "target", "arguments", "resps", "filtered_resps", "metrics"}
    store.close()


def test_harness_lm_adapter_in_lmevals_own_evaluator(subset: dict[str, Any], tiny_model: Path) -> None:
    from lm_eval.tasks import TaskManager

    from harness.lmeval import HarnessLM

    cfg = RunConfig(suites=[SuiteConfig(name="mmlu")], model=ModelConfig(path=str(tiny_model)))
    store = Store(subset["db"])
    runner = Runner(cfg, store, backend_factory=_refuse, show_progress=False)
    result = lm_eval.simple_evaluate(
        model=HarnessLM(runner.answer),
        tasks=["mmlu_local"],
        task_manager=TaskManager(include_path=str(subset["tasks_dir"])),
        num_fewshot=5,
    )
    for name in [*subset["names"], "mmlu_local"]:
        assert result["results"][name]["acc,none"] == subset["lm"]["results"][name]["acc,none"]
    store.close()


def test_unknown_lmeval_task_lists_close_matches(subset: dict[str, Any]) -> None:
    suite = create_suite("lm-eval:mmlu_local_world_religion", {"include_path": str(subset["tasks_dir"])})
    with pytest.raises(ConfigError, match=r"unknown lm-eval task 'mmlu_local_world_religion'\. Close matches: mmlu_local_world_religions"):
        suite.load(suite.default_data())


@pytest.mark.acceptance
def test_all_57_subjects_equal_lmeval(tiny_model: Path, tmp_path: Path) -> None:
    """Every subject, the first 2 test questions of each (114 questions; the full set runs in
    benchmarks/mmlu_vs_lmeval.py): same per-subject accuracy as lm-eval."""
    from suites.mmlu import SUBJECTS as ALL
    from suites.mmlu import write_lmeval_tasks

    names = write_lmeval_tasks(str(MMLU), tmp_path / "tasks", None, 2)
    assert len(names) == len(ALL) == 57
    lm = run_lmeval_hf(tiny_model, tmp_path / "tasks")["results"]
    cfg = RunConfig(
        suites=[SuiteConfig(name="mmlu", data=str(MMLU), options={"per_subject_limit": 2})], model=ModelConfig(path=str(tiny_model))
    )
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    result = Runner(cfg, store, show_progress=False).run()[0]
    store.close()
    mine = {m.name: m.value for m in result.metrics}
    assert result.n_samples == 114
    assert {s: mine[f"subject/{s}/acc"] for s in ALL} == {s: lm[f"mmlu_local_{s}"]["acc,none"] for s in ALL}
    assert mine["acc"] == pytest.approx(lm["mmlu_local"]["acc,none"], abs=1e-12)
