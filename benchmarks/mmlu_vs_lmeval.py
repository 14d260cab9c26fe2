"""MMLU 5-shot: `harness run mmlu` against lm-eval 0.4's own `hf` model on the same model and data.

Both run as subprocesses of this script, end to end (start-up, data loading, scoring, writing
results), on the CPU in float32, with the same batch size:

    python benchmarks/mmlu_vs_lmeval.py                       # full MMLU (14,042 questions)
    python benchmarks/mmlu_vs_lmeval.py --limit 20            # first 20 test questions per subject
    python benchmarks/mmlu_vs_lmeval.py --model DIR           # any local causal LM (default: the tiny model)

It prints the accuracy of each (overall and how many subjects differ), the wall time of each, the
ratio harness / lm-eval (goal <= 0.5) and a cached rerun of the harness as a share of its first run
(goal <= 2%). lm-eval reads the same questions from parquet files written by
`suites.mmlu.write_lmeval_tasks` (its built-in subject YAMLs, only the data path changed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from suites.mmlu import write_lmeval_tasks  # noqa: E402


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed, proc.stdout


def add_mmlu_arguments(parser: argparse.ArgumentParser) -> None:
    """The data, model and slice options every MMLU benchmark takes."""
    shared = Path(os.environ.get("HARNESS_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", default=str(shared / "mmlu"), help="MMLU CSV folder (dev/, test/)")
    parser.add_argument("--model", default=None, help="model directory (default: build the tiny model)")
    parser.add_argument("--limit", type=int, default=None, help="test questions per subject (default: all)")
    parser.add_argument("--subjects", default=None, help="comma-separated subjects (default: all 57)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mmlu_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workdir", default=None, help="keep task files, outputs and the store here")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="mmlu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="true")
    model = args.model
    if model is None:
        from harness.models.tiny import make_tiny_model

        model = str(make_tiny_model(work / "tiny-model"))
    subjects = args.subjects.split(",") if args.subjects else None
    tasks_dir = work / "lmeval-tasks"
    names = write_lmeval_tasks(args.data, tasks_dir, subjects, args.limit)

    lm_out = work / "lmeval-out"
    lm_cmd = [
        python, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={model},dtype=float32",
        "--tasks", "mmlu_local", "--include_path", str(tasks_dir), "--num_fewshot", "5",
        "--batch_size", str(args.batch_size), "--device", "cpu", "--output_path", str(lm_out),
    ]
    db = work / "harness.db"
    if db.exists():
        db.unlink()
    h_cmd = [
        python, "-m", "harness", "run", "mmlu", "--model", model, "--data", args.data, "--db", str(db),
        "--batch-size", str(args.batch_size), "--device", "cpu", "--json", "--no-progress",
    ]
    if args.limit:
        h_cmd += ["--option", f"per_subject_limit={args.limit}"]
    if subjects:
        h_cmd += ["--option", f"subjects={','.join(subjects)}"]

    lm_time, _ = timed(lm_cmd, env)
    h_time, h_out = timed(h_cmd, env)
    rerun_time, rerun_out = timed(h_cmd, env)

    lm_results = json.loads(sorted(lm_out.rglob("results_*.json"))[-1].read_text())["results"]
    harness_metrics = json.loads(h_out)["runs"][0]["metrics"]
    rerun_metrics = json.loads(rerun_out)["runs"][0]["metrics"]
    n_questions = json.loads(h_out)["runs"][0]["n_samples"]
    differ = [
        name for name in names
        if abs(lm_results[name]["acc,none"] - harness_metrics[f"subject/{name.removeprefix('mmlu_local_')}/acc"]) > 1e-12
    ]
    print(f"model {model}, {len(names)} subjects, {n_questions} questions, 5-shot, batch size {args.batch_size}, CPU float32")
    print(f"accuracy   lm-eval {lm_results['mmlu_local']['acc,none']:.6f}   harness {harness_metrics['acc']:.6f}   "
          f"subjects that differ: {len(differ)}{' ' + ','.join(differ) if differ else ''}")
    print(f"wall time  lm-eval {lm_time:.1f} s   harness {h_time:.1f} s   ratio harness/lm-eval {h_time / lm_time:.3f} (goal <= 0.5)")
    print(f"cached rerun {rerun_time:.2f} s = {100 * rerun_time / h_time:.1f}% of the first run (goal <= 2%); "
          f"same metrics: {rerun_metrics == harness_metrics}")


if __name__ == "__main__":
    main()
