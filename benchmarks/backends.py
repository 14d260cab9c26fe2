"""Generation throughput: the same prompts through the HF and vLLM backends; prints tokens/s of each
and the ratio vLLM / HF.

    python benchmarks/backends.py [--model DIR] [--prompts 256] [--batch-size 32] [--max-new-tokens 64]

Without --model it builds the tiny local model (a CPU smoke run; real numbers need a real model,
ideally on a GPU). Both backends decode greedily in the same dtype; generated tokens are counted
with the model's tokenizer so both sides are measured the same way.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory (default: a tiny local model)")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="HF batch size (vLLM schedules on its own)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    from harness.backends import create_backend
    from harness.config import ModelConfig
    from harness.models.tiny import make_tiny_model
    from harness.types import Request

    model = args.model or str(make_tiny_model(Path(tempfile.gettempdir()) / "harness-bench-tiny"))
    topics = ["the capital of France", "boiling water", "a steel kettle", "German dogs", "the year 1889", "rating answers"]
    requests = [
        Request(kind="generate", prompt=f"Question {i}: tell me about {topics[i % len(topics)]}. Answer:",
                max_new_tokens=args.max_new_tokens)
        for i in range(args.prompts)
    ]
    results = {}
    for name in ("hf", "vllm"):
        backend = create_backend(ModelConfig(path=model, backend=name, dtype=args.dtype, batch_size=args.batch_size))  # type: ignore[arg-type]
        backend.generate(requests[:4])  # warm-up
        start = time.perf_counter()
        out = backend.generate(requests)
        seconds = time.perf_counter() - start
        tokenizer = backend.tokenizer  # type: ignore[attr-defined]
        tokens = sum(len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) for c in out)
        results[name] = tokens / seconds
        print(f"{name:5s} {tokens:7d} tokens in {seconds:7.2f} s = {results[name]:9.1f} tokens/s")
        backend.close()
    print(f"vLLM / HF = {results['vllm'] / results['hf']:.2f}x  ({args.prompts} prompts, HF batch {args.batch_size})")


if __name__ == "__main__":
    main()
