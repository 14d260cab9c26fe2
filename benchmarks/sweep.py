"""Early-judging sweep vs a full-budget sweep on the same search space (the tiny model, CPU).

Both searches propose the same configurations (optuna's random sampler with one seed), so the only
difference is judging: the peer trains every trial to the end; ours scores each trial at 20% of its
budget and lets successive halving stop the bad ones. Prints the ratio of optimisation steps trained
(goal: <= 0.4) and whether both found the same best configuration, plus the early-vs-final rank
correlations measured on the full-budget run (where every trial has both scores).

    python benchmarks/sweep.py [--trials 12] [--steps 150] [--db bench.db]

The steps ratio is now set by the configuration: the best ceil(n / reduction_factor) trials continue
from the early point, so with 12 trials, reduction factor 4 and early fraction 0.2 it is
(3 x 1.0 + 9 x 0.2) / 12 = 0.4 whatever the run length (the numbers measured here before 2026-11-30
came from optuna's asynchronous successive halving, whose share depended on the run length).
The real-model version of this comparison is `harness study` (docs/finetuning.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from harness.finetune.sweep import SweepConfig, run_sweep
from harness.models.tiny import make_tiny_model
from harness.store import Store

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description="Early-judging sweep vs a full-budget sweep.")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--steps", type=int, default=150, help="Optimisation steps of one full trial.")
    parser.add_argument("--db", default=None, help="Store (default: a temporary SQLite file).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for the tiny model).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    model = make_tiny_model(work / "tiny")
    store = Store(args.db or f"sqlite:///{work / 'bench.db'}")
    base = {
        "model": str(model),
        "method": "full",
        "train_data": str(REPO / "harness" / "finetune" / "bundled" / "products_train.jsonl"),
        "max_steps": args.steps,
        "output_dir": str(work / "ckpt"),
    }
    common = {
        "base": base,
        "space": {
            "learning_rate": {"type": "float", "low": 3e-4, "high": 1.5e-2, "log": True},
            "batch_size": {"type": "categorical", "choices": [4, 8, 16]},
        },
        "n_trials": args.trials,
        "sampler": "random",
        "seed": 7,
        "early_fraction": 0.2,
        "validation": {"name": "attribute-extraction", "limit": 16},
        "metric": "field_f1",
        "early_metric": "value_recall",
        "generation": {"max_new_tokens": 40},
    }
    timings = {}
    results = {}
    for label, pruner in (("full-budget", "none"), ("early-judging", "successive_halving")):
        started = time.perf_counter()
        cfg = SweepConfig.model_validate({**common, "name": f"bench-{label}", "pruner": pruner, "reduction_factor": 4})
        results[label] = run_sweep(cfg, store, show_progress=False).report
        timings[label] = time.perf_counter() - started
    full, early = results["full-budget"], results["early-judging"]
    ratio = early["steps_trained"] / full["steps_trained"]
    same_best = early["best_params"] == full["best_params"]
    print(json.dumps({"full_budget": full, "early_judging": early}, indent=1, default=str))
    print(f"\npeer: optuna full-budget search, {args.trials} trials x {args.steps} steps, random sampler seed 7")
    print(f"steps trained: early-judging {early['steps_trained']} / full-budget {full['steps_trained']} = {ratio:.3f} (goal <= 0.4)")
    print(
        f"wall time: early-judging {timings['early-judging']:.0f} s / full-budget {timings['full-budget']:.0f} s "
        f"= {timings['early-judging'] / timings['full-budget']:.3f}"
    )
    print(
        f"same best config: {same_best} (full-budget best {full['best_params']} -> {full['best_final_score']}; "
        f"early-judging best {early['best_params']} -> {early['best_final_score']})"
    )
    print(
        f"early vs final on the full-budget run: Spearman {full['spearman_early_final']}, Kendall "
        f"{full['kendall_early_final']}, top-{full['top_k']} overlap {full['top_k_overlap']}, early loss vs final "
        f"Spearman {full['spearman_early_loss_final']}, early grad norm vs final {full['spearman_early_grad_norm_final']}"
    )


if __name__ == "__main__":
    main()
