"""The fine-tuning study: does early judging, data efficiency and RAG safety hold on a real model?

One call runs three parts on one base model and one store (every trial, checkpoint and score is an
ordinary stored row, so the board's Sweeps and Checkpoints pages show them):

1. an early-judging calibration sweep: LoRA over a learning-rate x batch-size grid, every trial
   scored at its early point (~20% of its steps) and at the end (`pruner: none`), so the report can
   say how well the early ranking predicted the final one and what the successive-halving cut
   (keep 1/reduction_factor) would have saved and lost;
2. a data-efficiency curve with the winner's recipe on nested subsets, a fitted saturation point and
   its bootstrap interval;
3. the RAG check: the base model and the sweep winner's checkpoint on SQuAD 2.0 questions, compared by
   the same paired test as `harness monitor rag` (the check is stored as a monitor run).

`StudyPlan.quick` runs the same code on the tiny random model in well under a minute (CI);
`StudyPlan.full` is the design for SmolLM2-135M (about 40 minutes on two quiet CPU cores).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.finetune import records
from harness.finetune.efficiency import run_data_efficiency
from harness.finetune.sweep import run_search
from harness.finetune.sweep_config import SweepConfig
from harness.store import Store

BUNDLED_TRAIN = Path(__file__).parent / "bundled" / "products_train.jsonl"
SQUAD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "rag" / "squad_v2_dev_subset.json"


@dataclass
class StudyPlan:
    """Sizes of the study; `full` and `quick` are the two designs, flags override single fields."""

    model: str
    output_dir: str
    learning_rates: list[float] = field(default_factory=lambda: [1e-4, 3e-4, 1e-3, 3e-3])
    batch_sizes: list[int] = field(default_factory=lambda: [4, 8])
    max_steps: int = 40
    early_fraction: float = 0.2
    reduction_factor: int = 4
    val_limit: int | None = 40
    val_tokens: int = 32
    sizes: list[int] = field(default_factory=lambda: [25, 50, 100, 200, 320])
    size_epochs: float = 2.0
    bootstrap: int = 200
    rag_data: str | None = None
    rag_limit: int | None = 100
    rag_tokens: int = 24
    train_data: str = str(BUNDLED_TRAIN)
    threads: int | None = None

    @classmethod
    def full(cls, model: str, output_dir: str) -> StudyPlan:
        return cls(model=model, output_dir=output_dir, rag_data=str(SQUAD) if SQUAD.is_file() else None)

    @classmethod
    def quick(cls, model: str, output_dir: str) -> StudyPlan:
        return cls(model=model, output_dir=output_dir, learning_rates=[1e-3, 1e-2], batch_sizes=[2, 4], max_steps=10,
                   val_limit=3, val_tokens=6, sizes=[8, 16, 32], size_epochs=1.0, bootstrap=20, rag_limit=4, rag_tokens=6,
                   reduction_factor=2)

    def with_overrides(self, **values: Any) -> StudyPlan:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def _base(plan: StudyPlan) -> dict[str, Any]:
    return {"model": plan.model, "method": "lora", "train_data": plan.train_data, "max_steps": plan.max_steps,
            "output_dir": str(Path(plan.output_dir) / "checkpoints"), "eval_batch_size": 16, "lora": {"r": 8, "alpha": 16}}


def _validation(plan: StudyPlan) -> dict[str, Any]:
    return {"validation": {"name": "attribute-extraction", "limit": plan.val_limit}, "metric": "field_f1",
            "generation": {"max_new_tokens": plan.val_tokens}}


def search_config(plan: StudyPlan) -> SweepConfig:
    return SweepConfig.model_validate({
        "name": "study-early-judging", "mode": "search", "base": _base(plan),
        "space": {"learning_rate": {"type": "categorical", "choices": plan.learning_rates},
                  "batch_size": {"type": "categorical", "choices": plan.batch_sizes}},
        "n_trials": len(plan.learning_rates) * len(plan.batch_sizes), "sampler": "grid", "pruner": "none",
        "reduction_factor": plan.reduction_factor, "early_fraction": plan.early_fraction, "top_k": 3, **_validation(plan),
    })


def efficiency_config(plan: StudyPlan, params: dict[str, Any]) -> SweepConfig:
    base = _base(plan) | {"max_steps": None, "epochs": plan.size_epochs} | params
    return SweepConfig.model_validate({
        "name": "study-data-efficiency", "mode": "data-efficiency", "base": base,
        "data_efficiency": {"sizes": plan.sizes, "bootstrap": plan.bootstrap}, **_validation(plan),
    })


def _rag_run(plan: StudyPlan, store: Store, adapter: str | None, label: str) -> str:
    from harness.runner import Runner

    run = RunConfig(
        suites=[SuiteConfig(name="rag-extraction", data=plan.rag_data, limit=plan.rag_limit)],
        model=ModelConfig(path=plan.model, adapter=adapter, batch_size=16),
        generation=GenerationConfig(max_new_tokens=plan.rag_tokens),
        run_name=f"study-rag@{label}",
        tags=["study"],
    )
    return Runner(run, store, show_progress=False).run()[0].run_id


def rag_check(plan: StudyPlan, store: Store, adapter: str) -> dict[str, Any]:
    """Base vs tuned on the RAG suite, judged and stored exactly as `harness monitor rag` does."""
    from monitors.config import RagRegressionConfig
    from monitors.regressions import compare_runs
    from monitors.results import save_result

    base_run, tuned_run = _rag_run(plan, store, None, "base"), _rag_run(plan, store, adapter, "tuned")
    result = compare_runs(store, base_run, tuned_run, RagRegressionConfig())
    monitor_run_id, _ = save_result(store, result)
    command = f"harness monitor rag --baseline {base_run} --candidate {tuned_run}"
    return {"baseline_run": base_run, "candidate_run": tuned_run, "monitor_run": monitor_run_id,
            "data": plan.rag_data or "(bundled sample)", "command": command, **result.to_json(monitor_run_id)}


def _log(message: str) -> None:
    print(f"study: {message}", flush=True, file=__import__("sys").stderr)


def run_study(plan: StudyPlan, store: Store, show_progress: bool = True) -> dict[str, Any]:
    """All three parts; writes study.json, study.md and PNG plots into plan.output_dir."""
    import torch

    if plan.threads:
        torch.set_num_threads(plan.threads)
    out = Path(plan.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    timings: dict[str, float] = {}
    load_before = os.getloadavg()

    _log(f"1/3 early-judging sweep: {len(plan.learning_rates) * len(plan.batch_sizes)} LoRA trials x {plan.max_steps} steps")
    search = run_search(search_config(plan), store, show_progress)
    timings["search_s"] = time.monotonic() - started
    best = search.report["best_trial"]
    best_trial = next(t for t in search.trials if t["number"] == best)
    steps_of = {t["number"]: records.train_steps_of(store, t["train_run_id"]) for t in search.trials}

    _log(f"2/3 data-efficiency curve with trial {best}'s recipe {best_trial['params']}, sizes {plan.sizes}")
    mark = time.monotonic()
    efficiency = run_data_efficiency(efficiency_config(plan, best_trial["params"]), store, show_progress)
    timings["efficiency_s"] = time.monotonic() - mark

    _log("3/3 RAG check: base vs the sweep winner's final checkpoint")
    mark = time.monotonic()
    winner_ckpt = records.checkpoints_of(store, best_trial["train_run_id"])[-1]["path"]
    rag = rag_check(plan, store, winner_ckpt)
    timings["rag_s"] = time.monotonic() - mark
    timings["total_s"] = time.monotonic() - started

    report: dict[str, Any] = {
        "plan": asdict(plan),
        "search": search.to_json(),
        "efficiency": efficiency.to_json(),
        "rag": rag,
        "timings": timings,
        "load_average_start": load_before,
        "load_average_end": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "study.json").write_text(json.dumps(report, indent=2, default=str))
    from harness.finetune.study_report import markdown, plots

    report["plots"] = plots(report, steps_of, out)
    (out / "study.md").write_text(markdown(report))
    _log(f"done in {timings['total_s']:.0f} s; report in {out / 'study.md'}")
    return report
