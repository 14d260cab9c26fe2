"""Run the real `harness` CLI with the HF backend slowed down and every request logged.

Tests use it to kill a run at a known point (`kill -9`) and to prove which samples a rerun asked
the backend for. SLOW_SECONDS sleeps per backend call; ASKED_LOG gets one sample id per request.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from harness.backends import hf
from harness.types import Completion, Request

_original = hf.HFBackend.generate


def _logged_generate(self: hf.HFBackend, requests: Sequence[Request]) -> list[Completion]:
    with open(os.environ["ASKED_LOG"], "a", encoding="utf-8") as fh:
        fh.writelines(r.sample_id + "\n" for r in requests)
        fh.flush()
    time.sleep(float(os.environ.get("SLOW_SECONDS", "0")))
    return _original(self, requests)


hf.HFBackend.generate = _logged_generate  # type: ignore[method-assign]

try:  # with --ray the driver-side backend is the pool wrapper: log and slow that one instead
    from harness import distributed

    _original_ray = distributed.RayBackend.generate

    def _logged_ray_generate(self: distributed.RayBackend, requests: Sequence[Request]) -> list[Completion]:
        with open(os.environ["ASKED_LOG"], "a", encoding="utf-8") as fh:
            fh.writelines(r.sample_id + "\n" for r in requests)
        time.sleep(float(os.environ.get("SLOW_SECONDS", "0")))
        return _original_ray(self, requests)

    distributed.RayBackend.generate = _logged_ray_generate  # type: ignore[method-assign]
except ImportError:
    pass

if __name__ == "__main__":
    from harness.cli import main

    sys.argv = ["harness", *sys.argv[1:]]
    main()
