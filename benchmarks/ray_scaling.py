"""Throughput of a Ray actor pool with 1 and 2 replicas on the same work; prints the ratio.

The peer is the same harness run on one replica: same model, prompts, batch size and cache-free
store, so the ratio isolates what adding replicas buys. On this project's 2-core CI machine two
CPU replicas compete for the same cores, so expect well under 2x here; on a cluster each replica
has its own GPU or node.

    python benchmarks/ray_scaling.py [--samples 24] [--max-new-tokens 32] [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness.config import GenerationConfig, ModelConfig, RayConfig, RunConfig, SuiteConfig
from harness.distributed import RayPool
from harness.models.tiny import make_tiny_model
from harness.runner import Runner
from harness.store import Store


def timed_run(model: Path, actors: int, samples: int, max_new: int, pool: RayPool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(
            suites=[SuiteConfig(name="rag-extraction", limit=samples)],
            model=ModelConfig(path=str(model), batch_size=4),
            generation=GenerationConfig(max_new_tokens=max_new),
            ray=RayConfig(num_actors=actors),
        )
        store = Store(f"sqlite:///{tmp}/bench.db")
        start = time.perf_counter()
        Runner(config, store, show_progress=False, ray_pool=pool).run()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions; the median is reported")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    model = args.model or make_tiny_model(Path(tempfile.gettempdir()) / "harness-bench-tiny")
    import ray

    ray.init(num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False, log_to_driver=False)
    results = {}
    for actors in (1, 2):
        pool = RayPool(RayConfig(num_actors=actors))
        timed_run(model, actors, 4, args.max_new_tokens, pool)  # load the model in every replica
        seconds = statistics.median(
            timed_run(model, actors, args.samples, args.max_new_tokens, pool) for _ in range(args.repeats)
        )
        pool.shutdown()
        results[actors] = args.samples / seconds
        print(f"{actors} actor(s): median {seconds:.2f} s over {args.repeats} runs, {results[actors]:.2f} samples/s")
    ray.shutdown()
    print(f"ratio 2 actors / 1 actor: {results[2] / results[1]:.2f}x throughput")


if __name__ == "__main__":
    main()
